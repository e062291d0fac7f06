"""Status: what `kubectl get/describe/wait`, Argo CD and Flux read about a grant.

kstatus rules: Ready always present; Reconciling only while a transient failure is retried; Stalled
only when a person must act. An unchanged world must produce an identical status, and so no write.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ecr_access import status as grant_status
from ecr_access import verdicts
from ecr_access.conditions import APPLIED, Finding, Outcome, RepositoryResult, Severity
from ecr_access.ports import AwsFault, FaultKind

ROLE_ARN = "arn:aws:iam::123456789012:role/cld_abc123-cluster_node_role"
POLICY_ARN = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
TRAINER = "arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer"
SERVING = "arn:aws:ecr:us-east-1:123456789012:repository/ml/serving"
SID = "EcrAccessGrant1a2b3c4d0123456789abcdef"
T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:05:00Z"
T2 = "2024-05-01T10:10:00Z"

NOT_FOUND = Finding("RepositoryNotFound", f"Repository {SERVING} was not found.", Severity.TERMINAL)
TOO_LARGE = Finding("PolicyTooLarge", f"{TRAINER}: the policy would exceed 10240 characters.", Severity.TERMINAL)
THROTTLED = Finding("Throttled", f"AWS throttled SetRepositoryPolicy on {SERVING}; retrying.", Severity.TRANSIENT)
ROLE_MISSING = Finding("RoleNotFound", f"{ROLE_ARN} was not found (GetRole).", Severity.TERMINAL)


def outcome(trainer: Finding = APPLIED, serving: Finding = APPLIED, role: Finding = APPLIED) -> Outcome:
    return Outcome(
        role_arn=ROLE_ARN,
        managed_policy_arn=POLICY_ARN,
        managed_policy_owned=True,
        role=role,
        repositories=(RepositoryResult(TRAINER, SID, trainer), RepositoryResult(SERVING, SID, serving)),
    )


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in status["conditions"]}


def test_all_ok_is_ready_with_nothing_else_to_report():
    status = grant_status.build_status(outcome(), generation=3, previous=None, now=T0)

    assert status["observedGeneration"] == 3
    assert status["roleArn"] == ROLE_ARN
    assert status["managedPolicyArn"] == POLICY_ARN
    assert status["managedPolicyOwned"] is True
    assert status["readyRepositories"] == "2/2"
    assert status["repositories"] == [
        {"arn": TRAINER, "sid": SID, "ready": True, "reason": "Applied", "message": ""},
        {"arn": SERVING, "sid": SID, "ready": True, "reason": "Applied", "message": ""},
    ]
    assert [item["type"] for item in status["conditions"]] == ["Ready"]
    ready = by_type(status)["Ready"]
    assert ready["status"] == "True"
    assert ready["reason"] == "Reconciled"
    assert ready["observedGeneration"] == 3
    assert ready["lastTransitionTime"] == T0
    assert ROLE_ARN in ready["message"] and "2 repositories" in ready["message"]
    assert "AmazonEC2ContainerRegistryReadOnly" in ready["message"]


@pytest.mark.parametrize(
    ("found", "reason", "condition", "absent"),
    [
        pytest.param(outcome(serving=NOT_FOUND), "RepositoryNotFound", "Stalled", "Reconciling", id="terminal"),
        pytest.param(outcome(trainer=TOO_LARGE), "PolicyTooLarge", "Stalled", "Reconciling", id="too-large"),
        pytest.param(outcome(role=ROLE_MISSING), "RoleNotFound", "Stalled", "Reconciling", id="role-missing"),
        pytest.param(outcome(serving=THROTTLED), "Throttled", "Reconciling", "Stalled", id="transient"),
        pytest.param(outcome(trainer=TOO_LARGE, serving=THROTTLED), "PolicyTooLarge", "Reconciling", "Stalled",
                     id="transient-and-terminal-retries-first"),
    ],
)
def test_a_problem_makes_ready_false_and_says_who_must_act(found, reason, condition, absent):
    status = grant_status.build_status(found, generation=4, previous=None, now=T0)

    kinds = by_type(status)
    assert set(kinds) == {"Ready", condition}
    assert absent not in kinds
    assert kinds["Ready"]["status"] == "False"
    assert kinds["Ready"]["reason"] == reason
    assert kinds[condition]["status"] == "True"
    problems = [item for item in found.findings if not item.ok]
    expected = next(item for item in problems if (item.severity is Severity.TRANSIENT) == (condition == "Reconciling"))
    assert kinds[condition]["reason"] == expected.reason
    assert kinds[condition]["message"] == expected.message
    assert all(item["observedGeneration"] == 4 for item in status["conditions"])
    assert status["observedGeneration"] == 4


def test_per_repository_entries_report_each_repository_in_spec_order():
    status = grant_status.build_status(outcome(serving=NOT_FOUND), generation=1, previous=None, now=T0)

    assert status["readyRepositories"] == "1/2"
    assert [(item["arn"], item["ready"], item["reason"]) for item in status["repositories"]] == [
        (TRAINER, True, "Applied"),
        (SERVING, False, "RepositoryNotFound"),
    ]
    assert status["repositories"][1]["message"] == NOT_FOUND.message
    assert by_type(status)["Ready"]["message"] == NOT_FOUND.message


def test_ready_message_counts_further_problems():
    status = grant_status.build_status(outcome(trainer=TOO_LARGE, serving=NOT_FOUND), 1, None, T0)

    message = by_type(status)["Ready"]["message"]
    assert message.startswith(TOO_LARGE.message)
    assert "1 more problem in status.repositories" in message


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        pytest.param(outcome(), outcome(), set(), id="ok-stays-ok"),
        pytest.param(outcome(serving=NOT_FOUND), outcome(serving=NOT_FOUND), set(), id="stalled-stays-stalled"),
        pytest.param(outcome(serving=NOT_FOUND), outcome(trainer=TOO_LARGE), set(),
                     id="other-reason-same-status"),
        pytest.param(outcome(), outcome(serving=NOT_FOUND), {"Ready", "Stalled"}, id="ok-to-stalled"),
        pytest.param(outcome(serving=NOT_FOUND), outcome(), {"Ready"}, id="stalled-to-ok"),
        pytest.param(outcome(serving=THROTTLED), outcome(serving=NOT_FOUND), {"Stalled"},
                     id="reconciling-to-stalled"),
    ],
)
def test_last_transition_time_moves_only_when_a_condition_flips(before, after, moved):
    first = grant_status.build_status(before, 1, None, T0)

    second = grant_status.build_status(after, 2, first, T1)

    times = {item["type"]: item["lastTransitionTime"] for item in second["conditions"]}
    assert {kind for kind, time in times.items() if time == T1} == moved
    assert all(time == T0 for kind, time in times.items() if kind not in moved)


def test_a_condition_that_goes_and_comes_back_gets_a_new_time():
    first = grant_status.build_status(outcome(serving=NOT_FOUND), 1, None, T0)
    healed = grant_status.build_status(outcome(), 1, first, T1)

    again = grant_status.build_status(outcome(serving=NOT_FOUND), 1, healed, T2)

    assert "Stalled" not in by_type(healed)
    assert by_type(again)["Stalled"]["lastTransitionTime"] == T2
    assert by_type(again)["Ready"]["lastTransitionTime"] == T2


@pytest.mark.parametrize(
    "found",
    [
        pytest.param(outcome(), id="ready"),
        pytest.param(outcome(serving=NOT_FOUND), id="stalled"),
        pytest.param(outcome(serving=THROTTLED), id="reconciling"),
    ],
)
def test_an_unchanged_world_gives_an_identical_status_and_no_write(found):
    first = grant_status.build_status(found, 5, None, T0)

    second = grant_status.build_status(found, 5, first, T1)

    assert second == first
    assert grant_status.status_patch(first, second) == {}


def test_status_patch_holds_only_what_changed():
    first = grant_status.build_status(outcome(), 1, None, T0)
    second = grant_status.build_status(outcome(serving=NOT_FOUND), 2, first, T1)

    patch = grant_status.status_patch(first, second)

    assert set(patch) == {"observedGeneration", "readyRepositories", "repositories", "conditions"}
    assert patch["conditions"] == second["conditions"], "the full conditions list is written"
    assert patch["repositories"] == second["repositories"]


def test_status_patch_against_no_status_writes_everything():
    status = grant_status.build_status(outcome(), 1, None, T0)

    assert grant_status.status_patch(None, status) == status


def test_status_patch_removes_our_keys_that_are_gone_and_leaves_others_alone():
    old = {"observedGeneration": 1, "readyRepositories": "1/1", "someoneElses": "x"}

    patch = grant_status.status_patch(old, {"observedGeneration": 1})

    assert patch == {"readyRepositories": None}


def test_invalid_spec_keeps_what_aws_holds_and_stalls():
    previous = grant_status.build_status(outcome(), 3, None, T0)

    status = grant_status.invalid_spec_status("spec.role: exactly one of name, arn or anyscaleCloudId", 4, previous, T1)

    for key in ("roleArn", "managedPolicyArn", "managedPolicyOwned", "readyRepositories", "repositories"):
        assert status[key] == previous[key]
    assert status["observedGeneration"] == 4
    kinds = by_type(status)
    assert set(kinds) == {"Ready", "Stalled"}
    assert kinds["Ready"]["status"] == "False"
    assert kinds["Ready"]["reason"] == kinds["Stalled"]["reason"] == "InvalidSpec"
    assert kinds["Stalled"]["status"] == "True"
    assert "spec.role" in kinds["Stalled"]["message"]
    assert kinds["Ready"]["lastTransitionTime"] == T1
    assert all(item["observedGeneration"] == 4 for item in status["conditions"])


def test_invalid_spec_twice_needs_no_write():
    first = grant_status.invalid_spec_status("spec.suspend: must be true or false", 2, None, T0)

    second = grant_status.invalid_spec_status("spec.suspend: must be true or false", 2, first, T1)

    assert set(first) == {"observedGeneration", "conditions"}
    assert grant_status.status_patch(first, second) == {}


SUBJECT = "repository arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer"


@pytest.mark.parametrize(
    ("kind", "operation", "not_found", "reason", "severity", "mentions"),
    [
        pytest.param(FaultKind.ACCESS_DENIED, "SetRepositoryPolicy", "NotFound", "AccessDenied", Severity.TERMINAL,
                     ["SetRepositoryPolicy", SUBJECT], id="access-denied"),
        pytest.param(FaultKind.THROTTLED, "GetRepositoryPolicy", "NotFound", "Throttled", Severity.TRANSIENT,
                     ["GetRepositoryPolicy", SUBJECT], id="throttled"),
        pytest.param(FaultKind.UNAVAILABLE, "GetRepositoryPolicy", "NotFound", "AwsUnavailable", Severity.TRANSIENT,
                     ["GetRepositoryPolicy", SUBJECT], id="unavailable"),
        pytest.param(FaultKind.PROPAGATING, "SetRepositoryPolicy", "NotFound", "RolePropagating", Severity.TRANSIENT,
                     [SUBJECT], id="propagating"),
        pytest.param(FaultKind.LIMIT_EXCEEDED, "AttachRolePolicy", "NotFound", "ManagedPolicyQuotaExceeded",
                     Severity.TERMINAL, ["AttachRolePolicy", SUBJECT, "quota"], id="managed-policy-quota"),
        pytest.param(FaultKind.LIMIT_EXCEEDED, "SetRepositoryPolicy", "NotFound", "LimitExceeded", Severity.TERMINAL,
                     ["SetRepositoryPolicy", SUBJECT], id="other-limit"),
        pytest.param(FaultKind.NOT_FOUND, "GetRepositoryPolicy", "RepositoryNotFound", "RepositoryNotFound",
                     Severity.TERMINAL, [SUBJECT, "not found"], id="repository-not-found"),
        pytest.param(FaultKind.NOT_FOUND, "GetRole", "RoleNotFound", "RoleNotFound", Severity.TERMINAL,
                     [SUBJECT, "not found"], id="role-not-found"),
        pytest.param(FaultKind.INVALID, "SetRepositoryPolicy", "NotFound", "InvalidRequest", Severity.TERMINAL,
                     ["SetRepositoryPolicy", SUBJECT, "Invalid principal"], id="invalid"),
    ],
)
def test_finding_for_fault(kind, operation, not_found, reason, severity, mentions):
    fault = AwsFault(kind, operation, "resource", "Invalid principal in policy")

    finding = verdicts.for_fault(fault, SUBJECT, not_found)

    assert finding.reason == reason
    assert finding.severity is severity
    assert finding.severity is (Severity.TRANSIENT if kind.transient else Severity.TERMINAL)
    for text in mentions:
        assert text in finding.message


def test_every_fault_kind_has_a_camel_case_reason_and_a_sentence():
    for kind in FaultKind:
        finding = verdicts.for_fault(AwsFault(kind, "GetRole", "r", "detail"), SUBJECT, "RoleNotFound")
        assert finding.reason[:1].isupper() and finding.reason.isalnum()
        assert not finding.ok
        assert finding.message.endswith(".") or finding.message.endswith("detail")


@pytest.mark.parametrize(("actions", "says"), [
    pytest.param((), "may pull from 2 repositories", id="the-reference-actions"),
    pytest.param(("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"), "may pull from 2 repositories", id="pull-only"),
    pytest.param(("ecr:BatchGetImage", "ecr:PutImage"), "is allowed ecr:BatchGetImage, ecr:PutImage on 2 repositories",
                 id="a-push-action-is-named"),
    pytest.param(("ecr:get*",), "is allowed ecr:get* on 2 repositories", id="a-glob-is-named"),
    pytest.param(tuple(f"ecr:Put{n}" for n in "ABCDE"),
                 "is allowed ecr:PutA, ecr:PutB, ecr:PutC and 2 more actions on 2 repositories", id="many"),
])
def test_the_ready_message_names_what_was_granted(actions: tuple[str, ...], says: str) -> None:
    found = dataclasses.replace(outcome(), actions=actions)
    ready = by_type(grant_status.build_status(found, generation=1, previous=None, now=T0))["Ready"]
    assert f"Role {ROLE_ARN} {says} and has" in ready["message"]
