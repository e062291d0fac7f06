"""The access check against moto (issue 16): a foreign Deny beside the operator's statement is
reported, the statement is still written, and the verdict follows the Deny, with no extra call."""

from __future__ import annotations

import json
from typing import Any

from ecr_access import status
from ecr_access.status import build_status
from tests.integration.conftest import FOREIGN, NODE_ROLE, Grants, World

DENY_ALL = {"Sid": "DenyEveryone", "Effect": "Deny", "Principal": "*", "Action": "ecr:*"}
DENY_OUTSIDE_VPC = {"Sid": "OnlyFromVpc", "Effect": "Deny", "Principal": "*", "Action": "ecr:BatchGetImage",
                    "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-0123"}}}


def policy_with(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_an_unconditional_deny_stalls_the_grant_but_its_statement_is_written(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a", policy=policy_with(DENY_ALL, FOREIGN))
    world.create_repository("ml/b")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}, {"name": "ml/b"}]})

    outcome = world.apply(key, spec, None, grants)

    [ours] = world.ours("ml/a")
    assert ours["Principal"] == {"AWS": [role_arn]}, "the verdict reports; it does not hold back the write"
    assert DENY_ALL in world.statements("ml/a") and FOREIGN in world.statements("ml/a")
    report = build_status(outcome, 1, None, "T")
    ready, stalled = report["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "DeniedByPolicy")
    assert (stalled["type"], stalled["status"]) == ("Stalled", "True")
    assert "'DenyEveryone'" in ready["message"] and role_arn in ready["message"]
    assert [(repo["ready"], repo["reason"]) for repo in report["repositories"]] == [
        (False, "DeniedByPolicy"), (True, "Applied")]
    assert report["readyRepositories"] == "1/2"

    # The Deny goes: the next check reads the policy (as it always does) and the grant is Ready, with
    # no write.
    world.ecr().set_repository_policy(repositoryName="ml/a", policyText=json.dumps(policy_with(FOREIGN, ours)))
    world.calls.clear()
    again = world.apply(key, spec, spec, grants)
    assert world.calls.writes() == []
    assert build_status(again, 1, report, "T")["conditions"][0]["status"] == "True"


def test_a_conditional_deny_keeps_ready_with_a_note_and_one_warning(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/a", policy=policy_with(DENY_OUTSIDE_VPC))
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})

    outcome = world.apply(key, spec, None, grants)

    report = build_status(outcome, 1, None, "T")
    ready = report["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("True", "Reconciled")
    assert "may be denied" in ready["message"] and "'OnlyFromVpc'" in ready["message"]
    assert report["repositories"][0]["reason"] == "MayBeDenied" and report["repositories"][0]["ready"] is True
    events = status.transition_events(None, report, 1)
    assert [(kind, reason) for kind, reason, _ in events] == [("Normal", "Applied"), ("Warning", "MayBeDenied")]
    # The next pass finds the same: no Event again.
    again = build_status(world.apply(key, spec, spec, grants), 1, report, "T")
    assert again == report and status.transition_events(report, again, 1) == []


def test_a_deny_for_another_role_changes_nothing(world: World, grants: Grants) -> None:
    world.create_role()
    other = {"Sid": "NotYou", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::123456789012:role/other"},
             "Action": "ecr:*"}
    world.create_repository("ml/a", policy=policy_with(other))
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})

    report = build_status(world.apply(key, spec, None, grants), 1, None, "T")

    assert report["conditions"][0]["status"] == "True" and "denied" not in report["conditions"][0]["message"]


def test_managed_policy_none_says_the_role_needs_the_token_action(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}],
                                 "managedPolicy": "None"})

    report = build_status(world.apply(key, spec, None, grants), 1, None, "T")

    assert report["conditions"][0]["status"] == "True"
    assert "ecr:GetAuthorizationToken from an identity policy" in report["conditions"][0]["message"]
