"""The set of resource types kubesim serves: the built-ins plus whatever the stored CRDs declare.

Discovery, routing, tables and OpenAPI all read this one registry, so a CRD that appears or vanishes
changes every view of the API at once, as it does in kube-apiserver.
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
    epoch: int = 0  # bumped when the CRD changes, so stored objects get re-defaulted on read

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


def builtin_types() -> list[ResourceType]:
    """The resource types that exist before any CRD: namespaces, events and CRDs themselves."""
    return [
        ResourceType(
            group="",
            version="v1",
            plural="namespaces",
            singular="namespace",
            kind="Namespace",
            namespaced=False,
            short_names=["ns"],
            status_subresource=True,
        ),
        ResourceType(
            group="",
            version="v1",
            plural="events",
            singular="event",
            kind="Event",
            namespaced=True,
            short_names=["ev"],
        ),
        ResourceType(
            group="events.k8s.io",
            version="v1",
            plural="events",
            singular="event",
            kind="Event",
            namespaced=True,
            short_names=["ev"],
        ),
        ResourceType(
            group=CRD_GROUP,
            version="v1",
            plural="customresourcedefinitions",
            singular="customresourcedefinition",
            kind="CustomResourceDefinition",
            namespaced=False,
            short_names=["crd", "crds"],
            categories=["api-extensions"],
            status_subresource=True,
        ),
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
        keys = []
        for rtype in types:
            key = (rtype.group, rtype.version, rtype.plural)
            self._types[key] = rtype
            keys.append(key)
        self._by_crd[crd_name] = keys

    def remove_crd(self, crd_name: str) -> None:
        """Stop serving one CRD's versions."""
        for key in self._by_crd.pop(crd_name, []):
            self._types.pop(key, None)
