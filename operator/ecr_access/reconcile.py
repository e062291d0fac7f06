"""Orchestration: make AWS match the set of live grants (`apply`), or undo one grant's work (`release`).

A repository's statements are never computed from the one grant being handled: `sync_repository`
always derives them from every live grant that names the repository (DESIGN §2.3), and `sync_role`
derives a role's managed policies and ledger tags the same way (§2.2, `attachments`). That is what
makes the result independent of the order in which grants are handled, and what makes a restart or
a lost event harmless. Nothing here reads a grant's status: what must be remembered is on the role
(its tags) or in the grant's applied record (`grants`).

No boto3 and no kopf here: AWS is reached through `ports`, the cluster through `LiveGrants`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from ecr_access import attachments, handover, policy, refusals
from ecr_access.coalesce import AsyncCoalescer, Coalescer
from ecr_access.conditions import (
    APPLIED,
    Finding,
    Outcome,
    RepositoryResult,
    Severity,
    finding_for_fault,
)
from ecr_access.grants import LiveGrant, contribution
from ecr_access.model import (
    DeletionPolicy,
    GrantKey,
    GrantSpec,
    ManagedPolicy,
    RepositoryRef,
    RoleKey,
    RoleRef,
)
from ecr_access.ports import AwsFault, EcrPort, FaultKind, IamPort, RoleInfo

logger = logging.getLogger(__name__)

# A role read this recently counts as read just now (the apply that wants to write just read it).
FRESH = 1.0

__all__ = ["GrantGone", "LiveGrant", "LiveGrants", "Reconciler", "Registry", "Synced", "Tuning"]


class LiveGrants(Protocol):
    """The set of live grants, looked up the ways reconcile needs (kopf indexes in production)."""

    def naming_repository(self, repo: RepositoryRef) -> Iterable[LiveGrant]: ...

    def on_role(self, role: RoleKey) -> Iterable[LiveGrant]: ...

    def everything(self) -> Iterable[LiveGrant]: ...


@dataclasses.dataclass(frozen=True)
class Synced:
    """The result of one repository sync: the document now in AWS and who did not fit in it."""

    document: policy.Document | None
    rejected: Mapping[str, frozenset[str]]
    foreign_edits: int = 0  # times a concurrent writer changed the policy between our write and re-read
    pending: frozenset[str] = frozenset()  # Retain hand-over Sids that did not fit (see `handover`)
    refused: Mapping[str, float] = dataclasses.field(default_factory=dict)  # principal -> first refused (`refusals`)


@dataclasses.dataclass(frozen=True)
class RoleState:
    """A role after its ledger sync (`Reconciler.sync_role`): who it is, and what its tags say now."""

    info: RoleInfo
    attached: frozenset[str]  # the ledger's managed policies attached to it, by short name
    ledger: attachments.Ledger


@dataclasses.dataclass(frozen=True, order=True)
class Registry:
    """Where repositories live: one account's registry in one region."""

    partition: str
    region: str
    registry_id: str


@dataclasses.dataclass(frozen=True)
class Tuning:
    """How hard the reconciler works to stay at the floor of AWS calls, and how it retries."""

    role_cache_ttl: float = 30.0  # other grants' role lookups may be this old
    # A change-triggered apply reuses an AWS answer (its role, the attached policies, a policy it
    # already holds) this old; the drift check passes its own, about one resync interval.
    fresh_age: float = 60.0
    coalesce_window: float = 0.0  # a burst's first sync starts once no request came for this long...
    coalesce_longest: float = 60.0  # ...or after this long (coroutine handlers only)
    write_attempts: int = 4  # verify-after-write rounds against a concurrent writer
    propagation_window: float = 120.0  # how long "principal not accepted" counts as IAM propagation
    refused_retry: float = 60.0  # a principal ECR refused is offered again after this long (`refusals`),
    refused_retry_max: float = 3600.0  # doubling each time it is refused again, up to this
    unreachable_after: float = 300.0  # a repository that has not answered for this long is Stalled
    retry_jitter: tuple[float, float] = (0.05, 0.5)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """An apply between its role side and its repositories' syncs."""

    spec: GrantSpec
    sid: str
    role_arn: str | None
    role_finding: Finding
    policy_arn: str | None
    owned: bool
    tickets: dict[RepositoryRef, int]
    max_age: float
    unsettled: tuple[Finding, ...] = ()  # the previous role, if it could not be recomputed


@dataclasses.dataclass(frozen=True)
class _Release:
    """A release between its repositories' syncs and its roles' syncs."""

    key: GrantKey
    given: GrantSpec | None  # what the grant contributed (`grants.contribution`)
    sid: str
    handover_sid: str | None  # set when the grant hands its access over (Retain)
    roles: tuple[RoleRef, ...]  # every role the spec or the applied record names
    tickets: dict[RepositoryRef, int]


