"""The subset of Kubernetes JSONPath that `additionalPrinterColumns` use.

Printer columns are evaluated server-side for `kubectl get`; typical paths are `.spec.role.name`,
`.status.conditions[?(@.type=="Ready")].status`, `.spec.repositories[*].name` and `.metadata.creationTimestamp`.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""
    \.\.(?P<recursive>[A-Za-z0-9_-]+)      # ..name
  | \.(?P<name>[A-Za-z0-9_$-]+)            # .name
  | \.\*                                   # .*
    (?P<star_dot>)
  | \[\?\((?P<filter>.*?)\)\]              # [?(@.a=="b")]
  | \[(?P<quoted>'[^']*'|"[^"]*")\]        # ['name']
  | \[(?P<star>\*)\]                       # [*]
  | \[(?P<slice>-?\d*:-?\d*)\]             # [1:3]
  | \[(?P<index>-?\d+)\]                   # [0]
    """,
    re.VERBOSE,
)
_FILTER = re.compile(r"^\s*@((?:\.[A-Za-z0-9_-]+)+)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$")


class JSONPathError(ValueError):
    """A path kubesim cannot parse."""


def _steps(path: str) -> list[tuple[str, Any]]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        text = "." + text
    steps: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise JSONPathError(f"unrecognized JSONPath at {text[position:]!r}")
        position = match.end()
        groups = match.groupdict()
        if groups["recursive"] is not None:
            steps.append(("recursive", groups["recursive"]))
        elif groups["name"] is not None:
            steps.append(("name", groups["name"]))
        elif groups["filter"] is not None:
            steps.append(("filter", _parse_filter(groups["filter"])))
        elif groups["quoted"] is not None:
            steps.append(("name", groups["quoted"][1:-1]))
        elif groups["slice"] is not None:
            start, _, end = groups["slice"].partition(":")
            steps.append(("slice", (int(start) if start else None, int(end) if end else None)))
        elif groups["index"] is not None:
            steps.append(("index", int(groups["index"])))
        else:
            steps.append(("star", None))
    return steps


def _parse_filter(text: str) -> tuple[list[str], str | None, Any]:
    match = _FILTER.match(text)
    if not match:
        raise JSONPathError(f"unsupported filter {text!r}")
    fields = match.group(1).strip(".").split(".")
    op, literal = match.group(2), match.group(3)
    value: Any = None
    if literal is not None:
        literal = literal.strip()
        if literal[:1] in ("'", '"'):
            value = literal[1:-1]
        elif literal in ("true", "false"):
            value = literal == "true"
        else:
            try:
                value = float(literal) if "." in literal else int(literal)
            except ValueError as error:
                raise JSONPathError(f"unsupported literal {literal!r}") from error
    return fields, op, value


def _lookup(node: Any, fields: list[str]) -> tuple[bool, Any]:
    for field in fields:
        if not isinstance(node, dict) or field not in node:
            return False, None
        node = node[field]
    return True, node


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "==":
        return bool(actual == expected)
    if op == "!=":
        return bool(actual != expected)
    try:
        return bool({"<": actual < expected, ">": actual > expected,
                     "<=": actual <= expected, ">=": actual >= expected}[op])
    except TypeError:
        return False


def _recurse(node: Any, name: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, dict):
        if name in node:
            found.append(node[name])
        for value in node.values():
            found.extend(_recurse(value, name))
    elif isinstance(node, list):
        for item in node:
            found.extend(_recurse(item, name))
    return found


def find(obj: Any, path: str) -> list[Any]:
    """All values the path selects, in document order (an empty list when nothing matches)."""
    nodes = [obj]
    for kind, arg in _steps(path):
        following: list[Any] = []
        for node in nodes:
            if kind == "name":
                if isinstance(node, dict) and arg in node:
                    following.append(node[arg])
            elif kind == "index":
                if isinstance(node, list) and -len(node) <= arg < len(node):
                    following.append(node[arg])
            elif kind == "slice":
                if isinstance(node, list):
                    following.extend(node[arg[0] : arg[1]])
            elif kind == "star":
                if isinstance(node, list):
                    following.extend(node)
                elif isinstance(node, dict):
                    following.extend(node.values())
            elif kind == "recursive":
                following.extend(_recurse(node, arg))
            elif kind == "filter" and isinstance(node, list):
                fields, op, expected = arg
                for item in node:
                    present, actual = _lookup(item, fields)
                    if present and (op is None or _compare(actual, op, expected)):
                        following.append(item)
        nodes = following
    return nodes
