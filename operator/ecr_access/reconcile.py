"""Orchestration: make AWS match the set of live grants (`apply`), or undo one grant's work (`release`).

A repository's statements are never computed from the one grant being handled: `sync_repository`
always derives them from every live grant that names the repository (DESIGN §2.3), and so does the
managed-policy rule (§2.5). That is what makes the result independent of the order in which grants
are handled, and what makes a restart or a lost event harmless.

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

from ecr_access import policy
from ecr_access.coalesce import AsyncCoalescer, Coalescer
from ecr_access.conditions import (
    APPLIED,
    Finding,
    Outcome,
    RepositoryResult,
    Severity,
    finding_for_fault,
)
from ecr_access.model import (
    ROLE_ARN_RE,
    DeletionPolicy,
    GrantKey,
    GrantSpec,
    RepositoryRef,
    RoleKey,
    RoleRef,
)
from ecr_access.ports import AwsFault, EcrPort, FaultKind, IamPort, RoleInfo

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LiveGrant:
    """What the cluster-wide index holds about one live (not deleting) grant."""

    key: GrantKey
    spec: GrantSpec
    # The managed-policy ownership record from the grant's status (see `Prior`).
    owned_policy_arn: str | None = None
    # What the drift check needs to write status and Events without the object's body: the
    # generation the spec is from, the status as last seen, and the object's uid.
    generation: int = 0
    # Compared (kopf keeps an index entry that compares equal to the new one, stale status and all),
    # but not hashed (a dict).
    status: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False, repr=False)
    uid: str = ""


class LiveGrants(Protocol):
    """The set of live grants, looked up the ways reconcile needs (kopf indexes in production)."""

    def naming_repository(self, repo: RepositoryRef) -> Iterable[LiveGrant]: ...

    def on_role(self, role: RoleKey) -> Iterable[LiveGrant]: ...

    def everything(self) -> Iterable[LiveGrant]: ...


@dataclasses.dataclass(frozen=True)
class Prior:
    """What the grant's status says the operator did last time. It survives restarts (it is in etcd),
    which is what lets the operator undo only its own work: a dropped repository, an old role, or a
    managed policy that it attached (and only that one)."""

    role_arn: str | None = None
    managed_policy_arn: str | None = None
    managed_policy_owned: bool = False
    repositories: tuple[RepositoryRef, ...] = ()

    @property
    def owned_policy_arn(self) -> str | None:
        return self.managed_policy_arn if self.managed_policy_owned else None

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Prior:
        status = status or {}
        entries = [entry for entry in status.get("repositories") or [] if isinstance(entry, Mapping)]
        repos = [repo for repo in map(RepositoryRef.from_arn, (entry.get("arn") for entry in entries)) if repo]
        return cls(
            role_arn=status.get("roleArn") or None,
            managed_policy_arn=status.get("managedPolicyArn") or None,
            managed_policy_owned=bool(status.get("managedPolicyOwned")),
            repositories=tuple(repos),
        )


@dataclasses.dataclass(frozen=True)
class Synced:
    """The result of one repository sync: the document now in AWS and who did not fit in it."""

    document: policy.Document | None
    rejected: Mapping[str, frozenset[str]]
    foreign_edits: int = 0  # times a concurrent writer changed the policy between our write and re-read


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


@dataclasses.dataclass(frozen=True)
class _Release:
    """A release between its role lookup and its repositories' syncs."""

    key: GrantKey
    spec: GrantSpec
    prior: Prior
    sid: str
    role_arn: str | None
    retained_sid: str | None  # set when a Retain hand-over statement is to be written
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
        record_attachment: Callable[[GrantKey, str, str], None] | None = None,
    ) -> None:
        """`record_attachment(grant, role_arn, policy_arn)` is called right after this operator attaches
        a managed policy, to persist the ownership record at once (the grant's status is otherwise
        written only when the whole apply is done: a crash in between would lose the record, and the
        policy would then never be detached)."""
        self.record_attachment = record_attachment
        self.iam = iam
        self.ecr = ecr
        self.cluster_id = cluster_id
        self.prefix = policy.cluster_prefix(cluster_id)
        self.account = account
        self.tuning = tuning or Tuning()
        self._clock = clock
        self._sleep = sleep
        self._guard = threading.Lock()
        self._locks: dict[object, threading.Lock] = {}
        self._roles: dict[RoleKey, tuple[float, RoleInfo | None]] = {}  # when looked up, and the answer
        self._attached: dict[RoleKey, tuple[float, frozenset[str]]] = {}
        self._overrides: dict[RepositoryRef, dict[GrantKey, tuple[int, LiveGrant | None]]] = {}
        self._extras: dict[RepositoryRef, list[tuple[int, policy.Statement]]] = {}
        self._sequence = 0
        self._propagating: dict[RepositoryRef, float] = {}  # first "principal not accepted" per repository
        self._documents: dict[RepositoryRef, tuple[float, policy.Document | None]] = {}
        self._attached_here: set[tuple[RoleKey, str]] = set()  # managed policies this process attached
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
        """The role's ARN, or None when it does not exist.

        Lookups are cached and coalesced, so N grants on one role cost one GetRole per burst. Other
        grants' roles may be `role_cache_ttl` old; a grant's own apply passes a `max_age` (by default
        `fresh_age`) so that a deleted role is noticed soon.
        """
        if role.account != self.account and role.arn:
            # A role in another account cannot be looked up from here; ECR itself checks it exists.
            return RoleInfo(arn=role.arn, role_id="")
        if max_age is None:
            max_age = self.tuning.role_cache_ttl

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
        if info is not None and role.arn and info.arn != role.arn:
            return None  # same name, different path: not the role the spec names
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

    def _note_attachment(self, role: RoleKey, policy_arn: str, attached: bool) -> None:
        with self._guard:
            when, found = self._attached.get(role, (self._clock(), frozenset()))
            self._attached[role] = (when, found | {policy_arn} if attached else found - {policy_arn})

    # -- apply ------------------------------------------------------------------------------------

    def apply(
        self, key: GrantKey, spec: GrantSpec, prior: Prior, live: LiveGrants, *, max_age: float | None = None
    ) -> Outcome:
        """Make AWS hold what this grant asks for, alongside every other live grant (DESIGN §2.1-4).

        `max_age`: how old a cached AWS answer may be (default `Tuning.fresh_age`); the drift check
        passes about one resync interval, so that each role and repository is read once per interval.
        """
        plan = self.begin_apply(key, spec, prior, live, max_age=max_age)
        if isinstance(plan, Outcome):
            return plan
        return self.finish_apply(plan, {repo: self._sync_result(repo, live, ticket, plan.max_age)
                                        for repo, ticket in plan.tickets.items()})

    async def apply_async(
        self, key: GrantKey, spec: GrantSpec, prior: Prior, live: LiveGrants, *, max_age: float | None = None,
        from_index: bool = False,
    ) -> Outcome:
        """`apply` for kopf's coroutine handlers: waiting for a repository's burst holds no thread.

        `from_index`: the grant is the live index's own entry (the drift check). Its statements then
        come from the index alone, and if it leaves the index before its managed policy is attached
        (it began deleting), `GrantGone` is raised instead: a release may be undoing that very work.
        """
        plan = await asyncio.to_thread(self.begin_apply, key, spec, prior, live, max_age=max_age, asynchronous=True,
                                       from_index=from_index)
        if isinstance(plan, Outcome):
            return plan
        return self.finish_apply(plan, await self._sync_all_async(plan.tickets, live, plan.max_age))

    def begin_apply(
        self, key: GrantKey, spec: GrantSpec, prior: Prior, live: LiveGrants, *, max_age: float | None = None,
        asynchronous: bool = False, from_index: bool = False,
    ) -> Outcome | _Plan:
        """The role side (resolve, managed policy), then a place in each repository's next sync."""
        age = self.tuning.fresh_age if max_age is None else max_age
        # A change may be one of a burst (a GitOps sync); a drift check, which passes its own max_age,
        # joins a burst's repository sync but never prolongs its debounce.
        burst = max_age is None
        sid = self.sid_for(spec)
        role_label = f"IAM role {spec.role.describe()}"
        try:
            info = self.resolve_role(spec.role, max_age=age)
        except AwsFault as fault:
            return self._blocked(spec, sid, None, finding_for_fault(fault, role_label, "RoleNotFound"), prior)
        if info is None:
            # The role is left out of the statements; syncing drops it where it was (DESIGN §2.3).
            missing = Finding(
                "RoleNotFound",
                f"{role_label} was not found in account {spec.role.account}: create it or fix spec.role.",
                Severity.TERMINAL,
            )
            return self._plan(key, spec, sid, prior, None, missing, None, False, age, asynchronous, burst, from_index)
        try:
            self._release_stale_policy(key, spec, prior, info, live)
            policy_arn, owned = self._ensure_managed_policy(key, spec, prior, info, live, age, from_index)
        except AwsFault as fault:
            return self._blocked(spec, sid, info.arn, finding_for_fault(fault, role_label, "RoleNotFound"), prior)
        except _CrossAccountError as error:
            return self._blocked(spec, sid, info.arn, error.finding, prior)
        return self._plan(key, spec, sid, prior, info.arn, APPLIED, policy_arn, owned, age, asynchronous, burst,
                          from_index)

    def _plan(
        self,
        key: GrantKey,
        spec: GrantSpec,
        sid: str,
        prior: Prior,
        role_arn: str | None,
        role_finding: Finding,
        policy_arn: str | None,
        owned: bool,
        max_age: float,
        asynchronous: bool,
        burst: bool,
        from_index: bool = False,
    ) -> _Plan:
        # A change handler's grant may be newer than its index entry: it rides along in the sync. The
        # drift check's grant is the index entry, and must not outlive it in a sync (see apply_async).
        me = None if from_index else LiveGrant(key, spec, policy_arn if owned else None)
        tickets = {repo: self.request_sync(repo, include=me, asynchronous=asynchronous, burst=burst)
                   for repo in spec.repositories}
        # A repository dropped from the spec is recomputed without this grant.
        for repo in prior.repositories:
            if repo not in tickets:
                tickets[repo] = self.request_sync(repo, exclude=key, asynchronous=asynchronous, burst=burst)
        return _Plan(spec, sid, role_arn, role_finding, policy_arn, owned, tickets, max_age)

    def finish_apply(self, plan: _Plan, synced: Mapping[RepositoryRef, Synced | Exception]) -> Outcome:
        """Each repository's verdict for this grant, from what its sync found."""
        results = []
        notes: list[str] = []
        for repo, result in synced.items():
            if repo not in plan.spec.repositories:
                if isinstance(result, Exception):
                    logger.warning("Could not drop a grant from %s: %s", repo.arn, result)
                continue
            finding = self._repository_finding(repo, plan, result, notes)
            results.append(RepositoryResult(repo.arn, plan.sid, finding))
        return Outcome(plan.role_arn, plan.policy_arn, plan.owned, plan.role_finding, tuple(results), tuple(notes))

    def _repository_finding(
        self, repo: RepositoryRef, plan: _Plan, result: Synced | Exception, notes: list[str]
    ) -> Finding:
        label = f"Repository {repo.name} ({repo.arn})"
        if isinstance(result, AwsFault):
            return finding_for_fault(result, label, "RepositoryNotFound")
        if isinstance(result, Exception):
            return Finding("PolicyUnreadable", f"{label}: {result}; fix or delete that policy.", Severity.TERMINAL)
        if result.foreign_edits:
            notes.append(f"{label}: someone else changed the policy while the operator wrote it "
                         f"({result.foreign_edits}x); merged their change and wrote again.")
        if plan.role_arn is None:
            return Finding(plan.role_finding.reason, f"{label} cannot grant a role that does not exist.",
                           plan.role_finding.severity)
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
            return cached or self.sync_repository(repo, live, ticket=ticket)
        except (AwsFault, policy.PolicyDocumentError) as problem:
            return problem

    async def _sync_all_async(
        self, tickets: Mapping[RepositoryRef, int], live: LiveGrants, max_age: float | None = None
    ) -> dict[RepositoryRef, Synced | Exception]:
        async def one(repo: RepositoryRef, ticket: int) -> Synced | Exception:
            try:
                cached = await asyncio.to_thread(self._cached_sync, repo, live, max_age)
                if cached is not None:
                    return cached
                synced: Synced = await self.async_flights.run(
                    ("repo", repo), lambda: self._sync_now(repo, live), ticket=ticket,
                    quiet=self.tuning.coalesce_window, longest=self.tuning.coalesce_longest,
                )
                return synced
            except (AwsFault, policy.PolicyDocumentError) as problem:
                return problem

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
        result = policy.fit(cached[1], self.prefix, self._desired(repo, live, overrides), [])
        if not policy.equivalent(cached[1], result.document):
            return None
        return Synced(cached[1], result.rejected)

    def _blocked(
        self, spec: GrantSpec, sid: str, role_arn: str | None, finding: Finding, prior: Prior
    ) -> Outcome:
        """The role side failed: nothing is written for this grant's repositories."""
        repos = tuple(
            RepositoryResult(repo.arn, sid, Finding(finding.reason, "Not applied: the role step failed.",
                                                    finding.severity))
            for repo in spec.repositories
        )
        kept_policy = prior.managed_policy_arn if prior.role_arn == role_arn else None
        owned = prior.managed_policy_owned and kept_policy is not None
        return Outcome(role_arn, kept_policy, owned, finding, repos)

    # -- the managed policy -----------------------------------------------------------------------

    def _ensure_managed_policy(
        self, key: GrantKey, spec: GrantSpec, prior: Prior, info: RoleInfo, live: LiveGrants, max_age: float,
        from_index: bool = False,
    ) -> tuple[str | None, bool]:
        partition = info.arn.split(":")[1]
        wanted = spec.managed_policy.arn(partition)
        if wanted is None:
            return None, False
        if spec.role.account != self.account:
            raise _CrossAccountError(
                Finding(
                    "CrossAccountRole",
                    f"IAM role {info.arn} is in another account, so the operator cannot attach {wanted} to it: "
                    "set spec.managedPolicy to None and attach it in that account.",
                    Severity.TERMINAL,
                )
            )
        with self._locked(spec.role.key):
            if from_index and not any(grant.key == key for grant in live.on_role(spec.role.key)):
                raise GrantGone(key)  # under the role lock: a release's detach cannot be undone by us
            if wanted not in self._attached_policies(spec.role, max_age):
                self.iam.attach_role_policy(spec.role.name, wanted)
                self._note_attachment(spec.role.key, wanted, attached=True)
                with self._guard:
                    self._attached_here.add((spec.role.key, wanted))
                logger.info("Attached %s to %s for %s", wanted, info.arn, key)
                if self.record_attachment is not None:
                    self.record_attachment(key, info.arn, wanted)
                return wanted, True
        # Already attached: ours only if the record says so, ours or another live grant's on this role
        # (its status), or this process attached it moments ago (its status may not be written yet).
        with self._guard:
            attached_here = (spec.role.key, wanted) in self._attached_here
        owned = attached_here or (prior.owned_policy_arn == wanted and prior.role_arn == info.arn) or any(
            grant.owned_policy_arn == wanted for grant in live.on_role(spec.role.key) if grant.key != key
        )
        return wanted, owned

    def _release_stale_policy(
        self, key: GrantKey, spec: GrantSpec, prior: Prior, info: RoleInfo, live: LiveGrants
    ) -> None:
        """Undo an attachment this grant owns but no longer asks for (role or managedPolicy changed)."""
        owned = prior.owned_policy_arn
        if owned is None or prior.role_arn is None:
            return
        wanted = spec.managed_policy.arn(info.arn.split(":")[1])
        if prior.role_arn == info.arn and owned == wanted:
            return
        self._detach_if_unwanted(key, prior.role_arn, owned, live)

    def _detach_if_unwanted(self, key: GrantKey, role_arn: str, policy_arn: str, live: LiveGrants) -> None:
        """Detach a policy the operator attached, unless another live grant on the role wants it."""
        match = ROLE_ARN_RE.fullmatch(role_arn)
        if not match or match["account"] != self.account:
            return
        role_key = RoleKey(match["account"], match["name"])
        with self._locked(role_key):
            for grant in live.on_role(role_key):
                if grant.key != key and grant.spec.managed_policy.arn(match["partition"]) == policy_arn:
                    return
            self.iam.detach_role_policy(match["name"], policy_arn)
            self._note_attachment(role_key, policy_arn, attached=False)
            with self._guard:
                self._attached_here.discard((role_key, policy_arn))
        logger.info("Detached %s from %s (attached by the operator, wanted by no live grant)", policy_arn, role_arn)

    # -- repositories -----------------------------------------------------------------------------

    def sync_repository(
        self,
        repo: RepositoryRef,
        live: LiveGrants,
        *,
        include: LiveGrant | None = None,
        exclude: GrantKey | None = None,
        extra: Iterable[policy.Statement] = (),
        ticket: int | None = None,
    ) -> Synced:
        """Rewrite this cluster's statements in one repository's policy from the live grants.

        Concurrent requests for one repository share a single read-merge-write (see `coalesce`).
        Pass a `ticket` from `request_sync` (which then carries include/exclude/extra), or let this
        call take one.
        """
        if ticket is None:
            ticket = self.request_sync(repo, include=include, exclude=exclude, extra=extra)
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
        extra: Iterable[policy.Statement] = (),
        asynchronous: bool = False,
        burst: bool = True,
    ) -> int:
        """Take a place in the next sync of `repo` (see `Coalescer.request`); `asynchronous` for a
        sync that will be awaited (`AsyncCoalescer`) rather than run in this thread.

        `include` is a grant being applied (its latest spec wins over a possibly older index
        entry); `exclude` is a grant being released or one that dropped the repository; `extra`
        statements (Retain hand-overs) are written once if no statement has their Sid.
        """
        with self._guard:
            self._sequence += 1
            if include is not None:
                self._overrides.setdefault(repo, {})[include.key] = (self._sequence, include)
            if exclude is not None:
                self._overrides.setdefault(repo, {})[exclude] = (self._sequence, None)
            self._extras.setdefault(repo, []).extend((self._sequence, item) for item in extra)
        if asynchronous:
            return self.async_flights.request(("repo", repo), burst=burst)
        return self.flights.request(("repo", repo))

    def _sync_now(self, repo: RepositoryRef, live: LiveGrants) -> Synced:
        with self._guard:
            upto = self._sequence
            overrides = {key: grant for key, (_, grant) in self._overrides.get(repo, {}).items()}
            extras = [item for _, item in self._extras.get(repo, [])]
        try:
            with self._locked(repo):
                return self._read_merge_write(repo, self._desired(repo, live, overrides), extras)
        finally:
            with self._guard:  # what this run used is done with; later requests stay for the next run
                kept = {k: v for k, v in self._overrides.get(repo, {}).items() if v[0] > upto}
                self._overrides[repo] = kept
                self._extras[repo] = [entry for entry in self._extras.get(repo, []) if entry[0] > upto]

    def _desired(
        self, repo: RepositoryRef, live: LiveGrants, overrides: Mapping[GrantKey, LiveGrant | None]
    ) -> list[policy.DesiredStatement]:
        grants = {grant.key: grant for grant in live.naming_repository(repo)}
        for key, override in overrides.items():
            if override is None:
                grants.pop(key, None)
            else:
                grants[key] = override
        wanted: dict[str, tuple[tuple[str, ...], set[str]]] = {}
        for grant in sorted(grants.values(), key=lambda item: (item.key.namespace, item.key.name)):
            if repo not in grant.spec.repositories:
                continue
            entry = wanted.setdefault(self.sid_for(grant.spec), (grant.spec.actions, set()))
            info = self.resolve_role(grant.spec.role)
            if info is not None:
                entry[1].add(info.arn)
        return [policy.DesiredStatement(sid, actions, frozenset(arns)) for sid, (actions, arns) in wanted.items()]

    def _read_merge_write(
        self, repo: RepositoryRef, desired: list[policy.DesiredStatement], extras: list[policy.Statement]
    ) -> Synced:
        """Read, merge, write only if different, then re-read to verify (ECR has no conditional write).

        If the re-read differs from what was written, someone else wrote in between: merge into
        what they wrote and try again after a jittered pause, a bounded number of times.
        """
        document = self._read(repo)
        stale = policy.stale_principals(document, self.prefix)
        if stale:
            logger.info("Repository %s names deleted roles %s; rewriting from live grants", repo.arn, stale)
        foreign_edits = 0
        for attempt in range(self.tuning.write_attempts):
            result = policy.fit(document, self.prefix, desired, extras)
            if policy.equivalent(document, result.document):
                with self._guard:
                    self._propagating.pop(repo, None)
                return Synced(document, result.rejected, foreign_edits=foreign_edits)
            try:
                if result.document is None:
                    self.ecr.delete_repository_policy(repo)
                else:
                    self.ecr.set_repository_policy(repo, policy.serialize(result.document))
            except AwsFault as fault:
                raise self._bounded_propagation(repo, desired, fault) from fault
            check = self._read(repo)
            if policy.equivalent(check, result.document):
                with self._guard:
                    self._propagating.pop(repo, None)
                return Synced(result.document, result.rejected, foreign_edits=foreign_edits)
            foreign_edits += 1
            logger.warning(
                "Repository %s policy changed while we wrote it (attempt %d): merging again", repo.arn, attempt + 1
            )
            document = check
            self._sleep(random.uniform(*self.tuning.retry_jitter))
        raise AwsFault(
            FaultKind.UNAVAILABLE, "SetRepositoryPolicy", f"repository {repo.arn}",
            f"the policy kept changing under concurrent writers ({foreign_edits} times); will retry",
        )

    def _read(self, repo: RepositoryRef) -> policy.Document | None:
        """Read a repository's policy and remember it (see `_cached_sync`)."""
        document = policy.parse(self.ecr.get_repository_policy(repo))
        with self._guard:
            self._documents[repo] = (self._clock(), document)
        return document

    def _bounded_propagation(
        self, repo: RepositoryRef, desired: list[policy.DesiredStatement], fault: AwsFault
    ) -> AwsFault:
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
            for name in self.ecr.describe_repositories(registry.region, registry.registry_id):
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

    def release(self, key: GrantKey, spec: GrantSpec, prior: Prior, live: LiveGrants) -> Outcome:
        """Undo this grant's work (Delete), or hand its access over (Retain), as DESIGN §2.5 says.

        The grant must already be out of `live` (a deleting grant is not indexed); it is excluded
        again here so that a stale index cannot keep it.
        """
        plan = self.begin_release(key, spec, prior)
        if isinstance(plan, Outcome):
            return plan
        synced = {repo: self._sync_result(repo, live, ticket) for repo, ticket in plan.tickets.items()}
        return self.finish_release(plan, synced, live)

    async def release_async(self, key: GrantKey, spec: GrantSpec, prior: Prior, live: LiveGrants) -> Outcome:
        """`release` for kopf's coroutine handlers (a GitOps prune deletes many grants at once)."""
        plan = await asyncio.to_thread(self.begin_release, key, spec, prior, True)
        if isinstance(plan, Outcome):
            return plan
        synced = await self._sync_all_async(plan.tickets, live)
        return await asyncio.to_thread(self.finish_release, plan, synced, live)

    def begin_release(
        self, key: GrantKey, spec: GrantSpec, prior: Prior, asynchronous: bool = False
    ) -> Outcome | _Release:
        sid = self.sid_for(spec)
        role_label = f"IAM role {spec.role.describe()}"
        try:
            info = self.resolve_role(spec.role, max_age=self.tuning.fresh_age)
        except AwsFault as fault:
            return self._blocked(spec, sid, None, finding_for_fault(fault, role_label, "RoleNotFound"), prior)
        extra: list[policy.Statement] = []
        retained = policy.retained_sid(self.cluster_id, key.namespace, key.name)
        if spec.deletion_policy is DeletionPolicy.RETAIN and info is not None:
            extra.append(policy.build_retained_statement(retained, info.arn, spec.actions))
        repos = list(dict.fromkeys(spec.repositories + prior.repositories))
        tickets = {repo: self.request_sync(repo, exclude=key, extra=extra, asynchronous=asynchronous) for repo in repos}
        return _Release(key, spec, prior, sid, info.arn if info else None, retained if extra else None, tickets)

    def finish_release(
        self, plan: _Release, synced: Mapping[RepositoryRef, Synced | Exception], live: LiveGrants
    ) -> Outcome:
        results = []
        for repo, result in synced.items():
            label = f"Repository {repo.name} ({repo.arn})"
            if isinstance(result, AwsFault):
                finding = APPLIED if result.kind is FaultKind.NOT_FOUND else finding_for_fault(result, label)
            elif isinstance(result, Exception):
                finding = Finding("PolicyUnreadable", f"{label}: {result}", Severity.TERMINAL)
            elif plan.retained_sid and not any(
                item.get("Sid") == plan.retained_sid for item in policy.statements(result.document)
            ):
                finding = Finding(
                    "PolicyTooLarge",
                    f"{label}: the Retain hand-over statement does not fit in its policy; "
                    "make room or set deletionPolicy: Delete.",
                    Severity.TERMINAL,
                )
            else:
                finding = APPLIED
            if repo in plan.spec.repositories:
                results.append(RepositoryResult(repo.arn, plan.sid, finding))
        role_finding = APPLIED
        prior = plan.prior
        if plan.spec.deletion_policy is DeletionPolicy.DELETE and prior.owned_policy_arn and prior.role_arn:
            try:
                self._detach_if_unwanted(plan.key, prior.role_arn, prior.owned_policy_arn, live)
            except AwsFault as fault:
                if fault.kind is not FaultKind.NOT_FOUND:
                    role_finding = finding_for_fault(fault, f"IAM role {plan.spec.role.describe()}")
        return Outcome(plan.role_arn, prior.managed_policy_arn, prior.managed_policy_owned, role_finding,
                       tuple(results))


class GrantGone(Exception):
    """The drift check's grant left the live index (it began deleting) while being applied."""


class _CrossAccountError(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding

