"""The orphan sweep: this cluster's statements in repositories that no live grant names any more.

They are left behind when a grant was deleted while the operator was down with its finalizer
forced off, or when a repository was dropped from every spec while it was down.

The sweep must never run on a partial view of the cluster, or it would strip principals of grants
it has not seen yet. kopf fills its indexes completely before the first resource handler runs, so
the first handler call (or, with no grants at all, the start-up check that found none) is the
signal that the view is whole. Then it runs at once, and every `interval` seconds, as an asyncio
task beside the drift loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from ecr_access import cause, policy, tasks
from ecr_access.grants import LiveGrants
from ecr_access.model import RepositoryRef
from ecr_access.ports import AwsFault, FaultKind
from ecr_access.repositories import RepositorySync, Synced

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, order=True)
class Registry:
    """Where repositories live: one account's registry in one region."""

    partition: str
    region: str
    registry_id: str


async def sweep(repositories: RepositorySync, live: LiveGrants, home: Registry) -> list[RepositoryRef]:
    """Remove this cluster's statements from repositories that no live grant names; returns those.

    It covers every registry (partition, region, account) the live grants use, plus the operator's
    own and, in its region, every account an EcrAccessAccount configures; it reads the policy of
    each repository no live grant names, and recomputes only those that hold this cluster's prefix.
    Other prefixes are never touched. A registry or repository that fails is skipped (logged) and
    tried again next time.
    """
    registries = {home} | {Registry(repo.partition, repo.region, repo.registry_id)
                           for grant in live.everything() for repo in grant.spec.repositories}
    # And every account an EcrAccessAccount configures, in the home region: the last grant using
    # one may be what was deleted while the operator was down. A cloud's account may hold no
    # repositories, and its role no ECR actions (deploy/iam/cloud-account-policy.json): there,
    # AccessDenied is no news.
    unused = {Registry(home.partition, home.region, account) for account in repositories.accounts.configured()}
    unused -= registries
    cleaned = []
    for registry in sorted(registries | unused):
        try:  # list the whole registry first, so a failure skips just it
            names = await repositories.ecr(registry.registry_id).describe_repositories(registry.region,
                                                                                 registry.registry_id)
        except AwsFault as fault:
            quiet = registry in unused and fault.kind is FaultKind.ACCESS_DENIED
            logger.log(logging.DEBUG if quiet else logging.WARNING, "Sweep skipped registry %s in %s (%s): %s",
                       registry.registry_id, registry.region, fault.kind.value, fault)
            continue
        for name in names:
            repo = RepositoryRef(registry.partition, registry.region, registry.registry_id, name)
            if any(True for _ in live.naming_repository(repo)):
                continue  # its grants' own syncs keep it right
            try:
                document = await repositories.read(repo)
            except (AwsFault, policy.PolicyDocumentError) as problem:
                logger.warning("Sweep skipped %s: %s", repo.arn, problem)
                continue
            if not policy.owned_principals(document, repositories.prefix):
                continue
            result = await repositories.sync(repo, live, repositories.request(repo, {}, burst=False, orphan=True), 0.0)
            if not isinstance(result, Synced):
                logger.warning("Sweep could not clean %s: %s", repo.arn, result)
                continue
            logger.info("Sweep removed this cluster's statements from %s (no live grant names it)", repo.arn)
            cleaned.append(repo)
    return cleaned


class Sweeper:
    """Runs `sweep` as an asyncio task. `interval <= 0` disables it."""

    def __init__(self, repositories: RepositorySync, home: Registry, interval: float) -> None:
        self.repositories = repositories
        self.home = home
        self.interval = interval
        self.sweeps = 0
        self._live: LiveGrants | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def indexes_ready(self, live: LiveGrants) -> None:
        """Called by every handler; only the first call matters (cheap afterwards)."""
        if self._live is None:
            self._live = live
            self._ready.set()

    def start(self) -> None:
        if self.enabled:
            self._task = tasks.start(self._task, self._loop(), "orphan-sweep")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    async def sweep_once(self) -> None:
        if self._live is None:
            return
        try:
            with cause.acting_for(cause.SWEEP):
                cleaned = await sweep(self.repositories, self._live, self.home)
        except Exception:  # a failed sweep is retried on the next interval; it must not end the task
            logger.exception("Orphan sweep failed; retrying in %.0fs", self.interval)
        else:
            logger.info("Orphan sweep done: %d repositories cleaned", len(cleaned))
        self.sweeps += 1

    async def _loop(self) -> None:
        await self._ready.wait()
        while True:
            await self.sweep_once()
            await asyncio.sleep(self.interval)
