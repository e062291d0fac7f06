"""One principal ECR refuses never blocks a repository (issue 11): the others are applied, removals
land, and only the refused grant is told, by name. moto does not check principals; the
`principal_check` fixture refuses them the way ECR does."""

from __future__ import annotations

import itertools

from ecr_access.conditions import Severity
from ecr_access.reconcile import Reconciler, Tuning
from tests.integration.conftest import ACCOUNT, CLUSTER_ID, Grants, PrincipalCheck, World

GHOST = f"arn:aws:iam::{ACCOUNT}:role/ghost"  # never created
ELSEWHERE = "arn:aws:iam::999999999999:role/attacker"  # another account: never looked up


def grant(role: dict[str, str], *repos: str) -> dict[str, object]:
    return {"role": role, "repositories": [{"name": name} for name in repos], "managedPolicy": "None"}


def principals(world: World, repo: str) -> set[str]:
    return {arn for item in world.ours(repo) for arn in item["Principal"]["AWS"]}


def test_a_refused_principal_is_named_and_every_other_grant_is_applied(
    world: World, grants: Grants, principal_check: PrincipalCheck
) -> None:
    good = [world.create_role(f"team-{n}") for n in range(5)]
    world.create_repository("shared/base")
    keys = [grants.add(f"good-{n}", grant({"name": f"team-{n}"}, "shared/base"), namespace="team")
            for n in range(5)]
    bad_key, bad = grants.add("evil", grant({"arn": ELSEWHERE}, "shared/base"), namespace="evil")

    outcomes = [world.reconciler.apply(key, spec, None, grants) for key, spec in [*keys, (bad_key, bad)]]

    assert principals(world, "shared/base") == set(good)
    assert all(outcome.repositories[0].finding.ok for outcome in outcomes[:-1])
    finding = outcomes[-1].repositories[0].finding
    assert (finding.reason, finding.severity) == ("RolePropagating", Severity.TRANSIENT), "a new role may propagate"
    assert ELSEWHERE in finding.message and "shared/base" in finding.message
    assert principal_check.refused >= 1


def test_after_the_propagation_window_the_refused_grant_is_stalled_alone(
    world: World, grants: Grants, principal_check: PrincipalCheck
) -> None:
    clock = itertools.count(0.0, 100.0)  # each reading of the clock is 100 s later
    reconciler = Reconciler(world.reconciler.iam, world.reconciler.ecr, cluster_id=CLUSTER_ID, account=ACCOUNT,
                            tuning=Tuning(fresh_age=0.0, propagation_window=120.0, refused_retry=0.0),
                            clock=lambda: next(clock))
    world.create_role("team-a")
    world.create_repository("shared/base")
    a_key, a = grants.add("a", grant({"name": "team-a"}, "shared/base"), namespace="team")
    bad_key, bad = grants.add("evil", grant({"arn": ELSEWHERE}, "shared/base"), namespace="evil")
    reconciler.apply(bad_key, bad, None, grants)

    later = reconciler.apply(bad_key, bad, None, grants)

    finding = later.repositories[0].finding
    assert (finding.reason, finding.severity) == ("PrincipalRejected", Severity.TERMINAL)
    assert ELSEWHERE in finding.message
    assert reconciler.apply(a_key, a, None, grants).repositories[0].finding.ok


def test_a_delete_lands_while_a_refused_principal_waits(
    world: World, grants: Grants, principal_check: PrincipalCheck
) -> None:
    keep = world.create_role("team-keep")
    world.create_role("team-gone")
    world.create_repository("shared/base")
    keep_key, keep_spec = grants.add("keep", grant({"name": "team-keep"}, "shared/base"), namespace="team")
    gone_key, gone = grants.add("gone", grant({"name": "team-gone"}, "shared/base"), namespace="team")
    world.reconciler.apply(keep_key, keep_spec, None, grants)
    world.reconciler.apply(gone_key, gone, None, grants)
    grants.add("evil", grant({"arn": GHOST}, "shared/base"), namespace="evil")

    grants.remove(gone_key)
    released = world.reconciler.release(gone_key, gone, gone, grants)

    assert released.repositories[0].finding.ok, released
    assert principals(world, "shared/base") == {keep}


def test_a_held_back_principal_costs_no_write_in_steady_state(
    world: World, grants: Grants, principal_check: PrincipalCheck
) -> None:
    world.create_role("team-a")
    world.create_repository("shared/base")
    a_key, a = grants.add("a", grant({"name": "team-a"}, "shared/base"))
    bad_key, bad = grants.add("evil", grant({"arn": GHOST}, "shared/base"), namespace="evil")
    world.reconciler.apply(a_key, a, None, grants)
    world.reconciler.apply(bad_key, bad, None, grants)
    world.calls.clear()

    world.reconciler.apply(a_key, a, None, grants)
    world.reconciler.apply(bad_key, bad, None, grants)

    assert world.calls.writes() == [], "the refused principal is held back until its retry time"