class Reconciler:
    """Applies and releases grants. One instance per operator process; safe to call from threads."""

    def __init__(
        self,
        iam: IamPort,
        ecr: EcrPort,
        *,
        cluster_id: str,
        account: str,
        tuning: Tuning | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.iam = iam
        self.ecr = ecr
        self.cluster_id = cluster_id
        self.prefix = policy.cluster_prefix(cluster_id)
        self.cluster_tag = attachments.cluster_tag(cluster_id)
        self.account = account
        self.tuning = tuning or Tuning()
        self._clock = clock
        self._sleep = sleep
        self._guard = threading.Lock()
        self._locks: dict[object, threading.Lock] = {}
        self._roles: dict[RoleKey, tuple[float, RoleInfo | None]] = {}  # when looked up, and the answer
        self._attached: dict[RoleKey, tuple[float, frozenset[str]]] = {}
        self._overrides: dict[RepositoryRef, dict[GrantKey, tuple[int, LiveGrant | None]]] = {}
        self._sequence = 0
        self._propagating: dict[RepositoryRef, float] = {}  # first "principal not accepted" per repository
        self._documents: dict[RepositoryRef, tuple[float, policy.Document | None]] = {}
        self.refusals = refusals.Refusals()
        self._unanswered: dict[RepositoryRef, float] = {}  # since when each repository has not answered
        self.flights: Coalescer[Any] = Coalescer(sleep=sleep)
        self.async_flights = AsyncCoalescer(clock=clock)

    # -- locks and caches -------------------------------------------------------------------------

    @contextmanager
    def _locked(self, key: object) -> Iterator[None]:
        """ECR has no conditional write: one lock per repository (and per role) inside the process."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def sid_for(self, spec: GrantSpec) -> str:
        return policy.statement_sid(self.cluster_id, spec.actions)

    def resolve_role(self, role: RoleRef, *, max_age: float | None = None) -> RoleInfo | None:
        """The role the spec names, or None when it does not exist.

        Lookups are cached and coalesced, so N grants on one role cost one GetRole per burst. Other
        grants' roles may be `role_cache_ttl` old; a grant's own apply passes a `max_age` (by default
        `fresh_age`) so that a deleted role is noticed soon. Every answer, cached or not, is checked
        against the ARN the spec gives (`RoleRef.matches`): GetRole looks a role up by name only.
        """
        info = self._lookup(role, self.tuning.role_cache_ttl if max_age is None else max_age)
        return info if info is not None and role.matches(info.arn) else None

    def _lookup(self, role: RoleRef, max_age: float) -> RoleInfo | None:
        """GetRole by name, cached per `RoleKey` (so `MyRole` and `myrole` share one answer)."""
        if role.account != self.account and role.arn:
            # A role in another account cannot be looked up from here; ECR itself checks it exists.
            return RoleInfo(arn=role.arn, role_id="")

        def cached() -> tuple[bool, RoleInfo | None]:
            with self._guard:
                entry = self._roles.get(role.key)
            return (entry is not None and self._clock() - entry[0] <= max_age), (entry[1] if entry else None)

        hit, found = cached()
        if hit:
            return found

        def look_up() -> RoleInfo | None:
            hit, found = cached()  # a lookup that finished while we queued for this one will do
            if hit:
                return found
            info = self.iam.get_role(role.name)
            with self._guard:  # aged from the answer, not the request: the request may have queued
                self._roles[role.key] = (self._clock(), info)
            return info

        info: RoleInfo | None = self.flights.run(("role", role.key), look_up)
        return info

    def _attached_policies(self, role: RoleRef, max_age: float) -> frozenset[str]:
        def cached() -> frozenset[str] | None:
            with self._guard:
                entry = self._attached.get(role.key)
            return entry[1] if entry is not None and self._clock() - entry[0] <= max_age else None

        hit = cached()
        if hit is not None:
            return hit

        def list_attached() -> frozenset[str]:
            again = cached()  # a listing that finished while we queued for this one will do
            if again is not None:
                return again
            found = self.iam.list_attached_role_policies(role.name)
            with self._guard:
                self._attached[role.key] = (self._clock(), found)
            return found

        found: frozenset[str] = self.flights.run(("attached", role.key), list_attached)
        return found

    def _role_age(self, role: RoleKey) -> float:
        with self._guard:
            entry = self._roles.get(role)
        return self._clock() - entry[0] if entry is not None else float("inf")

    def _forget_role(self, role: RoleKey) -> None:
        with self._guard:
            self._roles.pop(role, None)
            self._attached.pop(role, None)

    # -- the role side: the managed policy and its ledger -----------------------------------------

    def sync_role(
        self,
        role: RoleRef,
        live: LiveGrants,
        *,
        include: LiveGrant | None = None,
        exclude: GrantKey | None = None,
        hand_over: frozenset[str] = frozenset(),
        max_age: float | None = None,
        require: GrantKey | None = None,
    ) -> RoleState | None:
        """Make one role's managed policies and ledger tags match this cluster's live grants on it.

        Like a repository's statements, what the role should have is derived from every live grant
        on it (`include`/`exclude` override the index for the grant being handled), never from one
        grant or its status, and the ledger on the role decides any detach (`attachments`).
        `hand_over`: short names a Retain grant hands over. `require`: raise `GrantGone` if that
        grant is no longer on the role (the drift check must not act for a grant being deleted).
        Returns None for a role that does not exist or is in another account (not ours to tag).
        """
        if role.account != self.account:
            return None
        age = self.tuning.fresh_age if max_age is None else max_age
        with self._locked(role.key):
            if require is not None and not any(grant.key == require for grant in live.on_role(role.key)):
                raise GrantGone(require)
            info = self._lookup(role, age)
            if info is None:
                return None
            partition = info.arn.split(":")[1]
            for fresh in (False, True):
                attached = attachments.short_names(self._attached_policies(role, 0.0 if fresh else age), partition)
                ledger = attachments.Ledger.from_tags(info.tags, self.cluster_tag)
                wanted = self._wanted(role.key, info.arn, live, include, exclude)
                steps = attachments.plan(ledger, self.cluster_tag, attached, wanted, hand_over)
                if fresh or not attachments.shared(steps) or self._role_age(role.key) <= FRESH:
                    break
                # A detach, or a write of the `attached` tag all clusters share, depends on what the
                # others did lately: decide it on tags read just now (IAM has no conditional write).
                info = self._lookup(role, 0.0)
                if info is None:
                    return None
            if not steps:  # the steady state: nothing to write, and the caches are as read
                return RoleState(info, attached, ledger)
            try:
                tags = attachments.execute(self.iam, role.name, partition, info.tags, steps)
            except AwsFault:
                self._forget_role(role.key)  # some steps may have landed: read the role afresh next time
                raise
            for step in steps:
                if step.kind != "tag":
                    logger.info("%s %s %s (ledger: %s)", "Attached" if step.kind == "attach" else "Detached",
                                attachments.arn_of(step.key, partition), info.arn, attachments.ATTACHED_TAG)
            attached = (attached | {s.key for s in steps if s.kind == "attach"}) - {
                s.key for s in steps if s.kind == "detach"}
            info = RoleInfo(info.arn, info.role_id, tags)
            with self._guard:
                when = self._roles.get(role.key, (self._clock(), None))[0]
                self._roles[role.key] = (when, info)
                when = self._attached.get(role.key, (self._clock(), frozenset()))[0]
                others = self._attached.get(role.key, (0.0, frozenset()))[1] - {
                    attachments.arn_of(name, partition) for name in attachments.KNOWN}
                self._attached[role.key] = (when, others | {attachments.arn_of(name, partition) for name in attached})
            return RoleState(info, attached, attachments.Ledger.from_tags(tags, self.cluster_tag))

    def _wanted(
        self, role: RoleKey, arn: str, live: LiveGrants, include: LiveGrant | None, exclude: GrantKey | None
    ) -> frozenset[str]:
        """The managed policies this cluster's live grants on `role` want, by short name."""
        overrides = _overrides(include, exclude)
        grants = _overridden(live.on_role(role), overrides, lambda grant: grant.spec.role.key == role)
        wanted = set()
        for grant in grants:
            if grant.spec.managed_policy is ManagedPolicy.NONE:
                continue
            found = self.resolve_role(grant.spec.role)
            if found is not None and found.arn == arn:
                wanted.add(grant.spec.managed_policy.value)
        return frozenset(wanted)

    def _sync_roles(
        self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants, me: LiveGrant | None,
        age: float, from_index: bool,
    ) -> RoleState | None:
        """The grant's role, and the role it applied before if that was another (a role edit)."""
        if applied is not None and applied.role.key != spec.role.key:
            self.sync_role(applied.role, live, include=me, max_age=age)
        if spec.role.account != self.account:
            if spec.managed_policy is not ManagedPolicy.NONE:
                raise _CrossAccountError(Finding(
                    "CrossAccountRole",
                    f"IAM role {spec.role.describe()} is in another account, so the operator cannot attach "
                    f"{spec.managed_policy.value} to it: set spec.managedPolicy to None and attach it in that account.",
                    Severity.TERMINAL,
                ))
            return None
        return self.sync_role(spec.role, live, include=me, max_age=age, require=key if from_index else None)

    # -- apply ------------------------------------------------------------------------------------

    def apply(
        self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants, *,
        max_age: float | None = None,
    ) -> Outcome:
        """Make AWS hold what this grant asks for, alongside every other live grant (DESIGN §2.1-4).

        `applied`: what the grant applied last (`grants.APPLIED_ANNOTATION`), so that a role or a
        repository it dropped is recomputed without it. `max_age`: how old a cached AWS answer may
        be (default `Tuning.fresh_age`); the drift check passes about one resync interval, so that
        each role and repository is read once per interval.
        """
        plan = self.begin_apply(key, spec, applied, live, max_age=max_age)
        if isinstance(plan, Outcome):
            return plan
        return self.finish_apply(plan, {repo: self._sync_result(repo, live, ticket, plan.max_age)
                                        for repo, ticket in plan.tickets.items()})

    async def apply_async(
        self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants, *,
        max_age: float | None = None, from_index: bool = False,
    ) -> Outcome:
        """`apply` for kopf's coroutine handlers: waiting for a repository's burst holds no thread.

        `from_index`: the grant is the live index's own entry (the drift check). Its statements then
        come from the index alone, and if it leaves the index before its role is synced (it began
        deleting), `GrantGone` is raised instead: a release may be undoing that very work.
        """
        plan = await asyncio.to_thread(self.begin_apply, key, spec, applied, live, max_age=max_age,
                                       asynchronous=True, from_index=from_index)
        if isinstance(plan, Outcome):
            return plan
        return self.finish_apply(plan, await self._sync_all_async(plan.tickets, live, plan.max_age))

    def begin_apply(
        self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants, *,
        max_age: float | None = None, asynchronous: bool = False, from_index: bool = False,
    ) -> Outcome | _Plan:
        """The role side (resolve, managed policy), then a place in each repository's next sync."""
        age = self.tuning.fresh_age if max_age is None else max_age
        # A change may be one of a burst (a GitOps sync); a drift check, which passes its own max_age,
        # joins a burst's repository sync but never prolongs its debounce.
        burst = max_age is None
        sid = self.sid_for(spec)
        role_label = f"IAM role {spec.role.describe()}"
        # A change handler's grant may be newer than its index entry: it rides along in the syncs. The
        # drift check's grant is the index entry, and must not outlive it in a sync (see apply_async).
        me = None if from_index else LiveGrant(key, spec, applied=applied)
        info = None
        started = self._clock()
        try:
            info = self.resolve_role(spec.role, max_age=age)
            # What this apply read itself is fresh enough for the rest of it, even with max_age 0.
            state = self._sync_roles(key, spec, applied, live, me, max(age, self._clock() - started), from_index)
        except AwsFault as fault:
            # If the role changed, the previous one may not have been recomputed without this grant.
            moved = applied is not None and applied.role.key != spec.role.key
            return self._blocked(spec, sid, info.arn if info else None,
                                 finding_for_fault(fault, role_label, "RoleNotFound"), unsettled=moved)
        except _CrossAccountError as error:  # raised after the previous role was synced
            return self._blocked(spec, sid, info.arn if info else None, error.finding, unsettled=False)
        if info is not None and (not from_index or max_age == 0):
            # The grant itself asks (a change, a retry, a reconcile-now request): offer its role again
            # where ECR refused it; a drift pass waits for the back-off instead (`refusals`).
            with self._guard:
                for repo in spec.repositories:
                    self.refusals.offer_again(repo, info.arn)
        if info is None:
            # The role is left out of the statements; syncing drops it where it was (DESIGN §2.3).
            missing = Finding(
                "RoleNotFound",
                f"{role_label} was not found in account {spec.role.account}: create it or fix spec.role.",
                Severity.TERMINAL,
            )
            return self._plan(key, me, spec, applied, sid, None, missing, None, False, age, asynchronous, burst)
        wanted = spec.managed_policy.value
        attached = state is not None and wanted in state.attached
        policy_arn = spec.managed_policy.arn(info.arn.split(":")[1]) if attached else None
        owned = state is not None and wanted in state.ledger.attached
        return self._plan(key, me, spec, applied, sid, info.arn, APPLIED, policy_arn, owned, age, asynchronous, burst)

    def _plan(
        self, key: GrantKey, me: LiveGrant | None, spec: GrantSpec, applied: GrantSpec | None, sid: str,
        role_arn: str | None, role_finding: Finding, policy_arn: str | None, owned: bool, max_age: float,
        asynchronous: bool, burst: bool,
    ) -> _Plan:
        tickets = {repo: self.request_sync(repo, include=me, asynchronous=asynchronous, burst=burst)
                   for repo in spec.repositories}
        # A repository dropped from the spec is recomputed without this grant.
        for repo in applied.repositories if applied is not None else ():
            if repo not in tickets:
                tickets[repo] = self.request_sync(repo, exclude=key, asynchronous=asynchronous, burst=burst)
        return _Plan(spec, sid, role_arn, role_finding, policy_arn, owned, tickets, max_age)

    def finish_apply(self, plan: _Plan, synced: Mapping[RepositoryRef, Synced | Exception]) -> Outcome:
        """Each repository's verdict for this grant, from what its sync found."""
        results = []
        notes: list[str] = []
        unsettled = []
        for repo, result in synced.items():
            if repo not in plan.spec.repositories:
                if isinstance(result, Exception) and not (isinstance(result, AwsFault)
                                                          and result.kind is FaultKind.NOT_FOUND):
                    label = f"Repository {repo.name} ({repo.arn}), dropped from the spec,"
                    finding = (finding_for_fault(result, label) if isinstance(result, AwsFault)
                               else Finding("PolicyUnreadable", f"{label}: {result}", Severity.TERMINAL))
                    logger.warning("Could not drop a grant from %s: %s", repo.arn, result)
                    unsettled.append(finding)
                continue
            finding = self._repository_finding(repo, plan, result, notes)
            results.append(RepositoryResult(repo.arn, plan.sid, finding))
        return Outcome(plan.role_arn, plan.policy_arn, plan.owned, plan.role_finding, tuple(results), tuple(notes),
                       plan.spec.actions, (*plan.unsettled, *unsettled))

    def _repository_finding(
        self, repo: RepositoryRef, plan: _Plan, result: Synced | Exception, notes: list[str]
    ) -> Finding:
        label = f"Repository {repo.name} ({repo.arn})"
        if isinstance(result, AwsFault):
            return self._unreachable(repo, result, label) or finding_for_fault(result, label, "RepositoryNotFound")
        if isinstance(result, Exception):
            return Finding("PolicyUnreadable", f"{label}: {result}; fix or delete that policy.", Severity.TERMINAL)
        if result.foreign_edits:
            notes.append(f"{label}: someone else changed the policy while the operator wrote it "
                         f"({result.foreign_edits}x); merged their change and wrote again.")
        if plan.role_arn is None:
            return Finding(plan.role_finding.reason, f"{label} cannot grant a role that does not exist.",
                           plan.role_finding.severity)
        first_refused = result.refused.get(plan.role_arn)
        if first_refused is not None:
            if self._clock() - first_refused < self.tuning.propagation_window:
                return Finding("RolePropagating", f"{label}: ECR does not accept {plan.role_arn} as a principal yet "
                               "(a new IAM role takes a while to propagate); retrying.", Severity.TRANSIENT)
            return Finding("PrincipalRejected", f"{label}: ECR refuses {plan.role_arn} as a principal: check that "
                           "the role exists and that spec.role names it exactly.", Severity.TERMINAL)
        if plan.role_arn in result.rejected.get(plan.sid, frozenset()):
            return Finding(
                "PolicyTooLarge",
                f"{label}: adding {plan.role_arn} would take its policy over {policy.MAX_POLICY_CHARS} characters; "
                "remove statements or grants from it.",
                Severity.TERMINAL,
            )
        return APPLIED

    def _sync_result(
        self, repo: RepositoryRef, live: LiveGrants, ticket: int, max_age: float | None = None
    ) -> Synced | Exception:
        try:
            cached = self._cached_sync(repo, live, max_age)
            return self._answered(repo, cached or self.sync_repository(repo, live, ticket=ticket))
        except (AwsFault, policy.PolicyDocumentError) as problem:
            return self._answered(repo, problem)

    def _answered(self, repo: RepositoryRef, result: Synced | Exception) -> Synced | Exception:
        """Keep track of how long a repository has gone without answering (see `_unreachable`)."""
        with self._guard:
            if isinstance(result, AwsFault) and result.kind is FaultKind.UNAVAILABLE:
                self._unanswered.setdefault(repo, self._clock())
            else:
                self._unanswered.pop(repo, None)
        return result

    def _unreachable(self, repo: RepositoryRef, fault: AwsFault, label: str) -> Finding | None:
        """A repository that has not answered for `unreachable_after` needs a person (a region not
        enabled, or not reachable from the cluster), so it stops counting as transient."""
        with self._guard:
            since = self._unanswered.get(repo)
        if fault.kind is not FaultKind.UNAVAILABLE or since is None:
            return None
        silent = self._clock() - since
        if silent < self.tuning.unreachable_after:
            return None
        return Finding("RepositoryUnreachable",
                       f"{label} in region {repo.region} has not answered for {silent:.0f}s ({fault.detail}): check "
                       f"that the region is enabled for account {repo.registry_id} and reachable from the cluster; "
                       "the operator keeps trying.", Severity.TERMINAL)

    async def _sync_all_async(
        self, tickets: Mapping[RepositoryRef, int], live: LiveGrants, max_age: float | None = None
    ) -> dict[RepositoryRef, Synced | Exception]:
        async def one(repo: RepositoryRef, ticket: int) -> Synced | Exception:
            try:
                cached = await asyncio.to_thread(self._cached_sync, repo, live, max_age)
                if cached is not None:
                    return cached
                # Re-checked inside the flight: a run that started after ours was requested may have
                # just read this policy, and then a drift check need not read it again.
                synced: Synced = await self.async_flights.run(
                    ("repo", repo), lambda: self._cached_sync(repo, live, max_age) or self._sync_now(repo, live),
                    ticket=ticket,
                    quiet=self.tuning.coalesce_window, longest=self.tuning.coalesce_longest,
                )
                return self._answered(repo, synced)
            except (AwsFault, policy.PolicyDocumentError) as problem:
                return self._answered(repo, problem)

        repos = list(tickets)
        results = await asyncio.gather(*(one(repo, tickets[repo]) for repo in repos))
        return dict(zip(repos, results, strict=True))

    def _cached_sync(self, repo: RepositoryRef, live: LiveGrants, max_age: float | None) -> Synced | None:
        """Skip AWS when the policy read (or verified) at most `max_age` ago already holds what the
        live grants want. Only a read is saved: a policy that needs a write is always read first."""
        if not max_age:
            return None
        with self._guard:
            cached = self._documents.get(repo)
            overrides = {key: grant for key, (_, grant) in self._overrides.get(repo, {}).items()}
        if cached is None or self._clock() - cached[0] > max_age:
            return None
        desired, handovers = self._desired(repo, live, overrides)
        with self._guard:
            held = self.refusals.held_back(repo, self._clock())
            refused = self.refusals.first_refused(repo)
        result = handover.fit(cached[1], self.prefix, refusals.without(desired, held),
                              refusals.handovers_without(handovers, held))
        if not policy.equivalent(cached[1], result.document):
            return None
        return Synced(cached[1], result.rejected, pending=result.pending, refused=refused)

    def _blocked(
        self, spec: GrantSpec, sid: str, role_arn: str | None, finding: Finding, *, unsettled: bool
    ) -> Outcome:
        """The role side failed: nothing is written for this grant's repositories. What the role has
        attached was not learned, so the report keeps its last answer (`managed_policy_owned=None`)."""
        repos = tuple(
            RepositoryResult(repo.arn, sid, Finding(finding.reason, "Not applied: the role step failed.",
                                                    finding.severity))
            for repo in spec.repositories
        )
        return Outcome(role_arn, None, None, finding, repos, unsettled=(finding,) if unsettled else ())

    # -- repositories -----------------------------------------------------------------------------

    def sync_repository(
        self,
        repo: RepositoryRef,
        live: LiveGrants,
        *,
        include: LiveGrant | None = None,
        exclude: GrantKey | None = None,
        ticket: int | None = None,
    ) -> Synced:
        """Rewrite this cluster's statements in one repository's policy from the live grants.

        Concurrent requests for one repository share a single read-merge-write (see `coalesce`).
        Pass a `ticket` from `request_sync` (which then carries include/exclude), or let this
        call take one.
        """
        if ticket is None:
            ticket = self.request_sync(repo, include=include, exclude=exclude)
        synced: Synced = self.flights.run(
            ("repo", repo), lambda: self._sync_now(repo, live), window=self.tuning.coalesce_window, ticket=ticket
        )
        return synced

    def request_sync(
        self,
        repo: RepositoryRef,
        *,
        include: LiveGrant | None = None,
        exclude: GrantKey | None = None,
        asynchronous: bool = False,
        burst: bool = True,
    ) -> int:
        """Take a place in the next sync of `repo` (see `Coalescer.request`); `asynchronous` for a
        sync that will be awaited (`AsyncCoalescer`) rather than run in this thread.

        `include` is a grant being applied (its latest spec wins over a possibly older index
        entry); `exclude` is a grant being released or one that dropped the repository.
        """
        with self._guard:
            self._sequence += 1
            if include is not None:
                self._overrides.setdefault(repo, {})[include.key] = (self._sequence, include)
            if exclude is not None:
                self._overrides.setdefault(repo, {})[exclude] = (self._sequence, None)
        if asynchronous:
            return self.async_flights.request(("repo", repo), burst=burst)
        return self.flights.request(("repo", repo))

    def _sync_now(self, repo: RepositoryRef, live: LiveGrants) -> Synced:
        with self._guard:
            upto = self._sequence
            overrides = {key: grant for key, (_, grant) in self._overrides.get(repo, {}).items()}
        try:
            with self._locked(repo):
                return self._read_merge_write(repo, *self._desired(repo, live, overrides))
        finally:
            with self._guard:  # what this run used is done with; later requests stay for the next run
                kept = {k: v for k, v in self._overrides.get(repo, {}).items() if v[0] > upto}
                self._overrides[repo] = kept

    def _desired(
        self, repo: RepositoryRef, live: LiveGrants, overrides: Mapping[GrantKey, LiveGrant | None]
    ) -> tuple[list[policy.DesiredStatement], list[handover.Handover]]:
        """This cluster's statements for `repo`, from every live grant naming it, and the Retain
        hand-overs in flight (their roles are not in the shared statements unless they do not fit)."""
        grants = _overridden(live.naming_repository(repo), overrides, lambda grant: repo in grant.spec.repositories)
        wanted: dict[str, tuple[tuple[str, ...], set[str]]] = {}
        handovers = []
        for grant in grants:
            sid = self.sid_for(grant.spec)
            entry = wanted.setdefault(sid, (grant.spec.actions, set()))
            info = self.resolve_role(grant.spec.role)
            if info is None:
                continue
            if grant.handing_over:
                handovers.append(handover.Handover(
                    policy.retained_sid(self.cluster_id, grant.key.namespace, grant.key.name, grant.uid), sid,
                    info.arn, grant.spec.actions))
            else:
                entry[1].add(info.arn)
        desired = [policy.DesiredStatement(sid, actions, frozenset(arns)) for sid, (actions, arns) in wanted.items()]
        return desired, handovers

    def _read_merge_write(
        self, repo: RepositoryRef, desired: list[policy.DesiredStatement], handovers: list[handover.Handover]
    ) -> Synced:
        """Read, merge, write only if different, then re-read to verify (ECR has no conditional write).

        If the re-read differs from what was written, someone else wrote in between: merge into
        what they wrote and try again after a jittered pause, a bounded number of times. If ECR
        refuses the document for a principal, the refused ones are found and held back, and the
        rest is written (`refusals`).
        """
        document = self._read(repo)
        stale = policy.stale_principals(document, self.prefix)
        if stale:
            logger.info("Repository %s names deleted roles %s; rewriting from live grants", repo.arn, stale)
        with self._guard:
            held = self.refusals.held_back(repo, self._clock())
        foreign_edits = 0
        isolated = False  # at most one isolation per sync: its writes are bounded by bisection
        while True:
            offered = refusals.without(desired, held)
            offered_handovers = refusals.handovers_without(handovers, held)
            result = handover.fit(document, self.prefix, offered, offered_handovers)
            if not policy.equivalent(document, result.document):
                try:
                    self._write(repo, result.document)
                except AwsFault as fault:
                    if fault.kind is not FaultKind.PROPAGATING or isolated:
                        raise self._bounded_propagation(repo, fault) from fault
                    isolated = True
                    # Isolate on the policy as it is now, not as first read: a write landed meanwhile
                    # is built on, not overwritten. The loop then re-reads and verifies as always.
                    document = self._read(repo)
                    held = held | self._isolate(repo, document, offered, offered_handovers, fault)
                    document = self._read(repo)
                    continue
                check = self._read(repo)
                if not policy.equivalent(check, result.document):
                    foreign_edits += 1
                    if foreign_edits >= self.tuning.write_attempts:
                        raise AwsFault(
                            FaultKind.UNAVAILABLE, "SetRepositoryPolicy", f"repository {repo.arn}",
                            f"the policy kept changing under concurrent writers ({foreign_edits} times); will retry",
                        )
                    logger.warning("Repository %s policy changed while we wrote it (attempt %d): merging again",
                                   repo.arn, foreign_edits)
                    document = check
                    self._sleep(random.uniform(*self.tuning.retry_jitter))
                    continue
            with self._guard:
                self._propagating.pop(repo, None)
                # Whoever is no longer held back was accepted (or is no longer wanted): forget them.
                self.refusals.forget(repo, held)
                refused_now = self.refusals.first_refused(repo)
            return Synced(result.document, result.rejected, foreign_edits=foreign_edits, pending=result.pending,
                          refused=refused_now)

    def _write(self, repo: RepositoryRef, document: policy.Document | None) -> None:
        if document is None:
            self.ecr.delete_repository_policy(repo)
        else:
            self.ecr.set_repository_policy(repo, policy.serialize(document))

    def _isolate(
        self, repo: RepositoryRef, document: policy.Document | None, offered: list[policy.DesiredStatement],
        handovers: list[handover.Handover], fault: AwsFault,
    ) -> frozenset[str]:
        """ECR refused a principal: land what it accepts, and return the refused principals."""
        def write(candidate: policy.Document | None) -> bool:
            try:
                self._write(repo, candidate)
            except AwsFault as again:
                if again.kind is FaultKind.PROPAGATING:
                    return False
                raise
            return True

        found = refusals.isolate(document, self.prefix, offered, handovers, write)
        if found is None:  # refused even without any new principal: not ours to isolate
            raise self._bounded_propagation(repo, fault) from fault
        accepted, refused = found
        logger.warning("ECR refuses %s as principals of %s; applied the other %d new principals without them",
                       sorted(refused), repo.arn, len(accepted))
        with self._guard:
            self.refusals.note(repo, refused, self._clock(), self.tuning.refused_retry, self.tuning.refused_retry_max)
        return refused

    def _read(self, repo: RepositoryRef) -> policy.Document | None:
        """Read a repository's policy and remember it (see `_cached_sync`)."""
        document = policy.parse(self.ecr.get_repository_policy(repo))
        policy.check_ours(document, self.prefix)  # a hand-broken statement of ours: PolicyUnreadable, not a crash
        with self._guard:
            self._documents[repo] = (self._clock(), document)
        return document

    def _bounded_propagation(self, repo: RepositoryRef, fault: AwsFault) -> AwsFault:
        """ECR refusing a principal is normal for a role created seconds ago, but not for minutes."""
        if fault.kind is not FaultKind.PROPAGATING:
            return fault
        now = self._clock()
        with self._guard:
            first = self._propagating.setdefault(repo, now)
        with self._guard:  # re-resolve every role next time: one may have been deleted since we looked
            self._roles.clear()
        if now - first < self.tuning.propagation_window:
            return fault
        return AwsFault(
            FaultKind.INVALID, fault.operation, fault.resource,
            f"ECR still rejects a principal after {self.tuning.propagation_window:.0f}s ({fault.detail}); "
            "check that every role still exists",
        )

    # -- sweep ------------------------------------------------------------------------------------

    def sweep(self, live: LiveGrants, home: Registry) -> list[RepositoryRef]:
        """Remove this cluster's statements from repositories that no live grant names any more.

        They are left behind when a grant was deleted while the operator was down with its finalizer
        forced off, or when a repository was dropped from every spec while it was down. The sweep
        covers every registry (partition, region, account) the live grants use, plus the operator's
        own; it reads the policy of each repository no live grant names, and recomputes only those
        that hold this cluster's prefix. Other prefixes are never touched. Returns what it cleaned.
        """
        registries = {home} | {
            Registry(repo.partition, repo.region, repo.registry_id)
            for grant in live.everything()
            for repo in grant.spec.repositories
        }
        cleaned = []
        for registry in sorted(registries):
            try:  # the adapter pages lazily: list the whole registry first, so a failure skips just it
                names = list(self.ecr.describe_repositories(registry.region, registry.registry_id))
            except AwsFault as fault:
                logger.warning("Sweep skipped registry %s in %s (%s): %s", registry.registry_id, registry.region,
                               fault.kind.value, fault)
                continue
            for name in names:
                repo = RepositoryRef(registry.partition, registry.region, registry.registry_id, name)
                if any(True for _ in live.naming_repository(repo)):
                    continue  # its grants' own syncs keep it right
                try:
                    document = self._read(repo)
                except (AwsFault, policy.PolicyDocumentError) as problem:
                    logger.warning("Sweep skipped %s: %s", repo.arn, problem)
                    continue
                if not policy.owned_principals(document, self.prefix):
                    continue
                self.sync_repository(repo, live)
                logger.info("Sweep removed this cluster's statements from %s (no live grant names it)", repo.arn)
                cleaned.append(repo)
        return cleaned

    # -- release ----------------------------------------------------------------------------------

    def release(
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
        plan = self.begin_release(key, spec, applied, uid)
        if isinstance(plan, Outcome):
            return plan
        synced = {repo: self._sync_result(repo, live, ticket) for repo, ticket in plan.tickets.items()}
        return self.finish_release(plan, synced, live)

    async def release_async(
        self, key: GrantKey, spec: GrantSpec | None, applied: GrantSpec | None, live: LiveGrants, uid: str = ""
    ) -> Outcome:
        """`release` for kopf's coroutine handlers (a GitOps prune deletes many grants at once)."""
        plan = self.begin_release(key, spec, applied, uid, asynchronous=True)
        if isinstance(plan, Outcome):
            return plan
        synced = await self._sync_all_async(plan.tickets, live)
        return await asyncio.to_thread(self.finish_release, plan, synced, live)

    def begin_release(
        self, key: GrantKey, spec: GrantSpec | None, applied: GrantSpec | None, uid: str, *,
        asynchronous: bool = False,
    ) -> Outcome | _Release:
        known = [item for item in (spec, applied) if item is not None]
        if not known:
            return Outcome(None, None, False, APPLIED, ())  # never valid, never applied: nothing of ours
        given = contribution(spec, applied)
        retain = given is not None and (spec or given).deletion_policy is DeletionPolicy.RETAIN
        me = LiveGrant(key, given, active=False, handing_over=True, uid=uid) if retain and given else None
        repos = dict.fromkeys(repo for item in known for repo in item.repositories)
        tickets = {repo: self.request_sync(repo, include=me, exclude=None if me else key, asynchronous=asynchronous)
                   for repo in repos}
        roles = tuple({item.role.key: item.role for item in known}.values())
        handover_sid = policy.retained_sid(self.cluster_id, key.namespace, key.name, uid) if me else None
        return _Release(key, given, self.sid_for(given or known[0]), handover_sid, roles, tickets)

    def finish_release(
        self, plan: _Release, synced: Mapping[RepositoryRef, Synced | Exception], live: LiveGrants
    ) -> Outcome:
        results = []
        given_repos = plan.given.repositories if plan.given is not None else ()
        blocked = False
        for repo, result in synced.items():
            label = f"Repository {repo.name} ({repo.arn})"
            if isinstance(result, AwsFault):
                finding = APPLIED if result.kind is FaultKind.NOT_FOUND else (
                    self._unreachable(repo, result, label) or finding_for_fault(result, label))
            elif isinstance(result, Exception):
                finding = Finding("PolicyUnreadable", f"{label}: {result}", Severity.TERMINAL)
            elif plan.handover_sid in result.pending:
                finding = Finding(
                    "PolicyTooLarge",
                    f"{label}: the Retain hand-over statement does not fit in its policy, so the role keeps "
                    "its access through the shared statement; make room or set deletionPolicy: Delete.",
                    Severity.TERMINAL,
                )
            else:
                finding = APPLIED
            blocked = blocked or not finding.ok
            if repo in given_repos:
                results.append(RepositoryResult(repo.arn, plan.sid, finding))
        role_finding = APPLIED
        # A Retain grant hands its managed policy over only once its repositories are handed over:
        # until then a switch to Delete must still be able to detach it.
        if plan.handover_sid is None or not blocked:
            for role in plan.roles:
                given = plan.given
                hand_over = frozenset({given.managed_policy.value}) if (
                    plan.handover_sid and given is not None and role.key == given.role.key
                    and given.managed_policy is not ManagedPolicy.NONE) else frozenset()
                try:
                    self.sync_role(role, live, exclude=plan.key, hand_over=hand_over)
                except AwsFault as fault:
                    if fault.kind is not FaultKind.NOT_FOUND:
                        role_finding = finding_for_fault(fault, f"IAM role {role.describe()}")
        role_arn = None
        if plan.given is not None:
            info = self.resolve_role(plan.given.role)
            role_arn = info.arn if info else None
        return Outcome(role_arn, None, None, role_finding, tuple(results))


def _overrides(include: LiveGrant | None, exclude: GrantKey | None) -> dict[GrantKey, LiveGrant | None]:
    found: dict[GrantKey, LiveGrant | None] = {}
    if exclude is not None:
        found[exclude] = None
    if include is not None:
        found[include.key] = include
    return found


def _overridden(
    grants: Iterable[LiveGrant], overrides: Mapping[GrantKey, LiveGrant | None], belongs: Callable[[LiveGrant], bool]
) -> list[LiveGrant]:
    """The index's grants with the handled grants' own versions put in (None: taken out), keeping
    only those that `belongs` to what is being synced, in a stable order."""
    found = {grant.key: grant for grant in grants}
    for key, override in overrides.items():
        if override is None or not belongs(override):
            found.pop(key, None)
        else:
            found[key] = override
    return sorted(found.values(), key=lambda item: (item.key.namespace, item.key.name))


class GrantGone(Exception):
    """The drift check's grant left the live index (it began deleting) while being applied."""


class _CrossAccountError(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding
