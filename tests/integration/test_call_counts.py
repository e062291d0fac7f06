"""Grants over shared repositories and roles make the lower bound of AWS calls, exactly.

kopf runs handlers as coroutines on one event loop, so a burst is simulated the same way: every
grant's apply gathered at once, through the async API production runs. The lower bound for the scenario below:
- per role: one GetRole, one ListAttachedRolePolicies, one TagRole (the ledger: this cluster's want and
  the attachment record, in one call, before the attach), one AttachRolePolicy (none was attached);
- per repository: one GetRepositoryPolicy, one SetRepositoryPolicy, and the re-read that verifies it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from ecr_access.reconcile import Reconciler
from tests.integration.conftest import FOREIGN, Grants, World

ROLES = ("team-a-node-role", "team-b-node-role")
# grant -> (role, repositories): every repository is named by grants of both roles
SCENARIO = {
    "g1": (ROLES[0], ("ml/a", "ml/b")),
    "g2": (ROLES[0], ("ml/a",)),
    "g3": (ROLES[0], ("ml/b", "ml/c")),
    "g4": (ROLES[1], ("ml/a", "ml/c")),
    "g5": (ROLES[1], ("ml/b",)),
    "g6": (ROLES[1], ("ml/c", "ml/a")),
}


def burst(world: World, reconciler: Reconciler, grants: Grants, keys: list[Any]) -> list[Any]:
    async def together() -> list[Any]:
        return list(await asyncio.gather(*(reconciler.apply(key, spec, None, grants) for key, spec in keys)))

    outcomes: list[Any] = world.run(together())
    return outcomes


@pytest.fixture
def coalescing(world: World) -> Reconciler:
    return world.reconciler_with(coalesce_window=1.0, cache_ttl=30.0)


def test_a_burst_makes_exactly_the_lower_bound_of_calls(world: World, grants: Grants, coalescing: Reconciler) -> None:
    for role in ROLES:
        world.create_role(role)
    for repo in ("ml/a", "ml/b"):
        world.create_repository(repo)
    world.create_repository("ml/c", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    keys = [grants.add(name, {"role": {"name": role}, "repositories": [{"name": r} for r in repos]})
            for name, (role, repos) in SCENARIO.items()]
    world.calls.clear()

    outcomes = burst(world, coalescing, grants, keys)

    assert all(not o.transient and not o.terminal for o in outcomes), outcomes
    assert Counter(world.calls.made) == {
        "GetRole": 2,
        "ListAttachedRolePolicies": 2,
        "TagRole": 2,
        "AttachRolePolicy": 2,
        "GetRepositoryPolicy": 3 + 3,  # one read per repository, plus the verifying re-read
        "SetRepositoryPolicy": 3,
    }
    for repo in ("ml/a", "ml/b", "ml/c"):
        [ours] = world.ours(repo)
        assert len(ours["Principal"]["AWS"]) == 2
    assert FOREIGN in world.statements("ml/c")


def test_a_second_burst_within_the_cache_age_makes_no_calls(
    world: World, grants: Grants, coalescing: Reconciler
) -> None:
    for role in ROLES:
        world.create_role(role)
    for repo in ("ml/a", "ml/b", "ml/c"):
        world.create_repository(repo)
    keys = [grants.add(name, {"role": {"name": role}, "repositories": [{"name": r} for r in repos]})
            for name, (role, repos) in SCENARIO.items()]
    burst(world, coalescing, grants, keys)
    world.calls.clear()

    outcomes = burst(world, coalescing, grants, keys)

    assert world.calls.made == [], "every answer is younger than fresh_age and already holds what is wanted"
    assert all(not o.transient and not o.terminal for o in outcomes)


def test_a_change_that_needs_a_write_always_reads_first(world: World, grants: Grants, coalescing: Reconciler) -> None:
    for role in (*ROLES, "team-c-node-role"):
        world.create_role(role)
    world.create_repository("ml/a")
    first = [grants.add("g1", {"role": {"name": ROLES[0]}, "repositories": [{"name": "ml/a"}]})]
    burst(world, coalescing, grants, first)
    world.calls.clear()

    second = [grants.add("g2", {"role": {"name": "team-c-node-role"}, "repositories": [{"name": "ml/a"}]})]
    burst(world, coalescing, grants, second)

    assert [call for call in world.calls.made if "Repository" in call] == [
        "GetRepositoryPolicy", "SetRepositoryPolicy", "GetRepositoryPolicy"]
