"""Managed-policy ownership: make a role's managed policies and ledger tags match the live grants.

Like a repository's statements, what a role should have is derived from every live grant on it,
never from one grant or its status, and the ledger on the role (its tags, `attachments`) decides
any detach. One sync of a role at a time (IAM has no conditional write); the plan is pure
(`attachments.plan`), and the role's reads are cached and shared (`roles`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable

from ecr_access import attachments
from ecr_access.grants import LiveGrant
from ecr_access.metrics import Metrics
from ecr_access.model import GrantKey, ManagedPolicy, RoleKey, RoleRef
from ecr_access.ports import AwsFault, RoleInfo
from ecr_access.roles import RoleDirectory

# A role read this recently counts as read just now (the apply that wants to write just read it).
FRESH = 1.0


@dataclasses.dataclass(frozen=True)
class RoleState:
    """A role after its ledger sync: who it is, and what its tags say now."""

    info: RoleInfo
    attached: frozenset[str]  # the ledger's managed policies attached to it, by short name
    ledger: attachments.Ledger
    repaired: frozenset[str] = frozenset()  # short names the drift check attached again


# Whether the EcrGrantPolicies permit a grant whose role resolved to this ARN (`LiveGrants.verdict`).
Permitted = Callable[[LiveGrant, str], bool]


class GrantGone(Exception):
    """The drift check's grant left the live index (it began deleting) while being applied."""


class ManagedPolicyLedger:
    """Syncs roles in the accounts the operator reaches: the managed policies and this cluster's tag."""

    def __init__(self, roles: RoleDirectory, cluster_tag: str, metrics: Metrics | None = None) -> None:
        self.roles = roles
        self.cluster_tag = cluster_tag
        self.metrics = metrics or Metrics()
        self._locks: dict[RoleKey, asyncio.Lock] = {}

    async def sync(
        self, role: RoleRef, grants: Callable[[], Iterable[LiveGrant]], permitted: Permitted, *, max_age: float,
        since: float | None = None, hand_over: frozenset[str] = frozenset(), require: GrantKey | None = None,
        requested: GrantKey | None = None,
    ) -> RoleState | None:
        """Make the role hold what `grants()` (this cluster's live grants on it) want. `grants` is
        called again after every read of the role, so that a grant created or deleted meanwhile
        counts before anything is written. `max_age`, `since`: which cached reads of the role will
        do (`coalesce.Cache`). `hand_over`: short names a Retain grant hands over.
        `require`: raise `GrantGone` if that grant is not among them (the drift check must not act
        for a grant being deleted). `requested`: the grant whose change, release or check asked,
        for the audit lines. Returns None for a role that does not exist or is in an account the
        operator has no credentials in."""
        if not self.roles.reaches(role.account):
            return None
        async with self._locks.setdefault(role.key, asyncio.Lock()):
            if require is not None and not any(grant.key == require for grant in grants()):
                raise GrantGone(require)
            return await self._sync(role, grants, permitted, max_age, since, hand_over, repair=require is not None,
                                    requested=requested)

    async def _sync(
        self, role: RoleRef, grants: Callable[[], Iterable[LiveGrant]], permitted: Permitted, age: float,
        since: float | None, hand_over: frozenset[str], repair: bool = False, requested: GrantKey | None = None,
    ) -> RoleState | None:
        """`repair`: the drift check asks (an attach then puts back what someone detached)."""
        info = await self.roles.lookup(role, age, since=since)
        if info is None:
            return None
        partition = info.arn.split(":")[1]
        for fresh in (False, True):
            # Just now is `FRESH`: a listing that came with the role's read (`RoleDirectory.resolve`)
            # is not read again, only tags that are older.
            attached = attachments.short_names(await self.roles.attached(role, FRESH if fresh else age, since=since),
                                               partition)
            ledger = attachments.Ledger.from_tags(info.tags, self.cluster_tag)
            wanted = self._wanted(info.arn, grants(), permitted)
            steps = attachments.plan(ledger, self.cluster_tag, attached, wanted, hand_over)
            if fresh or not attachments.shared(steps) or self.roles.age(role.key) <= FRESH:
                break
            # A detach, or a write of the `attached` tag all clusters share, depends on what the
            # others did lately: decide it on tags read just now (IAM has no conditional write).
            info = await self.roles.lookup(role, 0.0)
            if info is None:
                return None
        if not steps:  # the steady state: nothing to write, and the caches are as read
            return RoleState(info, attached, ledger)
        # The audit lines of the role's writes: what asked, and which grants want each policy.
        wanting = {name: tuple(sorted(str(grant.key) for grant in grants() if grant.spec.managed_policy.value == name))
                   for name in {step.key for step in steps if step.kind == "attach"}}
        try:
            tags = await attachments.execute(self.roles.iam(role.account), role.name, partition, info.tags, steps,
                                             attachments.Audit(info.arn, requested, wanting))
        except AwsFault:
            self.roles.forget(role.key)  # some steps may have landed: read the role afresh next time
            raise
        # Put back, not attached for the first time: the ledger says this cluster wanted it at the
        # last sync and an operator had attached it, and someone detached it since. A grant the
        # policies permit again (revocation) wants it anew: that is no repair.
        again = frozenset(step.key for step in steps if repair and step.kind == "attach"
                          and step.key in ledger.mine and step.key in ledger.attached)
        for _ in again:
            self.metrics.repaired("managed_policy")
        attached = (attached | {s.key for s in steps if s.kind == "attach"}) - {
            s.key for s in steps if s.kind == "detach"}
        info = RoleInfo(info.arn, info.role_id, tags)
        self.roles.written(role.key, info, frozenset(attachments.arn_of(name, partition) for name in attached),
                           frozenset(attachments.arn_of(name, partition) for name in attachments.KNOWN))
        return RoleState(info, attached, attachments.Ledger.from_tags(tags, self.cluster_tag), again)

    @staticmethod
    def _wanted(arn: str, grants: Iterable[LiveGrant], permitted: Permitted) -> frozenset[str]:
        """The managed policies the grants want, by short name, counting only grants whose spec
        names this very role, `arn` as just read (a spec naming another path does not count), and
        that an EcrGrantPolicy permits (a revoked grant's policy is detached like a deleted one's).
        The grants share the role's record (`RoleKey`), so the answer just read is theirs: looking
        each up again re-read the role whenever a grant's apply queued past `cache_ttl`."""
        wanted = set()
        for grant in grants:
            if grant.spec.managed_policy is ManagedPolicy.NONE:
                continue
            if grant.spec.role.matches(arn) and permitted(grant, arn):
                wanted.add(grant.spec.managed_policy.value)
        return frozenset(wanted)
