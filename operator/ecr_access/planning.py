"""Planning ports: the real AWS adapters for every read, an in-memory overlay for every write.

Why this is how `plan` gets the operator's answers: the plan runs the operator's own `Reconciler`
(its Sids, its merge, its size limit, its tenancy judging and verdicts), not a second model of it
that could drift. The reconciler reaches AWS only through `ports.IamPort` and `ports.EcrPort`, so
wrapping them is enough: a write (`set_repository_policy`, `delete_repository_policy`,
`attach_role_policy`, `detach_role_policy`, `tag_role`, `untag_role`) is recorded and lands in an
overlay, and every later read of the same repository or role sees the overlay, so the reconciler's
verify-after-write re-read finds what it "wrote" and a second grant's sync builds on the first.
What AWS held before the first write is kept (`baseline`): the plan is the difference between it
and the overlay (`plandiff`).

Methods the ports grow later (an IAM policy simulation, say) reach the real adapter through
`__getattr__`, but only when their names say they read (`READ_PREFIXES`): an unknown method of any
other name raises AttributeError instead, so a write added to a port can never pass through a plan
unnoticed; the plan fails loudly until it is taught the new write.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ecr_access.model import RepositoryRef
from ecr_access.ports import AwsFault, EcrPort, FaultKind, IamPort, OtherAccounts, RoleInfo

READ_PREFIXES = ("get_", "list_", "describe_", "simulate_")
_UNREAD = object()  # a baseline not learned yet


@dataclasses.dataclass(frozen=True)
class Write:
    """One write the reconciler asked for, in order: what an apply would send to AWS."""

    account: str
    operation: str  # the AWS operation, e.g. SetRepositoryPolicy
    resource: str  # a repository ARN, or a role name
    detail: str = ""  # the policy ARN attached or detached, the tag keys set or removed


@dataclasses.dataclass
class Journal:
    """What every planning port of one plan recorded: the writes, and the reads AWS failed (beyond
    "not found", which is data): a plan built on a failed read is not a plan."""

    writes: list[Write] = dataclasses.field(default_factory=list)
    failed_reads: list[AwsFault] = dataclasses.field(default_factory=list)


def _delegate(real: Any, name: str, kind: str) -> Any:
    if name.startswith(READ_PREFIXES) and not name.startswith("_"):
        return getattr(real, name)
    raise AttributeError(f"{kind} has no {name!r}: a planning port passes only reads ({', '.join(READ_PREFIXES)}) "
                         "through to AWS; teach it the new write")


class PlanningEcr:
    """`EcrPort` for one account: reads from AWS, writes into `policies`."""

    def __init__(self, real: EcrPort, account: str, journal: Journal) -> None:
        self.real, self.account, self.journal = real, account, journal
        self.policies: dict[RepositoryRef, str | None] = {}  # what the plan wrote (None: deleted)
        self.baseline: dict[RepositoryRef, str | None] = {}  # what AWS held before

    async def get_repository_policy(self, repo: RepositoryRef) -> str | None:
        if repo in self.policies:
            return self.policies[repo]
        try:
            text = await self.real.get_repository_policy(repo)
        except AwsFault as fault:
            if fault.kind is not FaultKind.NOT_FOUND:
                self.journal.failed_reads.append(fault)
            raise
        self.baseline.setdefault(repo, text)
        return text

    async def set_repository_policy(self, repo: RepositoryRef, text: str) -> None:
        await self._before_write(repo)
        self.policies[repo] = text
        self.journal.writes.append(Write(self.account, "SetRepositoryPolicy", repo.arn))

    async def delete_repository_policy(self, repo: RepositoryRef) -> None:
        await self._before_write(repo)
        self.policies[repo] = None
        self.journal.writes.append(Write(self.account, "DeleteRepositoryPolicy", repo.arn))

    async def describe_repositories(self, region: str, registry_id: str) -> list[str]:
        return await self.real.describe_repositories(region, registry_id)

    async def _before_write(self, repo: RepositoryRef) -> None:
        if repo not in self.baseline and repo not in self.policies:  # the reconciler always reads first
            await self.get_repository_policy(repo)

    def __getattr__(self, name: str) -> Any:
        return _delegate(self.real, name, "PlanningEcr")


@dataclasses.dataclass
class RoleOverlay:
    """One role as AWS had it (`info`, `attached`: None until read) and as the plan left it."""

    info: RoleInfo | None = None
    attached: frozenset[str] | None = None
    tags: dict[str, str] | None = None  # the role's whole tag set after the plan's writes
    added: set[str] = dataclasses.field(default_factory=set)  # policy ARNs attached by the plan
    removed: set[str] = dataclasses.field(default_factory=set)  # and detached


class PlanningIam:
    """`IamPort` for one account: reads from AWS, tag and attachment writes into `roles` (by role
    name, lower case: IAM role names ignore case)."""

    def __init__(self, real: IamPort, account: str, journal: Journal) -> None:
        self.real, self.account, self.journal = real, account, journal
        self.roles: dict[str, RoleOverlay] = {}

    async def get_role(self, name: str) -> RoleInfo | None:
        try:
            info = await self.real.get_role(name)
        except AwsFault as fault:
            self.journal.failed_reads.append(fault)
            raise
        entry = self.roles.setdefault(name.lower(), RoleOverlay())
        if entry.info is None:
            entry.info = info
        if info is not None and entry.tags is not None:
            return RoleInfo(info.arn, info.role_id, dict(entry.tags))
        return info

    async def list_attached_role_policies(self, role_name: str) -> frozenset[str]:
        try:
            found = await self.real.list_attached_role_policies(role_name)
        except AwsFault as fault:
            if fault.kind is not FaultKind.NOT_FOUND:
                self.journal.failed_reads.append(fault)
            raise
        entry = self.roles.setdefault(role_name.lower(), RoleOverlay())
        if entry.attached is None:
            entry.attached = found
        return frozenset((found - entry.removed) | entry.added)

    async def attach_role_policy(self, role_name: str, policy_arn: str) -> None:
        entry = await self._before_write(role_name)
        entry.added.add(policy_arn)
        entry.removed.discard(policy_arn)
        self.journal.writes.append(Write(self.account, "AttachRolePolicy", role_name, policy_arn))

    async def detach_role_policy(self, role_name: str, policy_arn: str) -> None:
        entry = await self._before_write(role_name)
        entry.removed.add(policy_arn)
        entry.added.discard(policy_arn)
        self.journal.writes.append(Write(self.account, "DetachRolePolicy", role_name, policy_arn))

    async def tag_role(self, role_name: str, tags: Mapping[str, str]) -> None:
        entry = await self._before_write(role_name)
        assert entry.tags is not None
        entry.tags.update(tags)
        self.journal.writes.append(Write(self.account, "TagRole", role_name, " ".join(sorted(tags))))

    async def untag_role(self, role_name: str, keys: Iterable[str]) -> None:
        entry = await self._before_write(role_name)
        assert entry.tags is not None
        keys = list(keys)
        for key in keys:
            entry.tags.pop(key, None)
        self.journal.writes.append(Write(self.account, "UntagRole", role_name, " ".join(sorted(keys))))

    async def _before_write(self, role_name: str) -> RoleOverlay:
        """The role's entry, with what AWS holds read first (the ledger always reads before it
        writes; a write on a role never read would have no baseline to diff against)."""
        entry = self.roles.setdefault(role_name.lower(), RoleOverlay())
        if entry.info is None:
            await self.get_role(role_name)
        if entry.attached is None:
            await self.list_attached_role_policies(role_name)
        if entry.tags is None:
            entry.tags = dict(entry.info.tags) if entry.info is not None else {}
        return entry

    def __getattr__(self, name: str) -> Any:
        return _delegate(self.real, name, "PlanningIam")


class PlanningAccounts:
    """`OtherAccounts` whose ports are planning ports over the real ones, one pair per account."""

    def __init__(self, real: OtherAccounts, journal: Journal) -> None:
        self.real, self.journal = real, journal
        self.iams: dict[str, PlanningIam] = {}
        self.ecrs: dict[str, PlanningEcr] = {}

    def reaches(self, account: str) -> bool:
        return self.real.reaches(account)

    def configured(self) -> list[str]:
        return self.real.configured()

    def iam(self, account: str) -> IamPort:
        port = self.real.iam(account)  # raises AwsFault(ACCOUNT_NOT_CONFIGURED) as the real one does
        if account not in self.iams:
            self.iams[account] = PlanningIam(port, account, self.journal)
        return self.iams[account]

    def ecr(self, account: str) -> EcrPort:
        port = self.real.ecr(account)
        if account not in self.ecrs:
            self.ecrs[account] = PlanningEcr(port, account, self.journal)
        return self.ecrs[account]
