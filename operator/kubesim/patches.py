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
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
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


# Lists that strategic merge patch merges instead of replacing, for the built-ins kubesim serves.
_MERGED_PRIMITIVE_LISTS = {("metadata", "finalizers"), ("spec", "finalizers")}
_MERGED_KEYED_LISTS = {("metadata", "ownerReferences"): "uid"}


def strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """A strategic merge patch for the few built-ins kubesim has.

    Maps merge as in a merge patch; `$patch: replace|delete`, `$retainKeys`, `$deleteFromPrimitiveList/` and
    `$setElementOrder/` directives are honoured; only the lists whose Go types declare a merge strategy merge.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        if key.startswith("$"):
            continue
        child = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and child in _MERGED_PRIMITIVE_LISTS:
            existing = list(result.get(key) or [])
            result[key] = existing + [item for item in value if item not in existing]
        elif isinstance(value, list) and child in _MERGED_KEYED_LISTS:
            result[key] = _merge_keyed(result.get(key) or [], value, _MERGED_KEYED_LISTS[child])
        else:
            merged = strategic_merge_patch(result.get(key), value, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _merge_keyed(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            continue
        index = next((i for i, old in enumerate(result) if old.get(merge_key) == item.get(merge_key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(copy.deepcopy(item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result
