"""The orphan sweep: statements of this cluster that no live grant accounts for are removed."""

from __future__ import annotations

import asyncio
import json
import time

from ecr_access.sweep import Registry, Sweeper
from tests.integration.conftest import ACCOUNT, CLOUD_ID, FOREIGN, REGION, Grants, World

HOME = Registry("aws", REGION, ACCOUNT)


def grant(*repos: str) -> dict[str, object]:
    return {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [{"name": name} for name in repos],
            "managedPolicy": "None"}


def test_sweep_removes_statements_of_a_grant_deleted_while_the_operator_was_down(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/a")
    world.create_repository("ml/b", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("gone", grant("ml/a", "ml/b"))
    world.apply(key, spec, None, grants)
    grants.remove(key)  # its finalizer was forced off: release never ran

    cleaned = world.sweep(grants, HOME)

    assert sorted(repo.name for repo in cleaned) == ["ml/a", "ml/b"]
    assert world.policy("ml/a") is None
    assert world.statements("ml/b") == [FOREIGN]


def test_sweep_removes_a_repository_dropped_from_every_spec(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/kept")
    world.create_repository("ml/dropped")
    key, spec = grants.add("g", grant("ml/kept", "ml/dropped"))
    world.apply(key, spec, None, grants)
    grants.add("g", grant("ml/kept"))  # edited while the operator was down; it never saw the old spec

    world.sweep(grants, HOME)

    assert world.policy("ml/dropped") is None
    assert len(world.ours("ml/kept")) == 1


def test_sweep_reads_only_repositories_no_live_grant_names_and_never_touches_other_prefixes(
    world: World, grants: Grants
) -> None:
    world.create_role()
    world.create_repository("ml/live")
    other = {"Sid": "EcrAccessGrant0123abcd0123456789abcdef", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": ["ecr:BatchGetImage"]}
    world.create_repository("ml/other-cluster", policy={"Version": "2012-10-17", "Statement": [other]})
    world.create_repository("ml/untouched")
    key, spec = grants.add("g", grant("ml/live"))
    world.apply(key, spec, None, grants)
    world.calls.clear()

    cleaned = world.sweep(grants, HOME)

    assert cleaned == []
    assert world.calls.count("DescribeRepositories") == 1
    assert world.calls.count("GetRepositoryPolicy") == 2, "ml/other-cluster and ml/untouched; not ml/live"
    assert world.calls.writes() == []
    assert world.statements("ml/other-cluster") == [other]


def test_sweep_covers_every_registry_the_grants_use(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/east", region="us-east-1")
    world.create_repository("ml/east-orphan", region="us-east-1")
    key, spec = grants.add("g", {**grant(), "repositories": [
        {"arn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/ml/east"},
        {"arn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/ml/east-orphan"}]})
    world.apply(key, spec, None, grants)
    grants.add("g", {**grant(), "repositories": [{"arn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/ml/east"}]})

    cleaned = world.sweep(grants, HOME)

    assert [repo.arn for repo in cleaned] == [f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/ml/east-orphan"]
    assert world.calls.count("DescribeRepositories") == 2, "the home registry and us-east-1"


def test_sweeper_waits_until_the_indexes_are_complete(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", grant("ml/a"))
    world.apply(key, spec, None, grants)
    sweeper = Sweeper(world.reconciler.repositories, HOME, interval=3600)

    async def scenario() -> None:
        sweeper.start()
        try:
            await asyncio.sleep(0.3)
            assert sweeper.sweeps == 0, "no sweep on a view of the cluster that may be partial"
            assert world.calls.count("DescribeRepositories") == 0
            sweeper.indexes_ready(grants)
            deadline = time.monotonic() + 10
            while sweeper.sweeps == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert sweeper.sweeps == 1
            assert len(world.ours("ml/a")) == 1, "the live grant's statement stays"
        finally:
            await sweeper.stop()

    world.run(scenario())


def test_a_disabled_sweeper_never_runs(world: World, grants: Grants) -> None:
    sweeper = Sweeper(world.reconciler.repositories, HOME, interval=0)

    async def scenario() -> None:
        sweeper.start()
        sweeper.indexes_ready(grants)
        await asyncio.sleep(0.2)
        await sweeper.stop()

    world.run(scenario())
    assert sweeper.sweeps == 0
    assert world.calls.made == []


def test_sweep_of_a_policy_someone_else_rewrote_keeps_their_edit(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", grant("ml/a"))
    world.apply(key, spec, None, grants)
    grants.remove(key)
    doc = world.policy("ml/a")
    assert doc is not None
    doc["Statement"].append(FOREIGN)
    world.ecr().set_repository_policy(repositoryName="ml/a", policyText=json.dumps(doc))
    reconciler = world.reconciler_with(cluster_id="test-cluster-uid", cache_ttl=0.0)

    world.sweep(grants, HOME, reconciler=reconciler)

    assert world.statements("ml/a") == [FOREIGN]


def test_a_registry_that_cannot_be_listed_is_skipped_and_the_sweep_goes_on(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/east", region="us-east-1")
    world.create_repository("ml/orphan")
    key, spec = grants.add("g", {**grant("ml/orphan"), "repositories": [
        {"name": "ml/orphan"}, {"arn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/ml/east"}]})
    world.apply(key, spec, None, grants)
    grants.add("g", {**grant(), "repositories": [{"arn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/ml/east"}]})
    # The registries are swept in sorted order: us-east-1 first, and it cannot be listed.
    world.calls.inject("DescribeRepositories", "AccessDeniedException", "not allowed here")

    cleaned = world.sweep(grants, HOME)

    assert [repo.name for repo in cleaned] == ["ml/orphan"], "the home registry is still swept"


def test_a_statement_that_only_borrows_our_prefix_is_never_swept(world: World, grants: Grants) -> None:
    human = {"Sid": world.reconciler.prefix + "Notes", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "ecr:ListImages"}
    world.create_repository("ml/human", policy={"Version": "2012-10-17", "Statement": [human]})

    assert world.sweep(grants, HOME) == []
    assert world.statements("ml/human") == [human]
