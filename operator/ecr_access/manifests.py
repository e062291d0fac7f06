"""The objects a person hands `plan` and `adopt` in files (`-f`), read as the API server would hold them.

Why a module of its own: the commands judge these objects exactly as the operator judges the live
ones, so they must arrive in the same shape, the raw body (`apiVersion`, `kind`, `metadata`,
`spec`), keyed the way the operator's indexes key them. Only the four kinds the operator reads are
accepted (EcrAccessGrant, EcrGrantPolicy, EcrAccessAccount and Namespace, whose labels select
policies); anything else is an error that names the file and the document, because a plan that
silently skipped a document would answer for a different set of objects than the one applied.

Nothing here judges a spec: a grant whose spec the operator would refuse is read all the same and
comes out of the plan as its InvalidSpec verdict. Pure: PyYAML and `model` only.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from ecr_access.model import GROUP, VERSION, GrantKey

API_VERSION = f"{GROUP}/{VERSION}"
GRANT, POLICY, ACCOUNT, NAMESPACE = "EcrAccessGrant", "EcrGrantPolicy", "EcrAccessAccount", "Namespace"
KINDS = {(API_VERSION, GRANT), (API_VERSION, POLICY), (API_VERSION, ACCOUNT), ("v1", NAMESPACE)}
DEFAULT_NAMESPACE = "default"  # where a grant without metadata.namespace goes, as kubectl's default context
SUFFIXES = (".yaml", ".yml", ".json")

Body = dict[str, Any]


class ManifestError(ValueError):
    """A document the commands cannot take, with where it is (`file`, document number from 1)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclasses.dataclass
class Objects:
    """Raw bodies by the key the operator's indexes use: grants by namespace and name, the three
    cluster-scoped kinds by name."""

    grants: dict[GrantKey, Body] = dataclasses.field(default_factory=dict)
    policies: dict[str, Body] = dataclasses.field(default_factory=dict)
    accounts: dict[str, Body] = dataclasses.field(default_factory=dict)
    namespaces: dict[str, Body] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.grants or self.policies or self.accounts or self.namespaces)

    def copy(self) -> Objects:
        return Objects(dict(self.grants), dict(self.policies), dict(self.accounts), dict(self.namespaces))

    @classmethod
    def of(cls, bodies: Iterable[Mapping[str, Any]]) -> Objects:
        """Bodies as the API server returns them (the cluster's listing); unknown kinds are skipped."""
        found = cls()
        for body in bodies:
            found.add(dict(body), where=None)
        return found

    def add(self, body: Body, where: str | None) -> None:
        """Add one object; `where` names its document, and makes a second copy of one object an error."""
        kind, meta = body.get("kind"), body.get("metadata") or {}
        name = str(meta.get("name", ""))
        table: dict[Any, Body]
        if kind == GRANT:
            namespace = str(meta.get("namespace") or DEFAULT_NAMESPACE)
            body = {**body, "metadata": {**meta, "namespace": namespace}}
            key: Any = GrantKey(namespace, name)
            table = self.grants
        elif kind in (POLICY, ACCOUNT, NAMESPACE):
            key = name
            table = {POLICY: self.policies, ACCOUNT: self.accounts, NAMESPACE: self.namespaces}[kind]
        else:
            return
        if where is not None and key in table:
            raise ManifestError(where, f"{kind} {key} appears twice in the files")
        table[key] = body


def read(paths: Iterable[str]) -> Objects:
    """Every object in the files (`-` is standard input; a directory means its YAML and JSON files,
    sorted); raises ManifestError for the first document that is not one of `KINDS`."""
    found = Objects()
    for name, text in _sources(paths):
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as error:
            raise ManifestError(name, f"not YAML: {error}") from None
        number = 0
        for document in documents:
            if document is None:  # an empty document (a trailing `---`)
                continue
            number += 1
            for index, body in _items(document, f"{name}, document {number}"):
                where = f"{name}, document {number}" + (f", item {index}" if index is not None else "")
                found.add(_checked(body, where), where)
    return found


def _sources(paths: Iterable[str]) -> Iterator[tuple[str, str]]:
    for given in paths:
        if given == "-":
            yield "<stdin>", sys.stdin.read()
            continue
        path = pathlib.Path(given)
        if path.is_dir():
            files = sorted(item for item in path.iterdir() if item.is_file() and item.suffix in SUFFIXES)
            if not files:
                raise ManifestError(given, "the directory holds no .yaml, .yml or .json file")
        else:
            files = [path]
        for item in files:
            try:
                yield str(item), item.read_text()
            except OSError as error:
                raise ManifestError(str(item), f"cannot read it: {error.strerror or error}") from None


def _items(document: Any, where: str) -> Iterator[tuple[int | None, Any]]:
    """A document, or the items of a `kind: List` (what `kubectl get -o yaml` writes)."""
    if isinstance(document, Mapping) and document.get("kind") == "List" and document.get("apiVersion") == "v1":
        items = document.get("items")
        if not isinstance(items, list):
            raise ManifestError(where, "a List without a list of items")
        yield from ((index, item) for index, item in enumerate(items, 1))
    else:
        yield None, document


def _checked(body: Any, where: str) -> Body:
    if not isinstance(body, Mapping):
        raise ManifestError(where, "not an object (a Kubernetes manifest is a mapping with apiVersion and kind)")
    kind, version = body.get("kind"), body.get("apiVersion")
    if (version, kind) not in KINDS:
        known = ", ".join(f"{k} ({v})" for v, k in sorted(KINDS))
        raise ManifestError(where, f"{kind or 'no kind'} ({version or 'no apiVersion'}) is not an object the "
                            f"operator reads; only {known} can be planned")
    meta = body.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ManifestError(where, f"the {kind} has no metadata.name")
    namespace = meta.get("namespace")
    if kind != GRANT and namespace:
        raise ManifestError(where, f"a {kind} is cluster-scoped: it has no metadata.namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ManifestError(where, "metadata.namespace must be a string")
    return dict(body)
