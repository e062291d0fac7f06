"""Bad input and AWS failures: a clear Stalled or Reconciling verdict, and no write calls."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from ecr_access import policy
from ecr_access.conditions import Severity
from ecr_access.status import build_status
from tests.integration.conftest import ACCOUNT, CLOUD_ID, FOREIGN, NODE_ROLE, READ_ONLY, REGION, Grants, World


def grant(*repos: str, **extra: object) -> dict[str, object]:
    return {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [{"name": name} for name in repos], **extra}


def conditions_of(outcome: object) -> dict[str, dict[str, object]]:
    status = build_status(outcome, 1, None, "2026-01-01T00:00:00Z")  # type: ignore[arg-type]
    return {item["type"]: item for item in status["conditions"]}


def test_missing_role_is_stalled_with_no_writes(world: World, grants: Grants) -> None:
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", grant("ml/trainer"))

    outcome = world.apply(key, spec, None, grants)

    found = conditions_of(outcome)
    assert found["Ready"]["status"] == "False"
    assert found["Stalled"]["reason"] == "RoleNotFound"
    assert NODE_ROLE in str(found["Stalled"]["message"])
    assert "Reconciling" not in found
    assert world.calls.writes() == []


def test_missing_repository_is_stalled_and_the_others_are_still_applied(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", grant("ml/missing", "ml/trainer"))

    outcome = world.apply(key, spec, None, grants)

    found = conditions_of(outcome)
    assert found["Stalled"]["reason"] == "RepositoryNotFound"
    assert "ml/missing" in str(found["Stalled"]["message"])
    assert [repo.finding.reason for repo in outcome.repositories] == ["RepositoryNotFound", "Applied"]
    assert len(world.ours("ml/trainer")) == 1


def test_policy_that_would_exceed_the_limit_is_stalled_with_no_writes(world: World, grants: Grants) -> None:
    world.create_role()
    bulky = {"Sid": "Bulky", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
             "Action": ["ecr:BatchGetImage"],
             "Condition": {"StringEquals": {"aws:PrincipalTag/team": ["x" * 9_900]}}}
    world.create_repository("ml/trainer", policy={"Version": "2012-10-17", "Statement": [bulky]})
    key, spec = grants.add("g", grant("ml/trainer"))
    world.calls.clear()

    outcome = world.apply(key, spec, None, grants)

    found = conditions_of(outcome)
    assert found["Stalled"]["reason"] == "PolicyTooLarge"
    assert "10240" in str(found["Stalled"]["message"])
    assert [name for name in world.calls.writes() if name == "SetRepositoryPolicy"] == []
    assert world.statements("ml/trainer") == [bulky]


def test_grants_already_in_a_full_policy_stay_applied(world: World, grants: Grants) -> None:
    arns = [world.create_role(f"cld_{i:024d}-cluster_node_role") for i in range(40)]
    world.create_repository("ml/trainer")
    filler = {"Sid": "Filler", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
              "Action": ["ecr:BatchGetImage"], "Condition": {"StringEquals": {"aws:PrincipalTag/t": ["y" * 8_000]}}}
    world.ecr().set_repository_policy(repositoryName="ml/trainer",
                                      policyText=json.dumps({"Version": "2012-10-17", "Statement": [filler]}))
    keys = [grants.add(f"g{i}", {"role": {"arn": arn}, "repositories": [{"name": "ml/trainer"}],
                                 "managedPolicy": "None"}) for i, arn in enumerate(arns)]

    outcomes = [world.apply(key, spec, None, grants) for key, spec in keys]

    doc = world.policy("ml/trainer")
    assert policy.size(doc) <= policy.MAX_POLICY_CHARS
    applied = [o for o in outcomes if o.repositories[0].finding.ok]
    too_large = [o for o in outcomes if o.repositories[0].finding.reason == "PolicyTooLarge"]
    assert applied and too_large and len(applied) + len(too_large) == 40
    [ours] = world.ours("ml/trainer")
    assert set(ours["Principal"]["AWS"]) == {o.role_arn for o in applied}
    # Re-applying everything again changes nothing: the admitted grants keep their place.
    world.calls.clear()
    again = [world.apply(key, spec, None, grants) for key, spec in keys]
    assert world.calls.writes() == []
    assert [o.repositories[0].finding.reason for o in again] == [o.repositories[0].finding.reason for o in outcomes]


def test_access_denied_is_stalled_with_no_writes(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", grant("ml/trainer"))
    # Every call is refused, as a missing permission is: the role's listing is read alongside
    # GetRole and again by the ledger, and neither may get through.
    world.calls.inject("ListAttachedRolePolicies", "AccessDenied",
                       "User: arn:aws:sts::123456789012:assumed-role/op is not authorized", status=403, times=10)

    outcome = world.apply(key, spec, None, grants)

    found = conditions_of(outcome)
    assert found["Stalled"]["reason"] == "AccessDenied"
    assert "ListAttachedRolePolicies" in str(found["Stalled"]["message"])
    assert world.calls.writes() == []
    assert world.policy("ml/trainer") is None


def test_access_denied_on_a_repository_is_stalled(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", grant("ml/trainer"))
    world.calls.inject("GetRepositoryPolicy", "AccessDeniedException", "not authorized", status=400)

    outcome = world.apply(key, spec, None, grants)

    assert conditions_of(outcome)["Stalled"]["reason"] == "AccessDenied"
    assert "SetRepositoryPolicy" not in world.calls.made


def test_managed_policy_quota_is_stalled_with_no_writes(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", grant("ml/trainer"))
    world.calls.inject("AttachRolePolicy", "LimitExceeded", "Cannot exceed quota for PoliciesPerRole: 10", status=409)

    outcome = world.apply(key, spec, None, grants)

    found = conditions_of(outcome)
    assert found["Stalled"]["reason"] == "ManagedPolicyQuotaExceeded"
    assert NODE_ROLE in str(found["Stalled"]["message"])
    assert world.attached() == set()
    assert world.policy("ml/trainer") is None
    assert "SetRepositoryPolicy" not in world.calls.made


def test_throttling_is_reconciling_and_a_retry_converges(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", grant("ml/trainer"))
    world.calls.inject("GetRepositoryPolicy", "ThrottlingException", "Rate exceeded", status=400)

    first = world.apply(key, spec, None, grants)

    found = conditions_of(first)
    assert found["Reconciling"]["status"] == "True"
    assert found["Reconciling"]["reason"] == "Throttled"
    assert "Stalled" not in found
    assert first.transient

    second = world.apply(key, spec, None, grants)
    assert conditions_of(second)["Ready"]["status"] == "True"
    assert len(world.ours("ml/trainer")) == 1


def test_new_role_not_yet_visible_to_ecr_is_retried_not_stalled(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", grant("ml/trainer"))
    world.calls.inject("SetRepositoryPolicy", "InvalidParameterException",
                       "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy "
                       "provided'")

    outcome = world.apply(key, spec, None, grants)

    assert conditions_of(outcome)["Reconciling"]["reason"] == "RolePropagating"
    assert outcome.repositories[0].finding.severity is Severity.TRANSIENT


def test_a_deleted_role_is_dropped_without_blocking_other_grants(world: World, grants: Grants) -> None:
    keeper = world.create_role("keeper")
    world.create_role()
    world.create_repository("ml/trainer", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    a_key, a_spec = grants.add("a", grant("ml/trainer"))
    b_key, b_spec = grants.add("b", {"role": {"name": "keeper"}, "repositories": [{"name": "ml/trainer"}]})
    world.apply(a_key, a_spec, None, grants)
    world.apply(b_key, b_spec, None, grants)
    world.iam.detach_role_policy(RoleName=NODE_ROLE, PolicyArn=READ_ONLY)
    world.iam.delete_role(RoleName=NODE_ROLE)

    a_out = world.apply(a_key, a_spec, None, grants)

    assert conditions_of(a_out)["Stalled"]["reason"] == "RoleNotFound"
    [ours] = world.ours("ml/trainer")
    assert ours["Principal"] == {"AWS": [keeper]}, "the missing role is left out, the other grant stays"
    assert FOREIGN in world.statements("ml/trainer")
    b_out = world.apply(b_key, b_spec, None, grants)
    assert conditions_of(b_out)["Ready"]["status"] == "True"


def test_repository_in_another_region_and_registry(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/east", region="us-east-1")
    key, spec = grants.add("g", {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [
        {"arn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/ml/east"}]})

    outcome = world.apply(key, spec, None, grants)

    assert conditions_of(outcome)["Ready"]["status"] == "True"
    doc = world.policy("ml/east", region="us-east-1")
    assert doc is not None and doc["Statement"][0]["Principal"] == {"AWS": [role_arn]}
    assert REGION != "us-east-1"


def test_role_propagation_is_retried_for_a_bounded_window_then_stalls(world: World, grants: Grants) -> None:
    now = [1000.0]
    reconciler = world.reconciler_with(cluster_id="c", cache_ttl=0.0, propagation_window=120.0, clock=lambda: now[0])
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", grant("ml/trainer"))
    refusal = "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'"
    world.calls.inject("SetRepositoryPolicy", "InvalidParameterException", refusal, times=3)

    first = world.apply(key, spec, None, grants, reconciler=reconciler)
    now[0] += 60
    second = world.apply(key, spec, None, grants, reconciler=reconciler)
    now[0] += 61
    third = world.apply(key, spec, None, grants, reconciler=reconciler)

    assert conditions_of(first)["Reconciling"]["reason"] == "RolePropagating"
    assert conditions_of(second)["Reconciling"]["reason"] == "RolePropagating"
    stalled = conditions_of(third)["Stalled"]
    assert stalled["reason"] == "PrincipalRejected"
    assert third.role_arn is not None
    assert third.role_arn in str(stalled["message"]) and "ml/trainer" in str(stalled["message"])
    now[0] += 61  # the refused principal is held back this long (Config.refused_retry), then offered again
    fourth = world.apply(key, spec, None, grants, reconciler=reconciler)  # ECR accepts it now
    assert conditions_of(fourth)["Ready"]["status"] == "True"
    assert world.calls.count("SetRepositoryPolicy") == 4, "one refused write per offer, no more"


def race_after_our_first_write(world: World, repository: str, statements: list[Any]) -> dict[str, Any]:
    """Someone else rewrites the policy, from what they read before our write, right after our first
    SetRepositoryPolicy (before its verifying re-read). Returns the state: "raced" once it did."""
    state: dict[str, Any] = {"set": 0, "raced": False}

    def race(model: object, **_: object) -> None:
        name = model.name  # type: ignore[attr-defined]
        if name == "SetRepositoryPolicy":
            state["set"] += 1
        elif name == "GetRepositoryPolicy" and state["set"] == 1 and not state["raced"]:
            state["raced"] = True
            world.ecr().set_repository_policy(repositoryName=repository, policyText=json.dumps(
                {"Version": "2012-10-17", "Statement": statements}))

    world.session.session.events.register("before-call.ecr.GetRepositoryPolicy", race)
    world.session.session.events.register("before-call.ecr.SetRepositoryPolicy", race)
    return state


def test_a_foreign_write_between_our_write_and_its_verification_is_merged_not_lost(
    world: World, grants: Grants
) -> None:
    world.create_role()
    world.create_repository("ml/trainer", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("g", grant("ml/trainer"))
    late = {"Sid": "LateWriter", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "ecr:ListImages"}
    state = race_after_our_first_write(world, "ml/trainer", [FOREIGN, late])

    outcome = world.apply(key, spec, None, grants)

    assert state["raced"]
    assert conditions_of(outcome)["Ready"]["status"] == "True"
    statements = world.statements("ml/trainer")
    assert FOREIGN in statements and late in statements, "the concurrent writer's statement is kept"
    assert len(world.ours("ml/trainer")) == 1, "and ours was written again on top of it"
    assert world.calls.count("SetRepositoryPolicy") == 2
    assert len(outcome.notes) == 1 and "someone else changed the policy" in outcome.notes[0]


def test_a_concurrent_writer_is_one_warning_event_on_the_grant_and_is_counted(
    world: World, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race as above, through the create handler: the grant gets one ConcurrentPolicyEdit
    Warning (not Error, and not again on a pass with no race), and the metric counts the edit."""
    from ecr_access import handlers  # noqa: PLC0415 - only the handler tests need kopf

    world.create_role()
    world.create_repository("ml/trainer", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    cluster.put("g", grant("ml/trainer"))
    state = race_after_our_first_write(world, "ml/trainer", [FOREIGN, {**FOREIGN, "Sid": "LateWriter"}])
    posted: list[tuple[str, str, str, str]] = []
    monkeypatch.setattr("kopf.event", lambda body, *, type, reason, message: posted.append(
        (body["metadata"]["name"], type, reason, message)))

    cluster.call(handlers.on_grant_create, "g")
    cluster.call(handlers.on_grant_resume, "g")  # a pass with no race: no second Event

    assert state["raced"] and cluster.conditions("g")["Ready"]["status"] == "True"
    [edit] = [item for item in posted if item[2] == "ConcurrentPolicyEdit"]
    assert edit[:2] == ("g", "Warning") and "someone else changed the policy" in edit[3]
    assert all(kind in ("Normal", "Warning") for _, kind, _, _ in posted)
    writes = {result: world.reconciler.metrics.registry.get_sample_value(
        "ecr_access_policy_writes_total", {"result": result}) for result in ("written", "verified", "concurrent_edit")}
    assert writes == {"written": 2, "verified": 1, "concurrent_edit": 1}


def test_a_role_in_an_unconfigured_account_cannot_get_a_managed_policy(world: World, grants: Grants) -> None:
    world.create_repository("ml/trainer")
    other = "arn:aws:iam::210987654321:role/cld_other-cluster_node_role"
    key, spec = grants.add("g", {"role": {"arn": other}, "repositories": [{"name": "ml/trainer"}]})

    outcome = world.apply(key, spec, None, grants)

    stalled = conditions_of(outcome)["Stalled"]
    assert stalled["reason"] == "AccountNotConfigured"
    assert "managedPolicy" in str(stalled["message"]) and "EcrAccessAccount" in str(stalled["message"])
    assert world.calls.writes() == []
    key, spec = grants.add("g", {"role": {"arn": other}, "repositories": [{"name": "ml/trainer"}],
                                 "managedPolicy": "None"})
    applied = world.apply(key, spec, None, grants)
    assert conditions_of(applied)["Ready"]["status"] == "True"
    assert world.ours("ml/trainer")[0]["Principal"] == {"AWS": [other]}
    assert "GetRole" not in world.calls.made, "a role in another account cannot be looked up from here"


def test_a_malformed_statement_of_ours_is_reported_and_blocks_nothing_else(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    world.create_repository("ml/serving")
    key, spec = grants.add("g", {"role": {"anyscaleCloudId": CLOUD_ID},
                                 "repositories": [{"name": "ml/trainer"}, {"name": "ml/serving"}]})
    world.apply(key, spec, None, grants)
    [ours] = world.ours("ml/trainer")
    ours["Principal"] = {"AWS": 5}  # hand-edited
    world.ecr().set_repository_policy(repositoryName="ml/trainer",
                                      policyText=json.dumps({"Version": "2012-10-17", "Statement": [ours]}))

    outcome = world.apply(key, spec, spec, grants)

    trainer, serving = outcome.repositories
    assert (trainer.finding.reason, trainer.finding.severity) == ("PolicyUnreadable", Severity.TERMINAL)
    assert "Principal" in trainer.finding.message and "ml/trainer" in trainer.finding.message
    assert serving.finding.ok

    grants.remove(key)
    released = world.release(key, spec, spec, grants)  # must report, not crash or hang

    assert [item.finding.reason for item in released.repositories] == ["PolicyUnreadable", "Applied"]
    assert world.policy("ml/serving") is None


def test_a_repository_that_never_answers_is_stalled_after_a_bound_and_blocks_no_other(
    world: World, grants: Grants
) -> None:
    now = [1000.0]
    reconciler = world.reconciler_with(cluster_id="c", cache_ttl=0.0, unreachable_after=300.0, clock=lambda: now[0])
    world.create_role()
    world.create_repository("ml/trainer")
    world.create_repository("ml/far", region="eu-west-1")
    key, spec = grants.add("g", {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [
        {"name": "ml/trainer"}, {"name": "ml/far", "region": "eu-west-1"}]})
    away = world.session.ecr("eu-west-1")

    def unreachable(**_: object) -> None:
        raise EndpointConnectionError(endpoint_url="https://api.ecr.eu-west-1.amazonaws.com/")

    away.meta.events.register("before-send", unreachable)

    first = world.apply(key, spec, None, grants, reconciler=reconciler)
    now[0] += 301
    later = world.apply(key, spec, None, grants, reconciler=reconciler)

    assert first.repositories[1].finding.reason == "AwsUnavailable", "transient at first"
    trainer, far = later.repositories
    assert trainer.finding.ok
    assert (far.finding.reason, far.finding.severity) == ("RepositoryUnreachable", Severity.TERMINAL)
    assert "eu-west-1" in far.finding.message
    away.meta.events.unregister("before-send", unreachable)
    back = world.apply(key, spec, None, grants, reconciler=reconciler)
    assert back.repositories[1].finding.ok, "it comes back by itself"
