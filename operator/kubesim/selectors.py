"""Label and field selectors, parsed and matched with the apiserver's grammar.

kopf filters its watches with them, `kubectl get -l` sends label selectors, and `kubectl wait`,
`kubectl delete` and `kubectl describe` send field selectors (`metadata.name=x`, `involvedObject.uid=...`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from kubesim import errors


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One clause: `key op values`."""

    key: str
    op: str  # =, !=, in, notin, exists, !exists
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a label map satisfies this clause."""
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # != and notin also match objects without the label, as in apimachinery.
        return not present or labels[self.key] not in self.values


_SET_CLAUSE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_CLAUSE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_clauses(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    clauses: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            clauses.append("".join(current))
            current = []
        else:
            current.append(char)
    clauses.append("".join(current))
    return [c for c in clauses if c.strip()]


def parse_labels(text: str | None) -> list[Requirement]:
    """Parse a labelSelector query value; a syntax error is a 400 like the apiserver's."""
    if not text:
        return []
    result = []
    for clause in _split_clauses(text):
        eq = _EQ_CLAUSE.match(clause)
        if eq:
            op = "!=" if eq.group(2) == "!=" else "="
            result.append(Requirement(eq.group(1), op, (eq.group(3),)))
            continue
        match = _SET_CLAUSE.match(clause)
        if not match or (match.group(1) and match.group(3)):
            raise errors.bad_request(f"unable to parse requirement: invalid label selector: {clause.strip()!r}")
        negated, key, op, values = match.groups()
        if op:
            items = tuple(v.strip() for v in values.split(",") if v.strip())
            result.append(Requirement(key, op, items))
        else:
            result.append(Requirement(key, "!exists" if negated else "exists"))
    return result


def matches_labels(requirements: list[Requirement], obj: dict[str, Any]) -> bool:
    """Whether an object's labels satisfy every clause."""
    if not requirements:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(req.matches(labels) for req in requirements)


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    """One field selector clause: a dotted path compared for (in)equality."""

    path: str
    value: str
    negated: bool

    def matches(self, obj: dict[str, Any]) -> bool:
        """Compare the field's string form; a missing field reads as the empty string."""
        node: Any = obj
        for part in self.path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        actual = "" if node is None else str(node).lower() if isinstance(node, bool) else str(node)
        return (actual != self.value) if self.negated else (actual == self.value)


# Custom resources allow only these (plus what selectableFields declare, which kubesim does not model).
CUSTOM_RESOURCE_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


def parse_fields(text: str | None, allowed: frozenset[str] | None = None) -> list[FieldRequirement]:
    """Parse a fieldSelector; `allowed` limits the field names, as for custom resources."""
    if not text:
        return []
    result = []
    for clause in text.split(","):
        if not clause.strip():
            continue
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", clause)
        if not match:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{clause}'")
        path, op, value = match.groups()
        if allowed is not None and path not in allowed:
            raise errors.bad_request(f'field label not supported: {path}')
        result.append(FieldRequirement(path, value, op == "!="))
    return result


def matches_fields(requirements: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    """Whether an object satisfies every field clause."""
    return all(req.matches(obj) for req in requirements)
