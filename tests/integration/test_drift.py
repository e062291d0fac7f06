"""The drift check (one loop for all grants) against moto: what one pass reads, repairs and writes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from ecr_access.drift import DriftChecker
from ecr_access.grants import compact_status
from ecr_access.model import GrantKey, RepositoryRef, RoleKey
from ecr_access.reconcile import LiveGrant, Reconciler
from ecr_access.spec import parse_spec
from tests import memory
from tests.integration.conftest import CLOUD_ID, DEFAULTS, World

INTERVAL = 300.0
NOW = "2026-01-01T00:00:00Z"


def is_ready(status: Mapping[str, Any]) -> bool:
    return any(item["type"] == "Ready" and item["status"] == "True" for item in status.get("conditions", []))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Cluster(memory.Grants):
    """Live grants as the index holds them (spec, generation, last status), and their status writes."""

    def __init__(self) -> None:
        super().__init__(DEFAULTS)
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.fail_writes = False

    def put(self, name: str, *repos: str, **extra: Any) -> GrantKey:
        spec = parse_spec({"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [{"name": r} for r in repos],
                           **extra}, DEFAULTS)
        key = GrantKey("default", name)
        self.live[key] = LiveGrant(key, spec, active=not spec.suspend, generation=1, uid=f"uid-{name}")
        return key

    def status(self, key: GrantKey) -> Mapping[str, Any]:
        return self.live[key].status

    def write_status(self, key: GrantKey, patch: Mapping[str, Any]) -> None:
        if self.fail_writes:
            raise RuntimeError("the API server is away")
        self.writes.append((key.name, dict(patch)))
        status = {**self.live[key].status, **patch}
        status = {name: value for name, value in status.items() if value is not None}
        self.live[key] = dataclasses.replace(self.live[key], status_json=compact_status(status))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reconciler(world: World, clock: Clock) -> Reconciler:
    """A reconciler on a clock the test moves: "one interval later" without waiting for it."""
    return world.reconciler_with(cache_ttl=60.0, role_cache_ttl=30.0, clock=clock)


@pytest.fixture
def loop(world: World) -> asyncio.AbstractEventLoop:
    return world.loop


def checker(reconciler: Reconciler, cluster: Cluster, **kwargs: Any) -> DriftChecker:
    drift = DriftChecker(reconciler, **{"interval": INTERVAL, "retry_delay": 15.0, **kwargs},
                         write_status=cluster.write_status, warn=lambda grant, reason, message: None, now=lambda: NOW)
    drift.indexes_ready(cluster)
    return drift


def test_a_pass_reads_each_role_and_repository_once_and_writes_nothing_when_all_holds(
        world: World, reconciler: Reconciler, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
    world.create_role()
    repos = ["ml/a", "ml/b", "ml/c"]
    for name in repos:
        world.create_repository(name)
    cluster = Cluster()
    for i in range(40):
        cluster.put(f"g{i}", *repos[: 1 + i % 3])
    drift = checker(reconciler, cluster)
    loop.run_until_complete(drift.check())  # the first pass applies everything and writes 40 statuses
    assert len(cluster.writes) == 40
    assert all(is_ready(grant.status) for grant in cluster.everything())
    cluster.writes.clear()
    world.calls.clear()

    clock.now += INTERVAL  # what the last pass read is now a whole interval old
    report = loop.run_until_complete(drift.check())

    assert report.checked == 40 and report.patched == 0
    assert cluster.writes == [], "an unchanged world writes no status"
    assert sorted(world.calls.made) == sorted(["GetRole", "ListAttachedRolePolicies"] + ["GetRepositoryPolicy"] * 3)


def test_a_pass_repairs_a_tampered_policy_and_reports_a_deleted_repository(
        world: World, reconciler: Reconciler, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
    world.create_role()
    world.create_repository("ml/a")
    world.create_repository("ml/b")
    cluster = Cluster()
    both, only_b = cluster.put("both", "ml/a", "ml/b"), cluster.put("only-b", "ml/b")
    drift = checker(reconciler, cluster)
    loop.run_until_complete(drift.check())
    cluster.writes.clear()

    world.ecr().delete_repository_policy(repositoryName="ml/b")
    world.ecr().delete_repository(repositoryName="ml/a", force=True)
    clock.now += INTERVAL
    loop.run_until_complete(drift.check())

    assert len(world.ours("ml/b")) == 1, "the statement is back"
    assert [name for name, _ in cluster.writes] == ["both"], "only the grant whose verdict changed is written"
    ready = {item["type"]: item for item in cluster.status(both)["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "RepositoryNotFound")
    assert is_ready(cluster.status(only_b))


def test_a_transient_failure_is_checked_again_after_the_retry_delay(
        world: World, reconciler: Reconciler, loop: asyncio.AbstractEventLoop) -> None:
    world.create_role()
    world.create_repository("ml/a")
    cluster = Cluster()
    key = cluster.put("g", "ml/a")
    world.calls.inject("GetRepositoryPolicy", "ThrottlingException", "Rate exceeded")
    drift = checker(reconciler, cluster, retry_delay=0.05, first_delay=0.0)

    async def until_ready() -> None:
        drift.start()
        try:
            # The pass is counted after its status writes: wait for both, or the count races the write.
            while not (is_ready(cluster.status(key)) and drift.passes >= 2):
                await asyncio.sleep(0.01)
        finally:
            await drift.stop()

    loop.run_until_complete(asyncio.wait_for(until_ready(), timeout=20))

    first, _ = (patch for _, patch in cluster.writes)
    assert {item["type"] for item in first["conditions"]} == {"Ready", "Reconciling"}
    assert drift.passes == 2, "the retry came long before the next interval (300 s)"
    assert len(world.ours("ml/a")) == 1


def test_suspended_grants_are_left_alone_and_a_failed_write_is_retried(
        world: World, reconciler: Reconciler, loop: asyncio.AbstractEventLoop) -> None:
    world.create_role()
    world.create_repository("ml/a")
    cluster = Cluster()
    cluster.put("paused", "ml/a", suspend=True)
    key = cluster.put("g", "ml/a")
    cluster.fail_writes = True
    drift = checker(reconciler, cluster)

    report = loop.run_until_complete(drift.check())

    # The suspended grant is judged as it stands (its frozen contribution) but nothing of it changes:
    # no status write, and it is never retried.
    assert (report.checked, report.failed) == (2, 1)
    assert [name for name, _ in cluster.writes] == []
    assert len(world.ours("ml/a")) == 1, "the live grant's statement is written even though its status is not"
    assert drift.due_for_retry() == {key}
    cluster.fail_writes = False
    report = loop.run_until_complete(drift.check(drift.due_for_retry()))
    assert (report.checked, report.patched) == (1, 1)
    assert drift.due_for_retry() == set()


@pytest.mark.parametrize("lookups_before_leaving", [0, 1], ids=["before-its-check", "during-its-check"])
def test_a_grant_that_leaves_the_index_mid_pass_is_not_applied(
        world: World, reconciler: Reconciler, loop: asyncio.AbstractEventLoop, lookups_before_leaving: int) -> None:
    """A grant that begins deleting while a pass runs: its release may be undoing exactly what an apply
    would do, so the pass attaches nothing, writes no statement for it and writes no status."""
    world.create_role()
    world.create_repository("ml/a")

    class Leaving(Cluster):
        lookups = 0

        def on_role(self, role: RoleKey) -> list[LiveGrant]:
            self.lookups += 1
            return super().on_role(role) if self.lookups <= lookups_before_leaving else []

        def naming_repository(self, repo: RepositoryRef) -> list[LiveGrant]:
            return super().naming_repository(repo) if self.lookups <= lookups_before_leaving else []

    cluster = Leaving()
    cluster.put("g", "ml/a")
    drift = checker(reconciler, cluster)

    report = loop.run_until_complete(drift.check())

    assert cluster.lookups == lookups_before_leaving + 1
    assert (report.patched, report.failed, report.retrying) == (0, 0, 0)
    assert world.calls.writes() == [] and world.ours("ml/a") == [] and world.attached() == set()
    assert cluster.writes == []
