"""The semantics of the API verbs, independent of HTTP: what create, update, patch and delete do to objects.

This is where kube-apiserver's registry strategies are mirrored: uid, resourceVersion, generation and
timestamps; the status subresource split; finalizers and graceful deletion; CRDs that start or stop
serving types; namespaces that terminate; and pruning, defaulting and validation of custom resources.
Built-in kinds other than Namespaces and CRDs are stored as sent (a Secret's `stringData` aside).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
import re
import secrets
import uuid
from typing import Any

from kubesim import errors, patches, resources, schema, selectors
from kubesim.errors import FieldError
from kubesim.resources import ResourceType
from kubesim.store import Obj, Store

_IMMUTABLE_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
_GENERATE_ATTEMPTS = 8  # the apiserver's first try and its seven retries
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's generateName alphabet (no vowels, no 0/1/3)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def now() -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serializes."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class WriteOptions:
    """Query parameters that change how a write is done."""

    dry_run: bool = False
    field_validation: str = "Ignore"  # Strict | Warn | Ignore (the default when absent)


@dataclasses.dataclass
class WriteResult:
    """The object as stored (or as it would be, for a dry run) and any `Warning` headers."""

    obj: Obj
    warnings: list[str] = dataclasses.field(default_factory=list)
    created: bool = False


@dataclasses.dataclass
class ListResult:
    """One page of a LIST."""

    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


class Api:
    """Objects of every served type, with the apiserver's write semantics."""

    def __init__(self, registry: resources.Registry, store: Store) -> None:
        self.registry = registry
        self.store = store
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            namespaces = self.registry.get("", "v1", "namespaces")
            assert namespaces is not None
            self.create(namespaces, None, {"metadata": {"name": name}}, WriteOptions())

    # --- reads ---------------------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        """One object, as served in the requested version."""
        obj = self.store.get(rtype.storage_key, self._ns(rtype, namespace), name)
        if obj is None:
            raise errors.not_found(rtype.plural, rtype.group, name)
        return self.present(rtype, obj)

    def present(self, rtype: ResourceType, obj: Obj) -> Obj:
        """The object labelled with the requested apiVersion (kubesim stores one version of each object)."""
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        shown = dict(obj)
        shown["apiVersion"] = rtype.api_version
        return shown

    def list_objects(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        """A LIST with selectors and paging; the continue token is the last key served."""
        labels = selectors.parse_labels(label_selector)
        fields = selectors.parse_fields(field_selector, self.field_labels(rtype))
        items = [
            obj
            for obj in self.store.select(rtype.storage_key, namespace if rtype.namespaced else None)
            if selectors.matches_labels(labels, obj) and selectors.matches_fields(fields, obj)
        ]
        start = 0
        if continue_token:
            start_key = _decode_continue(continue_token)
            start = next(
                (i for i, obj in enumerate(items) if _sort_key(obj) > start_key),
                len(items),
            )
        page = items[start:]
        token, remaining = "", None
        if limit and len(page) > limit:
            remaining = len(page) - limit
            page = page[:limit]
            token = _encode_continue(_sort_key(page[-1]))
        rv = str(self.store.resource_version)
        return ListResult([self.present(rtype, obj) for obj in page], rv, token, remaining)

    def field_labels(self, rtype: ResourceType) -> frozenset[str] | None:
        """Custom resources accept only metadata.name/namespace in field selectors; built-ins any path."""
        return selectors.CUSTOM_RESOURCE_FIELDS if rtype.custom else None

    # --- create --------------------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str | None, body: Any, options: WriteOptions) -> WriteResult:
        """POST: assign identity and bookkeeping, validate, store."""
        obj = self._check_body(rtype, body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rtype.namespaced:
            ns = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
            if self.store.get("/namespaces", "", ns) is None:
                raise errors.not_found("namespaces", "", ns)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(
                    rtype.kind,
                    rtype.group,
                    "",
                    [FieldError("FieldValueRequired", "metadata.name", "name or generateName is required")],
                )
            meta["name"] = self._generate_name(rtype, meta)
        self._check_name(rtype, meta["name"])
        ns_key = meta.get("namespace", "")
        if self.store.get(rtype.storage_key, ns_key, meta["name"]) is not None:
            raise errors.already_exists(rtype.plural, rtype.group, meta["name"])
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rtype.tracks_generation:
            meta["generation"] = 1
        if rtype.status_subresource:
            obj.pop("status", None)  # status is written only through /status (or by the server, below)
        warnings = self._admit(rtype, obj, None, options)
        if rtype.plural == "namespaces" and not rtype.group:
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        if options.dry_run:
            return WriteResult(obj, warnings, created=True)
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rtype.storage_key, obj)
        if rtype.group == resources.CRD_GROUP:
            self._serve_crd(obj)
        return WriteResult(self.present(rtype, obj), warnings, created=True)

    def _generate_name(self, rtype: ResourceType, meta: Obj) -> str:
        """generateName plus five random characters, drawn again while the name is taken, up to
        `_GENERATE_ATTEMPTS` times, as the apiserver does (RetryGenerateName, GA in Kubernetes 1.32):
        among 10,000 names, five characters collide about three times. The last name drawn is
        returned even if taken, and the create then fails with 409 AlreadyExists, as there."""
        ns_key = meta.get("namespace", "")
        for _ in range(_GENERATE_ATTEMPTS):
            name = str(meta["generateName"]) + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
            if self.store.get(rtype.storage_key, ns_key, name) is None:
                break
        return name

    def _check_body(self, rtype: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        kind = obj.get("kind")
        if kind and kind != rtype.kind:
            raise errors.bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the expected API version "
                f"({rtype.api_version})"
                if obj.get("apiVersion") != rtype.api_version
                else f'{kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}'
            )
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        return obj

    def _check_name(self, rtype: ResourceType, name: str) -> None:
        pattern = _DNS_LABEL if rtype.plural == "namespaces" and not rtype.group else _DNS_SUBDOMAIN
        if len(name) > 253 or not pattern.match(name):
            what = "RFC 1123 label" if pattern is _DNS_LABEL else "RFC 1123 subdomain"
            raise errors.invalid(
                rtype.kind,
                rtype.group,
                name,
                [
                    FieldError(
                        "FieldValueInvalid",
                        "metadata.name",
                        f"a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.', "
                        "and must start and end with an alphanumeric character",
                        name,
                        True,
                    )
                ],
            )

    # --- update / patch ------------------------------------------------------------------------------------

    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        options: WriteOptions,
        subresource: str = "",
        require_rv: bool = True,
    ) -> WriteResult:
        """PUT (and the tail of PATCH): optimistic concurrency, the status split, admission, store."""
        old = self.store.get(rtype.storage_key, self._ns(rtype, namespace), name)
        if old is None:
            raise errors.not_found(rtype.plural, rtype.group, name)
        new = self._check_body(rtype, body)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        rv = meta.get("resourceVersion")
        if rv:
            if rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rtype.plural, rtype.group, name)
        elif require_rv and rtype.custom:
            # CRDs do not allow unconditional updates (AllowUnconditionalUpdate is false for them).
            raise errors.invalid(
                rtype.kind, rtype.group, name,
                [FieldError("FieldValueInvalid", "metadata.resourceVersion", "must be specified for an update",
                            0, True)],
            )
        if subresource == "status":
            # Only status may change through /status; metadata and spec come from the stored object.
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            if rtype.status_subresource:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            new_meta = new["metadata"]
            for field in ("name", "namespace", *_IMMUTABLE_META):
                if field in old["metadata"]:
                    new_meta[field] = old["metadata"][field]
                else:
                    new_meta.pop(field, None)
            new_meta.pop("managedFields", None)
            new_meta.pop("selfLink", None)
            self._check_finalizers(rtype, old, new)
        warnings = self._admit(rtype, new, old, options)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return WriteResult(self.present(rtype, old), warnings)  # a no-op write stores nothing
        if "generation" in old["metadata"] and _spec_changed(rtype, old, new):
            new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        if options.dry_run:
            return WriteResult(new, warnings)
        if old["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(rtype, new)
            return WriteResult(self.present(rtype, new), warnings)
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rtype.storage_key, new)
        if rtype.group == resources.CRD_GROUP:
            self._serve_crd(new)
        return WriteResult(self.present(rtype, new), warnings)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        options: WriteOptions,
        subresource: str = "",
    ) -> WriteResult:
        """PATCH in one of the three dialects; server-side apply is refused with a clear 415."""
        accepted = [patches.JSON, patches.MERGE, patches.APPLY]
        if not rtype.custom:
            accepted.insert(2, patches.STRATEGIC)
        if content_type == patches.APPLY:
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                "server-side apply (application/apply-patch+yaml) is not supported by kubesim; "
                "use client-side `kubectl apply` (the default)",
            )
        if content_type not in accepted:
            raise errors.unsupported_media_type(content_type, accepted)
        old = self.store.get(rtype.storage_key, self._ns(rtype, namespace), name)
        if old is None:
            raise errors.not_found(rtype.plural, rtype.group, name)
        current = self.present(rtype, old)
        if content_type == patches.MERGE:
            if not isinstance(body, dict):
                raise errors.bad_request("a merge patch must be a JSON object")
            merged = patches.merge_patch(current, body)
        elif content_type == patches.JSON:
            merged = patches.json_patch(current, body)
        else:
            merged = patches.strategic_merge_patch(current, body, patches.merge_keys(rtype.kind))
        # A patch is conditional only if it carries a resourceVersion itself.
        patch_rv = body.get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
        if isinstance(merged, dict):
            merged.setdefault("metadata", {})
            if patch_rv is None and content_type != patches.JSON:
                merged["metadata"].pop("resourceVersion", None)
        return self.update(rtype, namespace, name, merged, options, subresource, require_rv=False)

    def _check_finalizers(self, rtype: ResourceType, old: Obj, new: Obj) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        before = set(old["metadata"].get("finalizers") or [])
        added = [f for f in new["metadata"].get("finalizers") or [] if f not in before]
        if added:
            raise errors.invalid(
                rtype.kind, rtype.group, old["metadata"]["name"],
                [FieldError("FieldValueForbidden", "metadata.finalizers",
                            f"no new finalizers can be added if the object is being deleted, found new "
                            f"finalizers {added!r}")],
            )

    # --- admission: pruning, defaulting, validation -------------------------------------------------------

    def _admit(self, rtype: ResourceType, obj: Obj, old: Obj | None, options: WriteOptions) -> list[str]:
        warnings: list[str] = []
        if rtype.group == resources.CRD_GROUP:
            self._admit_crd(obj, old)
        if rtype.storage_key == "/secrets":
            _fold_string_data(obj)
        if not rtype.custom or rtype.schema is None:
            return warnings
        unknown = schema.prune(obj, rtype.schema)
        if unknown and options.field_validation == "Strict":
            listed = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise errors.bad_request(
                f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                f"strict decoding error: {listed}"
            )
        if unknown and options.field_validation == "Warn":
            warnings.extend(f'unknown field "{path}"' for path in unknown)
        schema.apply_defaults(obj, rtype.schema)
        failures = schema.validate(obj, rtype.schema, old)
        if failures:
            raise errors.invalid(rtype.kind, rtype.group, obj["metadata"].get("name", ""), failures)
        return warnings

    def _admit_crd(self, crd: Obj, old: Obj | None) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        name = crd["metadata"].get("name", "")
        failures: list[FieldError] = []
        if not spec.get("group"):
            failures.append(FieldError("FieldValueRequired", "spec.group"))
        if not names.get("plural"):
            failures.append(FieldError("FieldValueRequired", "spec.names.plural"))
        if not names.get("kind"):
            failures.append(FieldError("FieldValueRequired", "spec.names.kind"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            failures.append(FieldError("FieldValueNotSupported", "spec.scope",
                                       'supported values: "Cluster", "Namespaced"', spec.get("scope"), True))
        versions = spec.get("versions") or []
        if not versions:
            failures.append(FieldError("FieldValueRequired", "spec.versions",
                                       "must have exactly one version marked as storage version"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            failures.append(FieldError("FieldValueInvalid", "spec.versions",
                                       "must have exactly one version marked as storage version", versions, True))
        if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
            failures.append(FieldError("FieldValueInvalid", "metadata.name",
                                       'must be spec.names.plural+"."+spec.group', name, True))
        if old is not None and (old.get("spec") or {}).get("group") != spec.get("group"):
            failures.append(FieldError("FieldValueInvalid", "spec.group", "field is immutable",
                                       spec.get("group"), True))
        if failures:
            raise errors.invalid("CustomResourceDefinition", resources.CRD_GROUP, name, failures)
        # Fill the defaults the apiserver fills, so `kubectl get crd -o yaml` shows them.
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        spec.setdefault("conversion", {"strategy": "None"})
        for version in versions:
            version.setdefault("served", True)
        self._set_crd_status(crd, old)

    def _set_crd_status(self, crd: Obj, old: Obj | None) -> None:
        spec = crd["spec"]
        old_conditions = {c.get("type"): c for c in ((old or {}).get("status") or {}).get("conditions") or []}
        stamp = now()

        def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
            previous = old_conditions.get(kind)
            unchanged = previous is not None and previous.get("status") == "True"
            since = previous.get("lastTransitionTime", stamp) if previous and unchanged else stamp
            return {"type": kind, "status": "True", "lastTransitionTime": since, "reason": reason, "message": message}

        storage = [v["name"] for v in spec["versions"] if v.get("storage")]
        stored = list(((old or {}).get("status") or {}).get("storedVersions") or [])
        for version in storage:
            if version not in stored:
                stored.append(version)
        crd["status"] = {
            "acceptedNames": dict(spec["names"]),
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "storedVersions": stored,
        }

    # --- delete --------------------------------------------------------------------------------------------

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any] | None,
        dry_run: bool = False,
    ) -> Obj:
        """DELETE: finalizers turn it into a deletionTimestamp; otherwise the object goes at once."""
        obj = self.store.get(rtype.storage_key, self._ns(rtype, namespace), name)
        if obj is None:
            raise errors.not_found(rtype.plural, rtype.group, name)
        preconditions = (options or {}).get("preconditions") or {}
        meta = obj["metadata"]
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise errors.conflict(
                rtype.plural, rtype.group, name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {meta['uid']}",
            )
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta["resourceVersion"]:
            raise errors.conflict(
                rtype.plural, rtype.group, name,
                f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}",
            )
        is_namespace = rtype.plural == "namespaces" and not rtype.group
        if dry_run:
            return self.present(rtype, obj)
        if meta.get("finalizers") or is_namespace:
            if meta.get("deletionTimestamp"):
                return self.present(rtype, obj)
            marked = copy.deepcopy(obj)
            marked["metadata"]["deletionTimestamp"] = now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            if is_namespace:
                marked["status"] = {"phase": "Terminating"}
            marked["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rtype.storage_key, marked)
            if is_namespace:
                self._empty_namespace(name)
                return self.present(rtype, self.store.get(rtype.storage_key, "", name) or marked)
            return self.present(rtype, marked)
        removed = copy.deepcopy(obj)
        self._remove(rtype, removed)
        return self.present(rtype, removed)

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> list[Obj]:
        """DELETE on a collection: each matching object is deleted as by DELETE."""
        listed = self.list_objects(rtype, namespace, label_selector, field_selector)
        return [
            self.delete(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"], None)
            for obj in listed.items
        ]

    def _remove(self, rtype: ResourceType, obj: Obj) -> None:
        self.store.remove(rtype.storage_key, obj)
        if rtype.group == resources.CRD_GROUP:
            self._unserve_crd(obj)
        namespace = obj["metadata"].get("namespace")
        if namespace:
            self._finish_namespace(namespace)

    def _empty_namespace(self, namespace: str) -> None:
        """The namespace controller's job, done at once: delete everything in a terminating namespace."""
        for rtype in self._storage_types():
            if not rtype.namespaced:
                continue
            for obj in self.store.select(rtype.storage_key, namespace):
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                self.delete(rtype, namespace, obj["metadata"]["name"], None)
        self._finish_namespace(namespace)

    def _finish_namespace(self, namespace: str) -> None:
        ns = self.store.get("/namespaces", "", namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        for rtype in self._storage_types():
            if rtype.namespaced and self.store.select(rtype.storage_key, namespace):
                return
        self.store.remove("/namespaces", copy.deepcopy(ns))

    def _storage_types(self) -> list[ResourceType]:
        seen: dict[str, ResourceType] = {}
        for rtype in self.registry.all():
            seen.setdefault(rtype.storage_key, rtype)
        return list(seen.values())

    # --- CRDs serve types ----------------------------------------------------------------------------------

    def _serve_crd(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        epoch = self.store.resource_version
        types = resources.types_from_crd(crd, epoch)
        self.registry.set_crd(name, types)
        storage_schema = next(
            ((v.get("schema") or {}).get("openAPIV3Schema") for v in crd["spec"]["versions"] if v.get("storage")),
            None,
        )
        if types and storage_schema:
            # Reads of stored objects show the new schema's defaults and pruning, as the apiserver's reads do.
            self.store.touch()
            for obj in self.store.iter_all(types[0].storage_key):
                schema.prune(obj, storage_schema)
                schema.apply_defaults(obj, storage_schema)

    def _unserve_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        storage_key = f"{spec.get('group', '')}/{(spec.get('names') or {}).get('plural', '')}"
        self.registry.remove_crd(crd["metadata"]["name"])
        for obj in self.store.select(storage_key, None):
            self.store.remove(storage_key, copy.deepcopy(obj))
        self.store.close_watchers(storage_key)

    @staticmethod
    def _ns(rtype: ResourceType, namespace: str | None) -> str:
        return (namespace or "") if rtype.namespaced else ""


def _fold_string_data(secret: Obj) -> None:
    """A Secret's write-only `stringData` is merged into `data` (base64), as the apiserver does on every write."""
    string_data = secret.pop("stringData", None)
    if not isinstance(string_data, dict):
        return
    data = secret.get("data")
    data = data if isinstance(data, dict) else {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    secret["data"] = data


def _spec_changed(rtype: ResourceType, old: Obj, new: Obj) -> bool:
    """Generation counts changes to anything but metadata (and status, where status is a subresource)."""
    skip = {"metadata", "status"} if rtype.status_subresource else {"metadata"}
    keys = (set(old) | set(new)) - skip
    return any(old.get(key) != new.get(key) for key in keys)


def _sort_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _encode_continue(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode_continue(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise errors.bad_request(f"continue key is not valid: {error}") from error
