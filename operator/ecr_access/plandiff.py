"""What a plan would change in AWS: the difference between what AWS holds and what the planning
overlay ended with (`planning`), per repository policy and per role (pure).

Why a diff of documents and not the list of writes: one repository may be written twice in a plan
(two grants' syncs), and a write may put back what another took out; what a person must review is
the net change, statement by statement: which principals enter or leave which Sid, which
statements appear or go, and which managed policies and ledger tags a role gains or loses.
Statements are matched by Sid (a statement without one, by its content) and compared by meaning,
as the operator compares them (`policy.normalize`), so a policy that only changes form shows nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from ecr_access import policy
from ecr_access.planning import RoleOverlay


@dataclasses.dataclass(frozen=True)
class StatementChange:
    """One statement that appears ("add"), goes ("remove") or changes ("update")."""

    sid: str  # its Sid, or "(no Sid) <content>" for a statement without one
    change: str
    ours: bool  # this cluster's own statement (`policy.is_ours`)
    principals_added: tuple[str, ...] = ()
    principals_removed: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()  # an added statement's actions
    fields: tuple[str, ...] = ()  # an updated statement's other keys that change (e.g. Action)
    # Removed principals that no grant the plan was given accounts for (offline plans: they may
    # belong to grants outside the files, which the plan cannot see).
    unaccounted: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RepositoryChange:
    arn: str
    account: str
    policy: str  # "create" (no policy before), "update", "delete" (the policy is deleted)
    statements: tuple[StatementChange, ...]


@dataclasses.dataclass(frozen=True)
class RoleChange:
    arn: str
    account: str
    attach: tuple[str, ...] = ()  # managed policy ARNs
    detach: tuple[str, ...] = ()
    tags_set: tuple[tuple[str, str, str | None], ...] = ()  # (key, new value, old value or None)
    tags_removed: tuple[tuple[str, str], ...] = ()  # (key, old value)

    def __bool__(self) -> bool:
        return bool(self.attach or self.detach or self.tags_set or self.tags_removed)


def repository(arn: str, account: str, before: str | None, after: str | None, prefix: str, *,
               accounted: Callable[[str], bool] | None = None) -> RepositoryChange | None:
    """The change from policy text `before` to `after` (None: no policy), or None when they mean
    the same. `accounted(principal)`: whether a removed principal is one the plan's grants account
    for (None: every one is)."""
    old, new = policy.parse(before), policy.parse(after)
    if policy.equivalent(old, new):
        return None
    was, now = _keyed(old), _keyed(new)
    changes = []
    for key in sorted(set(was) | set(now), key=lambda item: (not item.startswith(policy.GRANT_SID_PREFIX), item)):
        first, second = was.get(key), now.get(key)
        statement = second if second is not None else first
        assert statement is not None
        ours = policy.is_ours(statement, prefix)
        if first is None:
            changes.append(StatementChange(key, "add", ours, principals_added=tuple(sorted(principals(statement))),
                                           actions=_actions(statement)))
            continue
        if second is None:
            removed = tuple(sorted(principals(first)))
            changes.append(StatementChange(key, "remove", ours, principals_removed=removed,
                                           unaccounted=_unaccounted(removed, accounted)))
            continue
        if policy.normalize({"Statement": [first]}) == policy.normalize({"Statement": [second]}):
            continue
        before_set, after_set = principals(first), principals(second)
        removed = tuple(sorted(before_set - after_set))
        others = tuple(sorted(name for name in set(first) | set(second)
                              if name != "Principal" and _differs(first, second, name)))
        changes.append(StatementChange(key, "update", ours, principals_added=tuple(sorted(after_set - before_set)),
                                       principals_removed=removed, fields=others,
                                       unaccounted=_unaccounted(removed, accounted)))
    kind = "create" if old is None else "delete" if new is None else "update"
    return RepositoryChange(arn, account, kind, tuple(changes))


def role(entry: RoleOverlay, name: str, account: str) -> RoleChange | None:
    """What the plan's writes change on one role (None: nothing)."""
    baseline = entry.attached or frozenset()
    final = (baseline - entry.removed) | entry.added
    before_tags = dict(entry.info.tags) if entry.info is not None else {}
    after_tags = before_tags if entry.tags is None else entry.tags
    found = RoleChange(
        entry.info.arn if entry.info is not None else name, account,
        attach=tuple(sorted(final - baseline)), detach=tuple(sorted(baseline - final)),
        tags_set=tuple((key, value, before_tags.get(key)) for key, value in sorted(after_tags.items())
                       if before_tags.get(key) != value),
        tags_removed=tuple((key, value) for key, value in sorted(before_tags.items()) if key not in after_tags))
    return found if found else None


def principals(statement: Mapping[str, Any]) -> frozenset[str]:
    """A statement's AWS principals (`"*"` for everyone); other principal kinds are not listed."""
    given = statement.get("Principal")
    if given == "*":
        return frozenset({"*"})
    value = given.get("AWS", []) if isinstance(given, Mapping) else []
    return frozenset([value] if isinstance(value, str) else [item for item in value if isinstance(item, str)])


def _actions(statement: Mapping[str, Any]) -> tuple[str, ...]:
    value = statement.get("Action", [])
    return tuple(sorted([value] if isinstance(value, str) else [str(item) for item in value]))


def _differs(first: Mapping[str, Any], second: Mapping[str, Any], name: str) -> bool:
    if (name in first) != (name in second):
        return True
    return bool(policy.normalize({"Statement": [{name: first[name]}]})
                != policy.normalize({"Statement": [{name: second[name]}]}))


def _unaccounted(removed: tuple[str, ...], accounted: Callable[[str], bool] | None) -> tuple[str, ...]:
    return () if accounted is None else tuple(item for item in removed if not accounted(item))


def _keyed(doc: policy.Document | None) -> dict[str, policy.Statement]:
    """Statements by Sid; one without a Sid (or a repeated Sid) by its content as well."""
    keyed: dict[str, policy.Statement] = {}
    for statement in policy.statements(doc):
        sid = statement.get("Sid")
        key = sid if isinstance(sid, str) and sid else "(no Sid) " + json.dumps(statement, sort_keys=True)
        while key in keyed:
            key += " (again)"
        keyed[key] = statement
    return keyed
