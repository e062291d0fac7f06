"""Orchestration: make AWS match the set of live grants (`apply`), or undo one grant's work (`release`).

A thin façade over three parts, each with its own state: `roles` (resolve and cache roles),
`ownership` (a role's managed policies and its ledger tags) and `repositories` (each repository's
queue and its read-merge-write). What each part found becomes sentences in `verdicts`.

Nothing is computed from the one grant being handled: a repository's statements and a role's
managed policies are derived from every live grant, with the handled grant's own version put in
(`grants.changes`). Nothing here reads a grant's status: what must be remembered is on the role (its
tags) or in the grant's applied record (`grants`). No boto3 and no kopf here: AWS is reached through
`ports`, the cluster through `LiveGrants`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from ecr_access import attachments, outcomes, policy, verdicts
from ecr_access.conditions import APPLIED, Finding, Outcome, RepositoryResult
from ecr_access.config import Config
from ecr_access.grants import Changes, LiveGrant, LiveGrants, changes, contribution, with_changes
from ecr_access.identity import verify_identity
from ecr_access.metrics import Metrics
from ecr_access.model import DeletionPolicy, GrantKey, GrantSpec, ManagedPolicy, RepositoryRef, RoleRef
from ecr_access.modes import ApplyMode
from ecr_access.ownership import GrantGone, ManagedPolicyLedger, RoleState
from ecr_access.ports import (
    Accounts,
    AwsFault,
    EcrPort,
    FaultKind,
    IamPort,
    NoOtherAccounts,
    OtherAccounts,
    RoleInfo,
)
from ecr_access.repositories import RepositorySync, Result, Synced
from ecr_access.roles import RoleDirectory
from ecr_access.tenancy import Verdict

logger = logging.getLogger(__name__)

# How many pieces of AWS work run at once: role sides (resolve, then the managed policy and its
# ledger) and repository syncs, together. Under the AWS rate limit a cold start queues hundreds of
# calls; unbounded, a role's ListAttachedRolePolicies queued behind every repository sync's GetRole,
# its tags were seconds old when the shared `attached` tag was planned, and the ledger read each role
# again (`ownership.FRESH`); and repository syncs started before their burst had asked. Bounded,
# each piece's calls follow each other closely, as when the work ran in the default thread pool (6
# threads on the 2-core reference machine). Measured with `make bench` at N=1,000 (see the README).
# The bound is per AWS account, as AWS throttles: an account that is slow or throttled holds up only
# its own work (each account's adapter has its own threads too, `aws/accounts`).
AWS_CONCURRENCY = 6

__all__ = ["ApplyMode", "GrantGone", "LiveGrant", "LiveGrants", "Reconciler", "Synced"]


class Reconciler:
    """Applies and releases grants. One instance per operator process, on one event loop."""

    def __init__(
        self, iam: IamPort, ecr: EcrPort, *, cluster_id: str, account: str, config: Config | None = None,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        others: OtherAccounts | None = None, metrics: Metrics | None = None,
    ) -> None:
        """`iam` and `ecr` act in the operator's own `account`; `others` in the accounts that
        EcrAccessAccounts configure (DESIGN §6; none by default)."""
        self.accounts = Accounts(account, iam, ecr, others or NoOtherAccounts())
        self.cluster_id, self.account = cluster_id, account
        self.config = config or Config()
        self.prefix = policy.cluster_prefix(cluster_id)
        self.cluster_tag = attachments.cluster_tag(cluster_id)
        self.roles = RoleDirectory(self.accounts, cache_ttl=self.config.role_cache_ttl, clock=clock)
        self.metrics = metrics or Metrics()
        self.ledger = ManagedPolicyLedger(self.roles, self.cluster_tag, self.metrics)
        self._aws_work: dict[str, asyncio.Semaphore] = {}
        self.repositories = RepositorySync(self.accounts, self.roles, cluster_id=cluster_id, config=self.config,
                                           clock=clock, sleep=sleep, gate=self.gate, metrics=self.metrics)
        self.clock = clock  # the caches' clock: a drift pass's start is read on it (`ApplyMode.drift`)

    def gate(self, account: str) -> asyncio.Semaphore:
        """The bound on AWS work at once in one account (`AWS_CONCURRENCY`)."""
        gate = self._aws_work.get(account)
        if gate is None:
            gate = self._aws_work[account] = asyncio.Semaphore(AWS_CONCURRENCY)
        return gate

    def sid_for(self, spec: GrantSpec) -> str:
        return policy.statement_sid(self.cluster_id, spec.actions)

    async def apply(
        self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants,
        mode: ApplyMode = ApplyMode(),  # noqa: B008 - frozen
    ) -> Outcome:
        """Make AWS hold what this grant asks for, alongside every other live grant (DESIGN §2.1-4).

        `applied`: what the grant applied last (`grants.APPLIED_ANNOTATION`), so that a role or a
        repository it dropped is recomputed without it.
        """
        outcome = await self._apply(key, spec, applied, live, mode)
        if (applied is not None and applied.managed_policy is not ManagedPolicy.NONE
                and (applied.role.key != spec.role.key or spec.managed_policy is ManagedPolicy.NONE)
                and not self.roles.reaches(applied.role.account)):
            # What it attached to the role it had cannot be recomputed without it (the role moved,
            # or it attaches nothing now) in an account no EcrAccessAccount configures: kept
            # unsettled, as a repository dropped in such an account is (`verdicts.dropped`), and said.
            left = verdicts.role_left_behind(applied.role, [applied.managed_policy.value])
            outcome = dataclasses.replace(outcome, unsettled=(*outcome.unsettled, left))
        return outcome

    async def _apply(
        self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants, mode: ApplyMode,
    ) -> Outcome:
        since = mode.since
        sid = self.sid_for(spec)
        # A change handler's grant may be newer than its index entry: it rides along in the syncs.
        me = None if mode.from_index else LiveGrant(key, spec, applied=applied)
        info = None
        try:
            async with self.gate(spec.role.account):
                started = self.clock()
                age = mode.age(self.config.cache_ttl, started)
                try:
                    info = await self.roles.resolve(spec.role, max_age=age, since=since, with_attached=True)
                except AwsFault as fault:
                    if not outcomes.iam_optional(fault, spec.role, (spec, applied), self.account):
                        raise
                    info = RoleInfo(arn=str(spec.role.arn), role_id="")
                # What this apply read itself is fresh enough for the rest of it, even with max_age 0.
                state = await self._sync_roles(key, spec, applied, live, me, max(age, self.clock() - started),
                                               since, mode.from_index)
        except AwsFault as fault:
            # If the role changed, the previous one may not have been recomputed without this grant.
            moved = applied is not None and applied.role.key != spec.role.key
            finding = verdicts.for_fault(fault, verdicts.role_label(spec), "RoleNotFound")
            return verdicts.blocked(spec, sid, info.arn if info else None, finding, unsettled=moved)
        except _UnreachableRole as error:  # raised after the previous role was synced
            return verdicts.blocked(spec, sid, info.arn if info else None, error.finding, unsettled=False)
        if info is not None and mode.offer_refused:
            for repo in spec.repositories:
                self.repositories.offer_again(repo, info.arn)
        # What the EcrGrantPolicies permit it. Every sync derives the statements and the role's managed
        # policies with the same judgement, so what is not permitted is not written, or is undone (every
        # repository is synced: the grant may have had access there before a policy was narrowed).
        permits = live.verdict(LiveGrant(key, spec), info.arn) if info is not None else None
        changed = changes(include=me)
        tickets = {repo: self.repositories.request(repo, changed, burst=mode.debounce) for repo in spec.repositories}
        for repo in applied.repositories if applied is not None else ():
            if repo not in tickets:  # dropped from the spec: recomputed without this grant
                tickets[repo] = self.repositories.request(repo, changes(exclude=key), burst=mode.debounce)
        synced = await self._sync_all(tickets, live, mode.age(self.config.cache_ttl, self.clock()), since)
        if info is None or permits is None:  # left out of the statements; syncing drops it (DESIGN §2.3)
            return self._verdict(key, spec, sid, None, verdicts.role_missing(spec), None, False, synced, None)
        if not permits.permitted:
            return self._verdict(key, spec, sid, info.arn, verdicts.not_permitted(permits.message), None, False,
                                 synced, permits)
        wanted = spec.managed_policy.value
        if not permits.repositories:  # wanted only while a repository is permitted (see `_sync_role`)
            return self._verdict(key, spec, sid, info.arn, APPLIED, None, False, synced, permits)
        attached = state is not None and wanted in state.attached
        policy_arn = spec.managed_policy.arn(info.arn.split(":")[1]) if attached else None
        owned = state is not None and wanted in state.ledger.attached
        identity = await verify_identity(self.config, self.roles, spec, info.arn,
                                         [repo for repo in spec.repositories if permits.allows(repo)])
        outcome = self._verdict(key, spec, sid, info.arn, identity, policy_arn, owned, synced, permits)
        repaired = outcomes.repaired(spec, sid, info.arn, synced, policy_arn if state is not None
                                     and wanted in state.repaired else None)
        return dataclasses.replace(outcome, repaired=repaired) if repaired else outcome

    async def release(
        self, key: GrantKey, spec: GrantSpec | None, applied: GrantSpec | None, live: LiveGrants, uid: str = ""
    ) -> Outcome:
        """Undo this grant's work (Delete), or hand its access over (Retain), as DESIGN §2.5 says.

        Works from what the operator recorded, never from status: every repository and role that the
        spec (if it is valid) or the applied record names is recomputed from the live grants without
        this one, which is always safe, and the role's ledger tags decide any detach. A Delete grant
        must already be out of `live` (a deleting grant is not indexed); it is excluded again here
        so that a stale index cannot keep it. A Retain grant stays in `live` until its hand-over is
        written (`handover`); `uid` names its hand-over statement.
        """
        known = [item for item in (spec, applied) if item is not None]
        if not known:
            return Outcome(None, None, False, APPLIED, ())  # never valid, never applied: nothing of ours
        given = contribution(spec, applied)
        retain = given is not None and (spec or given).deletion_policy is DeletionPolicy.RETAIN
        if retain and given is not None and not await self._permitted(LiveGrant(key, given), live):
            retain = False  # a grant the policies no longer permit hands nothing over (DESIGN §5)
        me = LiveGrant(key, given, active=False, handing_over=True, uid=uid) if retain and given else None
        changed = changes(include=me, exclude=None if me else key)
        tickets = {repo: self.repositories.request(repo, changed)
                   for repo in dict.fromkeys(repo for item in known for repo in item.repositories)}
        handover_sid = policy.retained_sid(self.cluster_id, key.namespace, key.name, uid) if me else None
        sid = self.sid_for(given or known[0])
        results, blocked, left = [], False, list[Finding]()
        for repo, result in (await self._sync_all(tickets, live, 0.0)).items():
            finding = verdicts.released(repo, result, handover_sid, silent=self.repositories.silent_for(repo),
                                        unreachable_after=self.config.unreachable_after)
            blocked = blocked or not finding.ok
            left.extend(item for item in (verdicts.left_behind(repo, result, sid),) if item is not None)
            if given is not None and repo in given.repositories:
                results.append(RepositoryResult(repo.arn, sid, finding))
        role_finding = APPLIED
        # A Retain grant hands its managed policy over only once its repositories are handed over:
        # until then a switch to Delete must still be able to detach it.
        if handover_sid is None or not blocked:
            for role in {item.role.key: item.role for item in known}.values():
                if not self.roles.reaches(role.account):  # see `verdicts.role_left_behind`
                    wanted = {item.managed_policy.value for item in known
                              if item.role.key == role.key and item.managed_policy is not ManagedPolicy.NONE}
                    if wanted:
                        left.append(verdicts.role_left_behind(role, sorted(wanted)))
                    continue
                hand_over = frozenset({given.managed_policy.value}) if (
                    handover_sid and given is not None and role.key == given.role.key
                    and given.managed_policy is not ManagedPolicy.NONE) else frozenset()
                try:
                    await self._sync_role(role, live, changes(exclude=key), self.config.cache_ttl, hand_over,
                                          requested=key)
                except AwsFault as fault:
                    optional = outcomes.iam_optional(fault, role, known, self.account)
                    if fault.kind is not FaultKind.NOT_FOUND and not optional:
                        role_finding = verdicts.for_fault(fault, f"IAM role {role.describe()}")
        info = None
        if given is not None:
            try:  # only reported (status.roleArn): a lookup that fails now must not fail the release
                info = await self.roles.principal(given.role)
            except AwsFault as fault:
                logger.info("Could not resolve %s after releasing %s: %s", given.role.describe(), key, fault,
                            extra=key.log_ref())
        return Outcome(info.arn if info else None, None, None, role_finding, tuple(results), unsettled=tuple(left))

    async def resync(self, grant: LiveGrant, live: LiveGrants, max_age: float, since: float | None = None) -> None:
        """Sync what an inactive grant (suspended, or its spec invalid) contributes, its frozen
        applied record, changing nothing of it. The syncs judge it against the policies as they are
        now, so a contribution they no longer permit is undone; otherwise nothing is written."""
        tickets = {repo: self.repositories.request(repo, {}, burst=False) for repo in grant.spec.repositories}
        for repo, result in (await self._sync_all(tickets, live, max_age, since)).items():
            if not isinstance(result, Synced):
                logger.warning("Could not sync %s for the inactive grant %s: %s", repo.arn, grant.key, result,
                               extra=grant.key.log_ref())
        if self.roles.reaches(grant.spec.role.account):
            try:
                # A drift pass asks, not the grant: its audit lines say "the drift check", as the
                # repositories' do.
                await self._sync_role(grant.spec.role, live, {}, max_age, since=since)
            except AwsFault as fault:
                logger.warning("Could not sync role %s for the inactive grant %s: %s", grant.spec.role.describe(),
                               grant.key, fault, extra=grant.key.log_ref())

    async def _permitted(self, grant: LiveGrant, live: LiveGrants) -> bool:
        """Whether the policies permit the grant on at least one repository (its role resolved)."""
        info = await self.roles.principal(grant.spec.role)
        found = live.verdict(grant, info.arn) if info is not None else None
        return found is not None and found.permits_any

    async def _sync_roles(
        self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants, me: LiveGrant | None,
        age: float, since: float | None, from_index: bool,
    ) -> RoleState | None:
        """The grant's role, and the role it applied before if that was another (a role edit)."""
        if applied is not None and applied.role.key != spec.role.key:
            await self._sync_role(applied.role, live, changes(include=me), age, since=since,
                                  requested=None if from_index else key)
        if not self.roles.reaches(spec.role.account):
            if spec.managed_policy is not ManagedPolicy.NONE:
                raise _UnreachableRole(verdicts.account_not_configured(spec))
            return None
        try:
            # From the index, it is the drift check (or reconcile-now) that asks, not a change of the grant.
            return await self._sync_role(spec.role, live, changes(include=me), age, since=since,
                                         require=key if from_index else None, requested=None if from_index else key)
        except AwsFault as fault:
            if outcomes.iam_optional(fault, spec.role, (spec, applied), self.account):
                return None
            raise

    async def _sync_role(
        self, role: RoleRef, live: LiveGrants, changed: Changes, age: float,
        hand_over: frozenset[str] = frozenset(), require: GrantKey | None = None, since: float | None = None,
        requested: GrantKey | None = None,
    ) -> RoleState | None:
        """`requested`: the grant whose apply or release this is, for the audit lines (None: the drift check)."""
        def grants() -> list[LiveGrant]:
            return with_changes(live.on_role(role.key), changed, lambda grant: grant.spec.role.key == role.key)

        def permitted(grant: LiveGrant, role_arn: str) -> bool:  # see `Verdict.permits_any`
            return live.verdict(grant, role_arn).permits_any

        return await self.ledger.sync(role, grants, permitted, max_age=age, since=since, hand_over=hand_over,
                                      require=require, requested=requested)

    def _verdict(
        self, key: GrantKey, spec: GrantSpec, sid: str, role_arn: str | None, role_finding: Finding,
        policy_arn: str | None, owned: bool, synced: Mapping[RepositoryRef, Result], permits: Verdict | None,
    ) -> Outcome:
        return outcomes.grant_outcome(
            key, spec, sid, role_arn, role_finding, policy_arn, owned, synced, permits,
            silent_for=self.repositories.silent_for, now=self.clock(), config=self.config)

    async def _sync_all(
        self, tickets: Mapping[RepositoryRef, int], live: LiveGrants, max_age: float, since: float | None = None
    ) -> dict[RepositoryRef, Result]:
        repos = list(tickets)
        results = await asyncio.gather(*(self.repositories.sync(repo, live, tickets[repo], max_age, since=since)
                                         for repo in repos))
        return dict(zip(repos, results, strict=True))


class _UnreachableRole(Exception):
    """A managed policy to attach in an account the operator has no credentials in."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding
