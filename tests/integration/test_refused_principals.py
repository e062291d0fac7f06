"""One principal ECR refuses never blocks a repository (issue 11): the others are applied, removals
land, and only the refused grant is told, by name. moto does not check principals; the
`principal_check` fixture refuses them the way ECR does."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest

from ecr_access.conditions import Severity
from ecr_access.grants import LiveGrant
from ecr_access.reconcile import ApplyMode, Reconciler
from tests.integration.conftest import ACCOUNT, REGION, Grants, PrincipalCheck, World

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

    outcomes = [world.apply(key, spec, None, grants) for key, spec in [*keys, (bad_key, bad)]]

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
    reconciler = world.reconciler_with(propagation_window=120.0, refused_retry=0.0, clock=lambda: next(clock))
    world.create_role("team-a")
    world.create_repository("shared/base")
    a_key, a = grants.add("a", grant({"name": "team-a"}, "shared/base"), namespace="team")
    bad_key, bad = grants.add("evil", grant({"arn": ELSEWHERE}, "shared/base"), namespace="evil")
    world.apply(bad_key, bad, None, grants, reconciler=reconciler)

    later = world.apply(bad_key, bad, None, grants, reconciler=reconciler)

    finding = later.repositories[0].finding
    assert (finding.reason, finding.severity) == ("PrincipalRejected", Severity.TERMINAL)
    assert ELSEWHERE in finding.message
    assert world.apply(a_key, a, None, grants, reconciler=reconciler).repositories[0].finding.ok


def test_a_delete_lands_while_a_refused_principal_waits(
    world: World, grants: Grants, principal_check: PrincipalCheck
) -> None:
    keep = world.create_role("team-keep")
    world.create_role("team-gone")
    world.create_repository("shared/base")
    keep_key, keep_spec = grants.add("keep", grant({"name": "team-keep"}, "shared/base"), namespace="team")
    gone_key, gone = grants.add("gone", grant({"name": "team-gone"}, "shared/base"), namespace="team")
    world.apply(keep_key, keep_spec, None, grants)
    world.apply(gone_key, gone, None, grants)
    evil_key, evil = grants.add("evil", grant({"arn": ELSEWHERE}, "shared/base"), namespace="evil")
    world.apply(evil_key, evil, None, grants)

    grants.remove(gone_key)
    released = world.release(gone_key, gone, gone, grants)

    assert released.repositories[0].finding.ok, released
    assert principals(world, "shared/base") == {keep}


def drift(world: World, reconciler: Reconciler, key: Any, spec: Any, grants: Grants) -> Any:
    """A drift pass's check of one grant: the index's own entry, answers read since it began (now)."""
    return world.apply(key, spec, None, grants, ApplyMode.drift(since=reconciler.clock()), reconciler=reconciler)


def test_a_held_back_principal_is_retried_with_a_back_off_not_every_pass(
    world: World, grants: Grants, principal_check: PrincipalCheck
) -> None:
    now = [1000.0]
    reconciler = world.reconciler_with(refused_retry=60.0, refused_retry_max=3600.0, clock=lambda: now[0])
    world.create_role("team-a")
    world.create_repository("shared/base")
    a_key, a = grants.add("a", grant({"name": "team-a"}, "shared/base"))
    bad_key, bad = grants.add("evil", grant({"arn": ELSEWHERE}, "shared/base"), namespace="evil")
    # The first apply syncs both grants' principals: the attacker is refused; its own apply refuses
    # it again, and it is held back 120 s.
    world.apply(a_key, a, None, grants, reconciler=reconciler)
    world.apply(bad_key, bad, None, grants, reconciler=reconciler)
    refused_writes = []
    for step in (30, 31, 60, 60, 60, 60):  # drift passes at +30, +61, +121, +181, +241, +301
        now[0] += step
        before = principal_check.refused
        drift(world, reconciler, bad_key, bad, grants)
        drift(world, reconciler, a_key, a, grants)
        refused_writes.append(principal_check.refused - before)

    # Held to +120, offered by the pass at +121 and refused a third time, then held 240 s (to +361).
    assert refused_writes == [0, 0, 1, 0, 0, 0]
    assert world.calls.writes().count("SetRepositoryPolicy") == principal_check.refused + 1, "no other write"
    principal_check.accepted.add(ELSEWHERE)  # the role is created in that account
    before = principal_check.refused
    assert world.apply(bad_key, bad, None, grants, reconciler=reconciler).repositories[0].finding.ok, (
        "the grant's own apply (a retry, an edit, reconcile-now) offers its role at once")
    assert principal_check.refused == before


def test_a_retain_grant_whose_role_ecr_refuses_blocks_nothing_and_deletes(
    world: World, grants: Grants, principal_check: PrincipalCheck
) -> None:
    """Its role never had access here, so there is nothing to hand over; the repository stays writable."""
    good = world.create_role("team-a")
    world.create_repository("shared/base")
    bad_key, bad = grants.add("evil", {**grant({"arn": ELSEWHERE}, "shared/base"), "deletionPolicy": "Retain"},
                              namespace="evil")
    world.apply(bad_key, bad, None, grants)
    grants.live[bad_key] = LiveGrant(bad_key, bad, active=False, handing_over=True, uid="uid-evil")  # deleting

    released = world.release(bad_key, bad, bad, grants, uid="uid-evil")
    a_key, a = grants.add("a", grant({"name": "team-a"}, "shared/base"), namespace="team")
    applied = world.apply(a_key, a, None, grants)

    assert released.repositories[0].finding.ok, released
    assert applied.repositories[0].finding.ok, applied
    assert principals(world, "shared/base") == {good}
    assert not any(item["Sid"].startswith("EcrAccessRetained") for item in world.statements("shared/base"))


def test_the_writes_that_isolate_a_refused_principal_are_audited_and_counted(
    world: World, grants: Grants, principal_check: PrincipalCheck, caplog: pytest.LogCaptureFixture
) -> None:
    """Every write ECR accepts while the refused principal is isolated changes who has access: it
    has its AUDIT line and is counted, as any other write. The refused writes changed nothing."""
    reconciler = world.reconciler_with(refused_retry=0.0)  # the attacker is offered at every sync
    a_arn = world.create_role("team-a")
    world.create_repository("shared/base")
    a_key, a = grants.add("a", grant({"name": "team-a"}, "shared/base"), namespace="team")
    grants.add("evil", grant({"arn": ELSEWHERE}, "shared/base"), namespace="evil")
    caplog.set_level(logging.INFO, logger="ecr_access")

    world.apply(a_key, a, None, grants, reconciler=reconciler)  # refused with the attacker: team-a lands alone
    assert principals(world, "shared/base") == {a_arn}
    grants.remove(a_key)
    world.release(a_key, a, a, grants, reconciler=reconciler)  # refused again: the removal lands alone
    assert world.policy("shared/base") is None

    repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/shared/base"
    audit = [record.getMessage() for record in caplog.records if record.getMessage().startswith("AUDIT")]
    assert audit == [
        f"AUDIT SetRepositoryPolicy {repo}: principals added ['{a_arn}'], removed none; for grants ['team/a'];"
        " requested by ['team/a']",
        f"AUDIT DeleteRepositoryPolicy {repo}: principals added none, removed ['{a_arn}']; for grants none;"
        " requested by ['team/a']",
    ]
    assert principal_check.refused >= 2
    written = reconciler.metrics.registry.get_sample_value("ecr_access_policy_writes_total", {"result": "written"})
    assert written == 2, "the accepted writes, not the refused ones"
