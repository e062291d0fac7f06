"""Principals ECR refuses: find them, hold them back, and keep every other grant moving (DESIGN §2.6).

ECR rejects a whole policy document that names a principal it cannot see: a role that does not
exist, a role ARN in another account (the operator cannot look those up), or a role created
seconds ago that IAM has not propagated yet. Without this module one such grant, in any namespace,
blocked every write to a shared repository, removals included, and every grant on it ended
`InvalidRequest` with a message that named no one.

So when ECR refuses a document:
1. write it with only the principals it already accepted (those in the policy as read), so that
   removals and unchanged grants always land;
2. find the refused ones among the principals added since, by bisection (a few writes: about
   2·log2(k) for one bad principal among k new ones);
3. hold the refused ones back, and offer them again after a back-off that doubles from `retry` up
   to `retry_max` (an hour), so that a grant left Stalled costs one refused write per back-off, not
   one per drift pass; the grant's own apply (a spec change, a kopf retry, a reconcile-now request)
   offers its role again at once. Only the refused principals' grants are told (`RolePropagating`
   while the propagation window lasts, then `PrincipalRejected`, naming the role ARN).

Pure: the writes go through the `write` callable given to `isolate`; the bookkeeping is a small
record the reconciler keeps and passes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping

from ecr_access import handover, policy
from ecr_access.model import RepositoryRef
from ecr_access.ports import AwsFault, FaultKind

# Write a document (None: delete the policy); False when ECR refused it for a principal.
Write = Callable[[policy.Document | None], Awaitable[bool]]


@dataclasses.dataclass
class Refusals:
    """Per repository: each refused principal, when ECR first refused it, when to offer it again,
    and how many times in a row it was refused (the back-off)."""

    seen: dict[RepositoryRef, dict[str, tuple[float, float, int]]] = dataclasses.field(default_factory=dict)

    def held_back(self, repo: RepositoryRef, now: float) -> frozenset[str]:
        return frozenset(arn for arn, (_, retry_at, _) in self.seen.get(repo, {}).items() if retry_at > now)

    def first_refused(self, repo: RepositoryRef) -> Mapping[str, float]:
        return {arn: first for arn, (first, _, _) in self.seen.get(repo, {}).items()}

    def note(self, repo: RepositoryRef, refused: Iterable[str], now: float, retry: float, retry_max: float) -> None:
        known = self.seen.setdefault(repo, {})
        for arn in refused:
            first, _, times = known.get(arn, (now, now, 0))
            known[arn] = (first, now + min(retry * 2**times, retry_max), times + 1)

    def offer_again(self, repo: RepositoryRef, arn: str) -> None:
        """The principal's own grant asks again: offer it at the next sync, keeping its history."""
        known = self.seen.get(repo, {})
        if arn in known:
            first, _, times = known[arn]
            known[arn] = (first, 0.0, times)

    def forget(self, repo: RepositoryRef, keep: Iterable[str]) -> None:
        """Drop every record for `repo` except those of `keep` (refused again, or still held back)."""
        kept = {arn: value for arn, value in self.seen.get(repo, {}).items() if arn in set(keep)}
        if kept:
            self.seen[repo] = kept
        else:
            self.seen.pop(repo, None)


def without(desired: Iterable[policy.DesiredStatement], held: frozenset[str]) -> list[policy.DesiredStatement]:
    return [dataclasses.replace(item, principals=item.principals - held) for item in desired]


def handovers_without(handovers: Iterable[handover.Handover], held: frozenset[str]) -> list[handover.Handover]:
    """A hand-over of a role ECR refuses has nothing to hand over: that role never had access here."""
    return [item for item in handovers if item.principal not in held]


async def isolate(
    document: policy.Document | None, prefix: str, desired: list[policy.DesiredStatement],
    handovers: list[handover.Handover], write: Write,
) -> tuple[frozenset[str], frozenset[str]] | None:
    """After ECR refused the merge of `desired` into `document` (as read): write what it accepted
    before, then find which new principals it refuses. Returns (accepted, refused) new principals,
    or None when even the document without any new principal is refused (the cause is elsewhere).
    What AWS holds afterwards is the last accepted write: every accepted principal, no refused one."""
    present = frozenset().union(*policy.owned_principals(document, prefix).values())
    offered = {arn for item in desired for arn in item.principals} | {item.principal for item in handovers}
    new = sorted(offered - present)

    def build(allowed: frozenset[str]) -> policy.Document | None:
        restricted = [dataclasses.replace(item, principals=item.principals & allowed) for item in desired]
        kept = [item for item in handovers if item.principal in allowed]
        return handover.fit(document, prefix, restricted, kept).document

    base = build(present)
    if not policy.equivalent(base, document) and not await write(base):
        return None
    accepted: set[str] = set()
    refused: set[str] = set()

    async def probe(group: list[str], known_bad: bool) -> None:
        if not known_bad and await write(build(present | accepted | set(group))):
            accepted.update(group)
            return
        if len(group) == 1:
            refused.update(group)
            return
        middle = len(group) // 2
        before = len(refused)
        await probe(group[:middle], False)
        # The whole group was refused and its first half was not: the second half must hold the cause.
        await probe(group[middle:], known_bad and len(refused) == before)

    if new:
        await probe(new, True)  # the whole set was just refused
    return frozenset(accepted), frozenset(refused)


@dataclasses.dataclass
class Propagation:
    """Per repository, since when ECR refuses a whole document for a principal (`PROPAGATING`).
    That is normal for a role created seconds ago (IAM propagation: transient), but not for longer
    than `window` seconds: then it is reported as an invalid request, for a person to look at."""

    window: float
    first: dict[RepositoryRef, float] = dataclasses.field(default_factory=dict)

    def bounded(self, repo: RepositoryRef, fault: AwsFault, now: float) -> AwsFault:
        if fault.kind is not FaultKind.PROPAGATING:
            return fault
        if now - self.first.setdefault(repo, now) < self.window:
            return fault
        return AwsFault(FaultKind.INVALID, fault.operation, fault.resource,
                        f"ECR still rejects a principal after {self.window:.0f}s ({fault.detail}); check that every "
                        "role still exists")

    def accepted(self, repo: RepositoryRef) -> None:
        self.first.pop(repo, None)
