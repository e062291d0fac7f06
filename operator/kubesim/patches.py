"""The three PATCH dialects the apiserver accepts: JSON merge patch, JSON patch and strategic merge patch.

kopf sends merge patches, `kubectl apply` sends merge patches for custom resources and strategic merge
patches for built-ins, and `kubectl patch --type=json` sends JSON patches.
"""

from __future__ import annotations

import copy
from typing import Any

from kubesim import errors

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces; neither input is changed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    # One copy of the target, merged in place: copying again at every level made a patch quadratic in depth.
    return _merge_into(copy.deepcopy(target) if isinstance(target, dict) else {}, patch)


def _merge_into(result: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _merge_into(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.bad_request(f"invalid JSON pointer: {path!r}")
    return [_unescape(token) for token in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, path)
    return node


def _child(node: Any, token: str, path: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise _unprocessable(f"replace operation does not apply: doc is missing path: {path}")
        return node[token]
    if isinstance(node, list):
        index = _index(token, len(node) - 1, path)
        return node[index]
    raise _unprocessable(f"doc is missing path: {path}")


def _index(token: str, upper: int, path: str) -> int:
    if not token.isdigit():
        raise _unprocessable(f"invalid array index {token!r} in {path}")
    index = int(token)
    if index > upper:
        raise _unprocessable(f"array index {index} out of bounds in {path}")
    return index


def _unprocessable(message: str) -> errors.ApiError:
    return errors.ApiError(422, "Invalid", message)


def _get(doc: Any, path: str) -> Any:
    node = doc
    for token in _pointer(path):
        node = _child(node, token, path)
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            parent.insert(_index(last, len(parent), path), value)
    else:
        raise _unprocessable(f"add operation does not apply: doc is missing path: {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise _unprocessable("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"remove operation does not apply: doc is missing path: {path}")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(last, len(parent) - 1, path)]
    else:
        raise _unprocessable(f"remove operation does not apply: doc is missing path: {path}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902, all six operations; a failed `test` answers 422 like the apiserver."""
    if not isinstance(operations, list):
        raise errors.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise errors.bad_request(f"invalid json patch operation: {operation!r}")
        op, path = operation["op"], operation.get("path", "")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc = _remove(doc, path)
        elif op == "replace":
            _get(doc, path)
            doc = _remove(doc, path) if _pointer(path) else doc
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "move":
            value = _get(doc, operation["from"])
            doc = _remove(doc, operation["from"])
            doc = _add(doc, path, value)
        elif op == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, operation["from"])))
        elif op == "test":
            try:
                actual = _get(doc, path)
            except errors.ApiError:
                actual = object()
            if actual != operation.get("value"):
                raise _unprocessable(f"the server rejected our request due to an error in our request: "
                                     f"testing value {path} failed")
        else:
            raise errors.bad_request(f"unexpected json patch operation: {op!r}")
    return doc


# --- strategic merge patch -------------------------------------------------------------------------------------
#
# In kube-apiserver a list's merge strategy comes from struct tags of the Go types (`patchStrategy:"merge"`,
# `patchMergeKey:"name"`). kubesim has no Go types, so the lists that merge are listed here by their path from the
# object's root (list items add no step to a path). Every other list is atomic: a patch replaces it whole, which is
# also what the Go types say of, e.g., RBAC `rules` and `subjects`.

Path = tuple[str, ...]
MergeKeys = dict[Path, str]  # path of a list -> the merge key of its items; "" for a set of primitives

_OBJECT_LISTS: MergeKeys = {
    ("metadata", "finalizers"): "",
    ("metadata", "ownerReferences"): "uid",
    ("status", "conditions"): "type",
}
_CONTAINER_LISTS: MergeKeys = {
    ("env",): "name",
    ("ports",): "containerPort",
    ("volumeMounts",): "mountPath",
    ("volumeDevices",): "devicePath",
}
_POD_SPEC_LISTS: MergeKeys = {
    ("volumes",): "name",
    ("imagePullSecrets",): "name",
    ("hostAliases",): "ip",
    ("topologySpreadConstraints",): "topologyKey",
    ("resourceClaims",): "name",
    ("schedulingGates",): "name",
}
_CONTAINERS = ("containers", "initContainers", "ephemeralContainers")


def _pod_spec_lists(prefix: Path) -> MergeKeys:
    keys = {prefix + path: key for path, key in _POD_SPEC_LISTS.items()}
    for containers in _CONTAINERS:
        keys[(*prefix, containers)] = "name"
        keys.update({(*prefix, containers, *path): key for path, key in _CONTAINER_LISTS.items()})
    return keys


_KIND_LISTS: dict[str, MergeKeys] = {
    "Namespace": {("spec", "finalizers"): ""},
    "Service": {("spec", "ports"): "port"},
    "ServiceAccount": {("secrets",): "name"},
    "Deployment": _pod_spec_lists(("spec", "template", "spec")),
}


def merge_keys(kind: str) -> MergeKeys:
    """The lists of a built-in kind that a strategic merge patch merges instead of replacing."""
    return {**_OBJECT_LISTS, **_KIND_LISTS.get(kind, {})}


def strategic_merge_patch(target: Any, patch: Any, keys: MergeKeys, path: Path = ()) -> Any:
    """A strategic merge patch, as `kubectl apply` and `kubectl patch` compute them for built-ins.

    Maps merge as in a merge patch (null deletes). The lists in `keys` merge: items with the same merge key are
    patched, new ones appended, `{"$patch": "delete", key: ...}` removes one and `{"$patch": "replace"}` replaces
    the list; `$setElementOrder/<list>` orders the result and `$deleteFromPrimitiveList/<list>` removes values.
    A map with `$patch: replace` replaces, with `$patch: delete` deletes, and `$retainKeys` drops the keys it does
    not name. Every other list is replaced.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return strategic_merge_patch({}, {k: v for k, v in patch.items() if k != "$patch"}, keys, path)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        if key.startswith("$"):
            continue
        child = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and child in keys:
            result[key] = _merge_list(result.get(key), value, keys, child)
        else:
            merged = strategic_merge_patch(result.get(key), value, keys, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, order in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(order, list):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = _reorder(result[field], order, keys.get((*path, field), ""))
    return result


def _merge_list(current: Any, patch: list[Any], keys: MergeKeys, path: Path) -> list[Any]:
    merge_key = keys[path]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        kept = [item for item in patch if not (isinstance(item, dict) and item.get("$patch") == "replace")]
        return [strategic_merge_patch({}, item, keys, path) if isinstance(item, dict) else item for item in kept]
    result = copy.deepcopy(current) if isinstance(current, list) else []
    if not merge_key:
        return result + [item for item in patch if item not in result]
    for item in patch:
        if not isinstance(item, dict):
            continue
        index = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(merge_key) == item.get(merge_key)),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item, keys, path))
        else:
            result[index] = strategic_merge_patch(result[index], item, keys, path)
    return result


def _reorder(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    """Items named in `order` take its order; the others (the server's own) keep their positions."""

    def identity(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    wanted = [identity(entry) for entry in order]
    listed = sorted((item for item in items if identity(item) in wanted), key=lambda item: wanted.index(identity(item)))
    result = list(listed)
    for position, item in enumerate(items):
        if identity(item) not in wanted:
            result.insert(min(position, len(result)), item)
    return result
