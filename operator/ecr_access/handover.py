"""The `Retain` hand-over: a deleting grant's access becomes a statement of its own (DESIGN §2.5).

Why it is derived, like everything else in a repository's policy: a Retain grant being deleted
stays in the live-grant index (`grants.from_body`) until its finalizer goes. Every sync of one of
its repositories, a drift pass or another grant's change included, then either writes its
hand-over statement or, while that statement does not fit, keeps the grant's role as a principal
of the shared statement. So the role never loses access between "the grant began deleting" and
"the hand-over is written", whichever sync gets there first, and a restart loses nothing.

Pure: stdlib and `policy` only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ecr_access import policy


@dataclasses.dataclass(frozen=True)
class Handover:
    """One Retain grant's access to one repository, on its way to a statement of its own."""

    sid: str  # the hand-over statement's Sid, `policy.retained_sid`
    shared_sid: str  # the shared statement that carries the role until then
    principal: str  # the grant's resolved role ARN
    actions: tuple[str, ...]

    def statement(self) -> policy.Statement:
        return policy.build_retained_statement(self.sid, self.principal, self.actions)


@dataclasses.dataclass(frozen=True)
class HandoverFit:
    """`policy.Fit`, plus the hand-overs that are not in the document (they did not fit)."""

    document: policy.Document | None
    rejected: dict[str, frozenset[str]]
    pending: frozenset[str]  # hand-over Sids still missing from `document`


def written(document: policy.Document | None, sid: str) -> bool:
    """Whether a statement with this Sid is in the document (once written it is foreign)."""
    return any(statement.get("Sid") == sid for statement in policy.statements(document))


def fit(
    document: policy.Document | None,
    prefix: str,
    desired: Iterable[policy.DesiredStatement],
    handovers: Iterable[Handover],
    limit: int = policy.MAX_POLICY_CHARS,
) -> HandoverFit:
    """Merge the shared statements and the hand-overs not yet written, within `limit`.

    First try: every pending hand-over written, and its role out of the shared statement. A
    hand-over is access the role already has, so, as in `policy.fit`, it comes before principals
    new to the policy (those that do not fit are `rejected`). If even that leaves a hand-over out,
    write no hand-over and keep those roles in the shared statements instead, so that removals and
    other changes still land (one hand-over never blocks a repository) and the Retain grant's role
    keeps its access until there is room.
    """
    wanted = list(desired)
    pending = [item for item in handovers if not written(document, item.sid)]
    first = policy.fit(document, prefix, wanted, [item.statement() for item in pending], limit)
    if not pending or all(written(first.document, item.sid) for item in pending):
        return HandoverFit(first.document, first.rejected, frozenset())
    principals: dict[str, set[str]] = {}
    for item in pending:
        principals.setdefault(item.shared_sid, set()).add(item.principal)
    by_sid = {item.sid: item for item in wanted}
    for sid, extra in principals.items():
        actions = next(item.actions for item in pending if item.shared_sid == sid)
        known = by_sid.get(sid, policy.DesiredStatement(sid, actions, frozenset()))
        by_sid[sid] = dataclasses.replace(known, principals=known.principals | extra)
    second = policy.fit(document, prefix, list(by_sid.values()), [], limit)
    return HandoverFit(second.document, second.rejected, frozenset(item.sid for item in pending))
