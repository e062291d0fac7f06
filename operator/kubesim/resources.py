"""The set of resource types kubesim serves: the built-ins plus whatever the stored CRDs declare.

Discovery, routing, tables and OpenAPI all read this one registry, so a CRD that appears or vanishes
changes every view of the API at once, as it does in kube-apiserver.

Besides Namespaces, Events and CRDs, kubesim serves the built-in kinds an operator's install manifests
contain (ServiceAccount, ConfigMap, Secret, Service, Deployment and the RBAC kinds), so that
`kubectl apply -k` of a whole install works. They are served generically: stored as sent, with no schema
and no controller behind them (a Deployment never gets pods, nor a `status` with `observedGeneration`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CRD_GROUP = "apiextensions.k8s.io"


@dataclasses.dataclass
class ResourceType:
    """One served (group, version, plural) and everything the API needs to know about it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list[str] = dataclasses.field(default_factory=list)
    categories: list[str] = dataclasses.field(default_factory=list)
    status_subresource: bool = False
    schema: dict[str, Any] | None = None  # openAPIV3Schema for custom resources; None = no validation
    printer_columns: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    custom: bool = False  # served from a CRD (validation, pruning, no strategic merge patch)
    generation: bool = False  # metadata.generation counts spec changes (always true for custom resources)
    epoch: int = 0  # bumped when the CRD changes, so stored objects get re-defaulted on read

    @property
    def tracks_generation(self) -> bool:
        """Whether the apiserver sets and bumps `metadata.generation` for this type."""
        return self.custom or self.generation

    @property
    def api_version(self) -> str:
        """`group/version`, or `v1` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """All versions of one resource share storage (kubesim does no conversion beyond apiVersion)."""
        return f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        """The kind of a LIST response."""
        return f"{self.kind}List"

    def describe_path(self, namespace: str | None, name: str | None = None) -> str:
        """The URL path of this resource (used for selfLink-like messages and OpenAPI)."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        ns = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        tail = f"/{name}" if name else ""
        return f"{prefix}{ns}/{self.plural}{tail}"


def _generic(
    group: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    **options: Any,
) -> ResourceType:
    """A schemaless built-in of version v1, singular name derived from the kind."""
    return ResourceType(
        group=group,
        version="v1",
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=list(short_names),
        **options,
    )


def builtin_types() -> list[ResourceType]:
    """The resource types that exist before any CRD, in the order discovery lists them."""
    rbac = "rbac.authorization.k8s.io"
    return [
        _generic("", "namespaces", "Namespace", namespaced=False, short_names=("ns",), status_subresource=True),
        _generic("", "events", "Event", short_names=("ev",)),
        _generic("", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
        _generic("", "configmaps", "ConfigMap", short_names=("cm",)),
        _generic("", "secrets", "Secret"),
        _generic("", "services", "Service", short_names=("svc",), categories=["all"], status_subresource=True),
        _generic("apps", "deployments", "Deployment", short_names=("deploy",), categories=["all"],
                 status_subresource=True, generation=True),
        _generic("events.k8s.io", "events", "Event", short_names=("ev",)),
        _generic(rbac, "clusterroles", "ClusterRole", namespaced=False),
        _generic(rbac, "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
        _generic(rbac, "roles", "Role"),
        _generic(rbac, "rolebindings", "RoleBinding"),
        _generic(CRD_GROUP, "customresourcedefinitions", "CustomResourceDefinition", namespaced=False,
                 short_names=("crd", "crds"), categories=["api-extensions"], status_subresource=True,
                 generation=True),
    ]


def types_from_crd(crd: dict[str, Any], epoch: int) -> list[ResourceType]:
    """The served versions of a CRD, one ResourceType each."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    result = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        result.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                plural=names.get("plural", ""),
                singular=names.get("singular") or names.get("kind", "").lower(),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=list(names.get("shortNames") or []),
                categories=list(names.get("categories") or []),
                status_subresource="status" in subresources,
                schema=schema,
                printer_columns=list(version.get("additionalPrinterColumns") or []),
                custom=True,
                epoch=epoch,
            )
        )
    return result


class Registry:
    """Resource types by (group, version, plural), kept in the order they were registered."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._by_crd: dict[str, list[tuple[str, str, str]]] = {}
        self.generation = 0  # bumped whenever what is served changes (documents derived from it are cached by it)
        for rtype in builtin_types():
            self._types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at this group/version/plural, if any."""
        return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        """Every served type."""
        return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> its versions, preferred (first registered) first; the core group is ''."""
        groups: dict[str, list[str]] = {}
        for rtype in self._types.values():
            versions = groups.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return groups

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        """The types of one group/version."""
        return [t for t in self._types.values() if t.group == group and t.version == version]

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        """The type for an object's apiVersion and kind (used for embedded references)."""
        for rtype in self._types.values():
            if rtype.api_version == api_version and rtype.kind == kind:
                return rtype
        return None

    def set_crd(self, crd_name: str, types: list[ResourceType]) -> None:
        """Replace what one CRD serves."""
        self.remove_crd(crd_name)
        self.generation += 1
        keys = []
        for rtype in types:
            key = (rtype.group, rtype.version, rtype.plural)
            self._types[key] = rtype
            keys.append(key)
        self._by_crd[crd_name] = keys

    def remove_crd(self, crd_name: str) -> None:
        """Stop serving one CRD's versions."""
        self.generation += 1
        for key in self._by_crd.pop(crd_name, []):
            self._types.pop(key, None)
