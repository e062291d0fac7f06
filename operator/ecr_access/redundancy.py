"""Which foreign statements of a repository policy a grant makes redundant (pure; for `adopt`).

A cluster that adopts the operator usually has the manual procedure's statement already in its
repositories (`"Sid": "AllowPull"`, the role as its one principal, the 12 pull actions). Once the
grant's own statement carries the role, that statement grants nothing more, but the operator
never removes a statement it does not own (DESIGN §2.3), so `adopt` offers to. A statement is
redundant only when removing it can take nothing away from anyone:
- `Effect: Allow`, and nothing but `Sid`, `Effect`, `Principal` and `Action` (no Condition, no
  NotAction, NotPrincipal or Resource, whose meaning a comparison would have to guess);
- `Principal` is `{"AWS": <the grant's role ARN>}` (a string or a list of it), and only that;
- every action is one the grant allows: named by it (case aside, as IAM reads actions) or matched
  by one of its globs; a wildcard action is covered only by the same wildcard in the grant.
A statement that names the role among other principals, or allows actions the grant does not, is
"partly covered": listed, and never touched.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from ecr_access import policy
from ecr_access.model import ROLE_ARN_RE

PLAIN_KEYS = frozenset({"Sid", "Effect", "Principal", "Action"})


@dataclasses.dataclass(frozen=True)
class Judged:
    """A foreign statement that names the grant's role: redundant as a whole, or only partly covered."""

    statement: Mapping[str, Any]  # exactly as found
    redundant: bool
    reason: str  # why it is only partly covered ("" when redundant)

    @property
    def sid(self) -> str:
        sid = self.statement.get("Sid")
        return sid if isinstance(sid, str) and sid else "(no Sid)"


def judge(statements: Iterable[Mapping[str, Any]], role_arn: str, actions: Iterable[str],
          prefix: str) -> list[Judged]:
    """The foreign statements among `statements` that name `role_arn`, each judged (see the module
    docstring); statements of this cluster (`prefix`) and any others are left out."""
    allowed = [action.lower() for action in actions]
    found = []
    for statement in statements:
        if policy.is_ours(statement, prefix) or statement.get("Effect") != "Allow":
            continue
        principals = aws_principals(statement.get("Principal"))
        if principals is None or not any(same_role(item, role_arn) for item in principals):
            continue
        if not set(statement) <= PLAIN_KEYS:
            continue  # conditional or otherwise qualified: not the grant's kind of statement at all
        granted = _actions(statement.get("Action"))
        if granted is None:
            continue
        others = sorted(item for item in principals if not same_role(item, role_arn))
        outside = sorted(action for action in granted if not covers(allowed, action))
        if others:
            found.append(Judged(statement, False, f"it names other principals too ({', '.join(others)})"))
        elif outside:
            found.append(Judged(statement, False, f"it allows actions the grant does not ({', '.join(outside)})"))
        else:
            found.append(Judged(statement, True, ""))
    return found


def covers(allowed: list[str], action: str) -> bool:
    """Whether the grant's actions (lower case) allow `action`."""
    wanted = action.lower()
    if "*" in wanted or "?" in wanted:
        return wanted in allowed  # a wildcard is a subset only of the same wildcard
    return any(wanted == item or (("*" in item or "?" in item) and fnmatch.fnmatchcase(wanted, item))
               for item in allowed)


def same_role(principal: str, role_arn: str) -> bool:
    """Whether a principal ARN names the role: the same partition, account and path, and the same
    name ignoring case (IAM role names are case-insensitive)."""
    if principal == role_arn:
        return True
    left, right = ROLE_ARN_RE.fullmatch(principal), ROLE_ARN_RE.fullmatch(role_arn)
    if left is None or right is None:
        return False
    return (all(left[part] == right[part] for part in ("partition", "account", "path"))
            and left["name"].lower() == right["name"].lower())


def aws_principals(principal: Any) -> list[str] | None:
    """`{"AWS": ARN}` or `{"AWS": [ARN, ...]}` as a list; None for any other form ("*", services, ...)."""
    if not isinstance(principal, Mapping) or set(principal) != {"AWS"}:
        return None
    value = principal["AWS"]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(item, str) for item in values):
        return None
    return list(values)


def _actions(value: Any) -> list[str] | None:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(item, str) for item in values):
        return None
    return list(values)
