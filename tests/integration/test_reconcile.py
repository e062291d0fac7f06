"""The reference procedure and its undoing, against moto in-process through the real AWS adapter."""

from __future__ import annotations

import json

import pytest

from ecr_access import policy
from ecr_access.conditions import Severity
from ecr_access.model import REFERENCE_ACTIONS
from ecr_access.status import build_status
from tests.integration.conftest import (
    ACCOUNT,
    CLOUD_ID,
    CLUSTER_ID,
    FOREIGN,
    NODE_ROLE,
    READ_ONLY,
    REGION,
    Grants,
    World,
    ledger,
)

TWO_REPOS = [{"name": "ml/trainer"}, {"arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/serving"}]


def cloud_grant(repos: list[dict[str, str]] | None = None, **extra: object) -> dict[str, object]:
    return {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": repos or TWO_REPOS, **extra}


def test_reference_procedure_end_to_end(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/trainer")
    world.create_repository("ml/serving", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("ml-images", cloud_grant())

    outcome = world.apply(key, spec, None, grants)

    assert not outcome.transient and not outcome.terminal, outcome
    assert READ_ONLY in world.attached()
    for repo in ("ml/trainer", "ml/serving"):
        [ours] = world.ours(repo)
        assert ours["Effect"] == "Allow"
        assert ours["Principal"] == {"AWS": [role_arn]}
        assert ours["Action"] == list(REFERENCE_ACTIONS)
        assert ours["Sid"] == policy.statement_sid(CLUSTER_ID, REFERENCE_ACTIONS)
    assert FOREIGN in world.statements("ml/serving"), "the foreign statement must survive"
    status = build_status(outcome, 1, None, "2026-01-01T00:00:00Z")
    assert status["conditions"][0] == {
        "type": "Ready", "status": "True", "reason": "Reconciled", "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "message": f"Role {role_arn} may pull from 2 repositories and has AmazonEC2ContainerRegistryReadOnly attached.",
    }
    assert status["managedPolicyOwned"] is True
    assert [entry["arn"] for entry in status["repositories"]] == [
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/trainer",
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/serving",
    ]


def test_second_apply_makes_zero_write_calls(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    world.create_repository("ml/serving", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("ml-images", cloud_grant())
    first = world.apply(key, spec, None, grants)
    assert sorted(world.calls.writes()) == ["AttachRolePolicy", "SetRepositoryPolicy", "SetRepositoryPolicy",
                                            "TagRole"]

    world.calls.clear()
    second = world.apply(key, spec, spec, grants)

    assert world.calls.writes() == []
    assert world.calls.count("GetRepositoryPolicy") == 2
    assert second == first


def test_policy_reformatted_by_someone_else_is_not_rewritten(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", cloud_grant([{"name": "ml/trainer"}]))
    world.apply(key, spec, None, grants)
    doc = world.policy("ml/trainer")
    assert doc is not None
    statement = doc["Statement"][0]
    statement["Action"] = list(reversed(statement["Action"]))  # same meaning, other order and layout
    world.ecr().set_repository_policy(repositoryName="ml/trainer", policyText=json.dumps(doc, indent=4))

    world.calls.clear()
    world.apply(key, spec, None, grants)

    assert world.calls.writes() == []


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: s.update(Principal={"AWS": [f"arn:aws:iam::{ACCOUNT}:role/intruder"]}), id="principal"),
        pytest.param(lambda s: s.update(Action=["ecr:*"]), id="actions"),
        pytest.param(lambda s: s.update(Effect="Deny"), id="effect"),
        pytest.param(lambda s: s.update(Principal={"AWS": ["AROAEXAMPLEUNIQUEID1"]}), id="deleted-role-unique-id"),
    ],
)
def test_tampered_statement_is_repaired(world: World, grants: Grants, tamper: object) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/trainer", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("g", cloud_grant([{"name": "ml/trainer"}]))
    world.apply(key, spec, None, grants)
    doc = world.policy("ml/trainer")
    assert doc is not None
    ours = next(item for item in doc["Statement"] if item["Sid"].startswith(world.reconciler.prefix))
    tamper(ours)  # type: ignore[operator]
    world.ecr().set_repository_policy(repositoryName="ml/trainer", policyText=json.dumps(doc))

    world.calls.clear()
    world.apply(key, spec, None, grants)

    assert world.calls.writes() == ["SetRepositoryPolicy"]
    [repaired] = world.ours("ml/trainer")
    assert repaired["Principal"] == {"AWS": [role_arn]}
    assert repaired["Effect"] == "Allow"
    assert repaired["Action"] == list(REFERENCE_ACTIONS)
    assert FOREIGN in world.statements("ml/trainer")


def test_repository_dropped_from_spec_loses_its_statement(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    world.create_repository("ml/serving", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("g", cloud_grant())
    world.apply(key, spec, None, grants)

    key, narrower = grants.add("g", cloud_grant([{"name": "ml/trainer"}]))
    world.apply(key, narrower, spec, grants)

    assert len(world.ours("ml/trainer")) == 1
    assert world.statements("ml/serving") == [FOREIGN]


def test_two_grants_on_one_role_share_one_principal(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/trainer")
    a_key, a_spec = grants.add("a", cloud_grant([{"name": "ml/trainer"}]))
    b_key, b_spec = grants.add("b", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/trainer"}]},
                               namespace="other")
    world.apply(a_key, a_spec, None, grants)
    world.apply(b_key, b_spec, None, grants)

    [ours] = world.ours("ml/trainer")
    assert ours["Principal"] == {"AWS": [role_arn]}


def test_grants_with_other_actions_get_their_own_statement(world: World, grants: Grants) -> None:
    reader = world.create_role()
    puller = world.create_role("puller")
    world.create_repository("ml/trainer")
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    a_key, a_spec = grants.add("a", cloud_grant([{"name": "ml/trainer"}]))
    b_key, b_spec = grants.add("b", {"role": {"name": "puller"}, "repositories": [{"name": "ml/trainer"}],
                                     "actions": actions, "managedPolicy": "None"})
    world.apply(a_key, a_spec, None, grants)
    world.apply(b_key, b_spec, None, grants)

    by_sid = {item["Sid"]: item for item in world.ours("ml/trainer")}
    assert by_sid[policy.statement_sid(CLUSTER_ID, REFERENCE_ACTIONS)]["Principal"] == {"AWS": [reader]}
    assert by_sid[policy.statement_sid(CLUSTER_ID, actions)]["Principal"] == {"AWS": [puller]}
    assert by_sid[policy.statement_sid(CLUSTER_ID, actions)]["Action"] == actions
    assert world.attached("puller") == set()


# -- delete -----------------------------------------------------------------------------------------


def test_delete_keeps_a_principal_another_grant_still_wants(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/trainer")
    a_key, a_spec = grants.add("a", cloud_grant([{"name": "ml/trainer"}]))
    b_key, b_spec = grants.add("b", cloud_grant([{"name": "ml/trainer"}]))
    world.apply(a_key, a_spec, None, grants)
    world.apply(b_key, b_spec, None, grants)

    grants.remove(a_key)
    world.calls.clear()
    released = world.release(a_key, a_spec, a_spec, grants)

    assert not released.transient and not released.terminal
    assert world.ours("ml/trainer")[0]["Principal"] == {"AWS": [role_arn]}
    assert world.calls.writes() == [], "nothing changes: b still wants the same role and policy"
    assert READ_ONLY in world.attached()


def test_delete_removes_empty_statement_and_policy_and_detaches_what_it_attached(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    world.create_repository("ml/serving", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("g", cloud_grant())
    world.apply(key, spec, None, grants)

    grants.remove(key)
    released = world.release(key, spec, spec, grants, uid="uid-1")

    assert not released.transient and not released.terminal
    assert world.policy("ml/trainer") is None, "a policy left with no statements is deleted"
    assert world.statements("ml/serving") == [FOREIGN], "a policy with foreign statements is kept"
    assert READ_ONLY not in world.attached(), "the operator attached it, so it detaches it"


def test_delete_never_detaches_a_policy_it_did_not_attach(world: World, grants: Grants) -> None:
    world.create_role()
    world.iam.attach_role_policy(RoleName=NODE_ROLE, PolicyArn=READ_ONLY)  # a person did step 1 by hand
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", cloud_grant([{"name": "ml/trainer"}]))
    applied = world.apply(key, spec, None, grants)
    assert applied.managed_policy_owned is False

    grants.remove(key)
    world.release(key, spec, spec, grants, uid="uid-1")

    assert READ_ONLY in world.attached()
    assert world.policy("ml/trainer") is None


def test_delete_keeps_managed_policy_while_another_grant_on_the_role_wants_it(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    world.create_repository("ml/serving")
    a_key, a_spec = grants.add("a", cloud_grant([{"name": "ml/trainer"}]))
    b_key, b_spec = grants.add("b", cloud_grant([{"name": "ml/serving"}]))
    a_out = world.apply(a_key, a_spec, None, grants)
    b_out = world.apply(b_key, b_spec, None, grants)
    assert a_out.managed_policy_owned and b_out.managed_policy_owned, "the role's ledger says the operator did"

    grants.remove(a_key)
    world.release(a_key, a_spec, a_spec, grants)
    assert READ_ONLY in world.attached(), "b still wants it"

    grants.remove(b_key)
    world.release(b_key, b_spec, b_spec, grants)
    assert READ_ONLY not in world.attached(), "the last grant that wanted it detaches what the operator attached"


def test_a_restarted_operator_does_not_claim_a_policy_someone_else_attached(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    world.iam.attach_role_policy(RoleName=NODE_ROLE, PolicyArn=READ_ONLY)
    key, spec = grants.add("g", cloud_grant([{"name": "ml/trainer"}]))
    fresh = world.reconciler_with(cache_ttl=0.0)

    outcome = world.apply(key, spec, None, grants, reconciler=fresh)

    assert outcome.managed_policy_owned is False


def test_a_grant_added_later_finds_the_record_on_the_role(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    a_key, a_spec = grants.add("a", cloud_grant([{"name": "ml/trainer"}]))
    world.apply(a_key, a_spec, None, grants)
    b_key, b_spec = grants.add("b", cloud_grant([{"name": "ml/trainer"}]))
    b_out = world.apply(b_key, b_spec, None, grants)
    assert b_out.managed_policy_owned is True

    grants.remove(a_key)
    world.release(a_key, a_spec, a_spec, grants)
    grants.remove(b_key)
    world.release(b_key, b_spec, b_spec, grants)

    assert READ_ONLY not in world.attached(), "the last grant detaches what the operator attached"


def test_retain_hands_access_over(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("keep", cloud_grant([{"name": "ml/trainer"}], deletionPolicy="Retain"))
    world.apply(key, spec, None, grants)

    grants.remove(key)
    released = world.release(key, spec, spec, grants, uid="uid-1")

    assert not released.terminal and not released.transient
    assert world.ours("ml/trainer") == []
    [handed] = world.statements("ml/trainer")
    assert handed == {
        "Sid": policy.retained_sid(CLUSTER_ID, "default", "keep", "uid-1"),
        "Effect": "Allow",
        "Principal": {"AWS": [role_arn]},
        "Action": list(REFERENCE_ACTIONS),
    }
    assert READ_ONLY in world.attached()


def test_retained_statement_is_foreign_afterwards(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("keep", cloud_grant([{"name": "ml/trainer"}], deletionPolicy="Retain"))
    world.apply(key, spec, None, grants)
    grants.remove(key)
    world.release(key, spec, spec, grants, uid="uid-1")
    handed_over = world.statements("ml/trainer")

    other_key, other_spec = grants.add("other", cloud_grant([{"name": "ml/trainer"}]))
    world.apply(other_key, other_spec, None, grants)
    grants.remove(other_key)
    world.release(other_key, other_spec, None, grants)

    assert world.statements("ml/trainer") == handed_over


def test_role_path_in_arn_is_used_as_principal(world: World, grants: Grants) -> None:
    role_arn = world.create_role("pathed", path="/anyscale/nodes/")
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", {"role": {"arn": role_arn}, "repositories": [{"name": "ml/trainer"}]})
    outcome = world.apply(key, spec, None, grants)
    assert outcome.role.severity is Severity.OK
    assert world.ours("ml/trainer")[0]["Principal"] == {"AWS": [role_arn]}


def test_an_attachment_is_recorded_on_the_role_before_it_is_made(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    key, spec = grants.add("g", cloud_grant([{"name": "ml/trainer"}]))

    world.apply(key, spec, None, grants)

    assert world.calls.made.index("TagRole") < world.calls.made.index("AttachRolePolicy")
    assert ledger(world) == {"ecraccess.io/attached": "ReadOnly", world.reconciler.cluster_tag: "ReadOnly"}
