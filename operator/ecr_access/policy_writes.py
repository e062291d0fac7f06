"""What one repository policy write changes in this cluster's statements (pure).

For the audit line (principals added and removed) and for drift accounting: what the write puts
back of what the operator last saw in the policy (`known`), and what it takes out that someone put
into our statements since, is drift repaired. A write that no one tampered before is a change,
however it was asked for: a grant the policies permit again, or no longer permit, is granted or
revoked, not repaired.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ecr_access import policy
from ecr_access.model import GrantKey


def asking(grants: Iterable[GrantKey], *, orphan: bool = False) -> str:
    """What asked for a write, as every AUDIT line ends ("requested by ..."): the grants whose
    change or delete it serves, else the orphan sweep or the drift check. One spelling for the
    repositories' and the roles' lines, so that one search finds both."""
    names = sorted(str(key) for key in grants)
    return str(names) if names else ("the orphan sweep" if orphan else "the drift check")


@dataclasses.dataclass(frozen=True)
class WriteChange:
    added: tuple[str, ...]  # principals in our statements after the write and not before
    removed: tuple[str, ...]
    statements_restored: int = 0  # whole statements of ours put back
    principals_repaired: int = 0  # principals put back, or taken out after someone added them
    restored: frozenset[tuple[str, str]] = frozenset()  # (Sid, principal) put back: their grants' Event

    @property
    def changed(self) -> frozenset[str]:
        return frozenset(self.added) | frozenset(self.removed)


def change(before: policy.Document | None, after: policy.Document | None, prefix: str, *,
           known: policy.Document | None = None, has_known: bool = False) -> WriteChange:
    """What writing `after` over `before` does to our statements; `known` (when `has_known`): the
    policy as the operator last read or verified it, before whatever happened since."""
    was, now = policy.owned_principals(before, prefix), policy.owned_principals(after, prefix)
    old = {arn for arns in was.values() for arn in arns}
    new = {arn for arns in now.values() for arn in arns}
    added, removed = tuple(sorted(new - old)), tuple(sorted(old - new))
    if not has_known:
        return WriteChange(added, removed)
    then = policy.owned_principals(known, prefix)
    statements = [sid for sid in then if sid in now and sid not in was]
    put_back = {sid: (then[sid] & now[sid]) - was[sid] for sid in then if sid in now and sid in was}
    taken_out = {sid: was[sid] - then.get(sid, frozenset()) - now.get(sid, frozenset()) for sid in was}
    restored = {(sid, arn) for sid in statements for arn in then[sid] & now[sid]}
    restored |= {(sid, arn) for sid, arns in put_back.items() for arn in arns}
    repaired = sum(len(arns) for arns in put_back.values()) + sum(len(arns) for arns in taken_out.values())
    return WriteChange(added, removed, len(statements), repaired, frozenset(restored))
