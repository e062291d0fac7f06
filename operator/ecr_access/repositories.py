"""Repository sync: a request queue per repository, and its read -> merge -> write-if-different -> verify.

A repository's statements are never computed from the one grant being handled: each sync derives
them from every live grant that names the repository (DESIGN §2.3), with the requests' changes put
in (a grant being applied, one being released, a Retain hand-over). That is what makes the result
independent of the order in which grants are handled, and what makes a restart or a lost event
harmless. Requests made while a sync waits share it (`coalesce.Coalescer`); ECR has no conditional
write, so syncs of one repository never overlap, and each write is verified by a re-read.

What the queue also remembers, per repository: the policy as last read (a steady-state check needs
no second read), principals ECR refused (`refusals`), when ECR first refused a principal (the
propagation clock), and since when the repository has not answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping

from ecr_access import handover, policy, refusals, write_audit
from ecr_access.coalesce import Cache, Coalescer
from ecr_access.config import Config
from ecr_access.grants import Changes, LiveGrant, LiveGrants, with_changes
from ecr_access.metrics import Metrics
from ecr_access.model import GrantKey, RepositoryRef
from ecr_access.ports import Accounts, AwsFault, EcrPort, FaultKind
from ecr_access.roles import RoleDirectory
from ecr_access.statements import desired

logger = logging.getLogger(__name__)

# The pause before merging again after a concurrent writer changed the policy under ours.
RETRY_JITTER = (0.05, 0.5)


@dataclasses.dataclass(frozen=True)
class Synced:
    """The result of one repository sync: the document now in AWS and who did not fit in it."""

    document: policy.Document | None
    rejected: Mapping[str, frozenset[str]]
    foreign_edits: int = 0  # times a concurrent writer changed the policy between our write and re-read
    pending: frozenset[str] = frozenset()  # Retain hand-over Sids that did not fit (see `handover`)
    refused: Mapping[str, float] = dataclasses.field(default_factory=dict)  # principal -> first refused (`refusals`)
    # (Sid, principal) pairs a write put back of what the operator last saw there: drift repaired
    # (someone removed them, or the whole statement), for those grants' DriftRepaired Event.
    repaired: frozenset[tuple[str, str]] = frozenset()


Result = Synced | AwsFault | policy.PolicyDocumentError


class RepositorySync:
    """Keeps repositories' policies holding this cluster's statements for the live grants."""

    def __init__(
        self, accounts: Accounts, roles: RoleDirectory, *, cluster_id: str, config: Config,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        gate: Callable[[str], asyncio.Semaphore] | None = None, metrics: Metrics | None = None,
    ) -> None:
        """`gate(account)`: the bound on AWS work at once in that account, shared with the role side
        (`reconcile`). Per account, as AWS throttles: a slow account holds up only itself."""
        self.accounts = accounts
        self.gate = gate
        self.metrics = metrics or Metrics()
        self._waiting: dict[RepositoryRef, float] = {}  # repositories requested and not yet served, since when
        self._orphans: set[RepositoryRef] = set()  # what the orphan sweep asked to clean
        self.roles = roles
        self.cluster_id = cluster_id
        self.prefix = policy.cluster_prefix(cluster_id)
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._flights = Coalescer(clock)
        self._queued: dict[RepositoryRef, dict[GrantKey, tuple[int, LiveGrant | None]]] = {}
        self._sequence = 0
        self._documents: Cache[RepositoryRef, policy.Document | None] = Cache(clock)
        self.refusals = refusals.Refusals()
        self._propagation = refusals.Propagation(config.propagation_window)
        self._unanswered: dict[RepositoryRef, float] = {}  # since when each repository has not answered

    def request(self, repo: RepositoryRef, changed: Changes, *, burst: bool = True, orphan: bool = False) -> int:
        """Take a place in the next sync of `repo`, with this request's changes in it. `burst`: a
        change that may be one of many (a GitOps sync), which the sync waits for (`Coalescer`).
        `orphan`: the orphan sweep asks (no live grant names the repository; for metrics and logs)."""
        if orphan:
            self._orphans.add(repo)
        self._sequence += 1
        queued = self._queued.setdefault(repo, {})
        for key, grant in changed.items():
            queued[key] = (self._sequence, grant)
        self._waiting.setdefault(repo, self._clock())
        self.metrics.queued(len(self._waiting))
        return self._flights.request(repo, burst=burst)

    async def sync(self, repo: RepositoryRef, live: LiveGrants, ticket: int, max_age: float, *,
                   since: float | None = None) -> Result:
        """The sync this ticket is in, or an answer at most `max_age` old (and read at or after
        `since`) that already holds what the live grants want (only a read is ever saved). Failures
        are returned, not raised."""
        try:
            result = await self._cached(repo, live, max_age, since)
            if result is None:
                # Re-checked inside the flight: a run that started after ours was requested may have
                # just read this policy, and then a drift check need not read it again.
                async def run() -> Synced:
                    return await self._cached(repo, live, max_age, since) or await self._run(repo, live)

                result = await self._flights.run(repo, run, ticket=ticket, quiet=self.config.coalesce_window,
                                                 longest=self.config.coalesce_longest,
                                                 gate=self.gate(repo.registry_id) if self.gate else None)
        except (AwsFault, policy.PolicyDocumentError) as problem:
            return self._answered(repo, problem)
        finally:
            since = self._waiting.pop(repo, None)
            self.metrics.dequeued(len(self._waiting), () if since is None else (self._clock() - since,))
        return self._answered(repo, result)

    def ecr(self, registry_id: str) -> EcrPort:
        """ECR in the repository's account; raises AwsFault(ACCOUNT_NOT_CONFIGURED) where the
        operator has no credentials."""
        return self.accounts.ecr(registry_id)

    def silent_for(self, repo: RepositoryRef) -> float | None:
        """Seconds since the repository last answered, while it does not."""
        since = self._unanswered.get(repo)
        return None if since is None else self._clock() - since

    def offer_again(self, repo: RepositoryRef, arn: str) -> None:
        self.refusals.offer_again(repo, arn)

    async def read(self, repo: RepositoryRef) -> policy.Document | None:
        """Read a repository's policy and remember it (see `_cached`)."""
        document = policy.parse(await self.ecr(repo.registry_id).get_repository_policy(repo))
        policy.check_ours(document, self.prefix)  # a hand-broken statement of ours: PolicyUnreadable, not a crash
        self._documents.put(repo, document)
        return document

    def _answered(self, repo: RepositoryRef, result: Result) -> Result:
        if isinstance(result, AwsFault) and result.kind is FaultKind.UNAVAILABLE:
            self._unanswered.setdefault(repo, self._clock())
        else:
            self._unanswered.pop(repo, None)
        return result

    async def _cached(self, repo: RepositoryRef, live: LiveGrants, max_age: float,
                      since: float | None) -> Synced | None:
        if not max_age:
            return None
        if not self.accounts.reaches(repo.registry_id):
            # Its EcrAccessAccount is gone since the policy was read: say so, not what it was.
            self._documents.forget(repo)
            return None
        cached = self._documents.lookup(repo, max_age, since=since)
        if cached is None:
            return None
        queued = {key: grant for key, (_, grant) in self._queued.get(repo, {}).items()}
        desired, handovers = await self._desired(repo, live, queued)
        held = self.refusals.held_back(repo, self._clock())
        result = handover.fit(cached.value, self.prefix, refusals.without(desired, held),
                              refusals.handovers_without(handovers, held))
        if not policy.equivalent(cached.value, result.document):
            return None
        return Synced(cached.value, result.rejected, pending=result.pending, refused=self.refusals.first_refused(repo))

    async def _run(self, repo: RepositoryRef, live: LiveGrants) -> Synced:
        upto = self._sequence
        queued = {key: grant for key, (_, grant) in self._queued.get(repo, {}).items()}
        # The sweep's ask is this run's, written or not: it must not label a later write (a grant's).
        orphan = repo in self._orphans
        self._orphans.discard(repo)
        try:
            grants = with_changes(live.naming_repository(repo), queued, lambda grant: repo in grant.spec.repositories)
            return await self._read_merge_write(repo, *await self._desired(repo, live, queued), requested=queued,
                                                grants=grants, orphan=orphan)
        finally:  # what this run used is done with; later requests stay for the next run
            self._queued[repo] = {k: v for k, v in self._queued.get(repo, {}).items() if v[0] > upto}

    async def _desired(
        self, repo: RepositoryRef, live: LiveGrants, changed: Changes
    ) -> tuple[list[policy.DesiredStatement], list[handover.Handover]]:
        grants = with_changes(live.naming_repository(repo), changed, lambda grant: repo in grant.spec.repositories)

        def permitted(grant: LiveGrant, role_arn: str) -> bool:
            return live.verdict(grant, role_arn).allows(repo)

        return await desired(self.cluster_id, grants, self.roles.principal, permitted)

    async def _read_merge_write(
        self, repo: RepositoryRef, desired: list[policy.DesiredStatement], handovers: list[handover.Handover],
        requested: Changes | None = None, grants: list[LiveGrant] | None = None, orphan: bool = False,
    ) -> Synced:
        """Read, merge, write only if different, then re-read to verify (ECR has no conditional write).

        If the re-read differs from what was written, someone else wrote in between: merge into
        what they wrote and try again after a jittered pause, a bounded number of times. If ECR
        refuses the document for a principal, the refused ones are found and held back, and the
        rest is written (`refusals`).
        """
        # What this operator last saw there (its last read or verified write), before reading it
        # afresh: drift is a difference from it (nothing known, e.g. just after a restart: none).
        known = self._documents.lookup(repo, math.inf)
        document = await self.read(repo)
        stale = policy.stale_principals(document, self.prefix)
        if stale:
            logger.info("Repository %s names deleted roles %s; rewriting from live grants", repo.arn, stale)
        held = self.refusals.held_back(repo, self._clock())
        foreign_edits = 0
        repaired: frozenset[tuple[str, str]] = frozenset()
        isolated = False  # at most one isolation per sync: its writes are bounded by bisection

        def audit(before: policy.Document | None, after: policy.Document | None) -> None:
            nonlocal repaired, orphan
            repaired |= write_audit.record(
                self.metrics, self.roles.known_arn, self.prefix, repo, before, after, grants or [], requested or {},
                known=known.value if known else None, has_known=known is not None and not orphan, orphan=orphan)
            orphan = False  # counted once per run

        while True:
            offered = refusals.without(desired, held)
            offered_handovers = refusals.handovers_without(handovers, held)
            result = handover.fit(document, self.prefix, offered, offered_handovers)
            if not policy.equivalent(document, result.document):
                try:
                    await self._write(repo, result.document)
                    audit(document, result.document)
                except AwsFault as fault:
                    if fault.kind is not FaultKind.PROPAGATING or isolated:
                        raise self._bounded_propagation(repo, fault) from fault
                    isolated = True
                    # Isolate on the policy as it is now, not as first read: a write landed meanwhile
                    # is built on, not overwritten. The loop then re-reads and verifies as always.
                    document = await self.read(repo)
                    held = held | await self._isolate(repo, document, offered, offered_handovers, fault, audit)
                    document = await self.read(repo)
                    continue
                check = await self.read(repo)
                if not policy.equivalent(check, result.document):
                    self.metrics.written("concurrent_edit")
                    foreign_edits += 1
                    if foreign_edits >= self.config.write_attempts:
                        raise AwsFault(
                            FaultKind.UNAVAILABLE, "SetRepositoryPolicy", f"repository {repo.arn}",
                            f"the policy kept changing under concurrent writers ({foreign_edits} times); will retry",
                        )
                    logger.warning("Repository %s policy changed while we wrote it (attempt %d): merging again",
                                   repo.arn, foreign_edits)
                    document = check
                    await self._sleep(random.uniform(*RETRY_JITTER))
                    continue
                self.metrics.written("verified")
            self.metrics.policy_size.observe(len(policy.serialize(result.document)) / policy.MAX_POLICY_CHARS
                                             if result.document is not None else 0.0)
            self._propagation.accepted(repo)
            # Whoever is no longer held back was accepted (or is no longer wanted): forget them.
            self.refusals.forget(repo, held)
            return Synced(result.document, result.rejected, foreign_edits=foreign_edits, pending=result.pending,
                          refused=self.refusals.first_refused(repo), repaired=repaired)

    async def _write(self, repo: RepositoryRef, document: policy.Document | None) -> None:
        if document is None:
            await self.ecr(repo.registry_id).delete_repository_policy(repo)
        else:
            await self.ecr(repo.registry_id).set_repository_policy(repo, policy.serialize(document))

    async def _isolate(
        self, repo: RepositoryRef, document: policy.Document | None, offered: list[policy.DesiredStatement],
        handovers: list[handover.Handover], fault: AwsFault,
        audit: Callable[[policy.Document | None, policy.Document | None], None],
    ) -> frozenset[str]:
        """ECR refused a principal: land what it accepts, and return the refused principals. Each
        write ECR accepts changes who has access, so each is `audit`ed (over the last accepted one)."""
        last = document

        async def write(candidate: policy.Document | None) -> bool:
            nonlocal last
            try:
                await self._write(repo, candidate)
            except AwsFault as again:
                if again.kind is FaultKind.PROPAGATING:
                    return False
                raise
            audit(last, candidate)
            last = candidate
            return True

        found = await refusals.isolate(document, self.prefix, offered, handovers, write)
        if found is None:  # refused even without any new principal: not ours to isolate
            raise self._bounded_propagation(repo, fault) from fault
        accepted, refused = found
        logger.warning("ECR refuses %s as principals of %s; applied the other %d new principals without them",
                       sorted(refused), repo.arn, len(accepted))
        self.refusals.note(repo, refused, self._clock(), self.config.refused_retry, self.config.refused_retry_max)
        return refused

    def _bounded_propagation(self, repo: RepositoryRef, fault: AwsFault) -> AwsFault:
        if fault.kind is FaultKind.PROPAGATING:
            self.roles.forget_all()  # re-resolve every role next time: one may have been deleted since we looked
        return self._propagation.bounded(repo, fault, self._clock())
