"""Review of the access check (issue 16): what a hostile reading of its wiring found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ecr_access import access, status, verdicts
from ecr_access.conditions import APPLIED, Outcome, RepositoryResult
from ecr_access.model import RepositoryRef

CRD = Path(__file__).resolve().parents[2] / "crds" / "ecraccessgrants.yaml"
# The longest role ARN the CRD's spec.role.arn admits.
ROLE = "arn:aws:iam::123456789012:role/" + "p/" * 200 + "n" * (613 - 31 - 400)


def _condition_message_max() -> int:
    schema: Any = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return int(schema["properties"]["status"]["properties"]["conditions"]["items"]["properties"]["message"]
               ["maxLength"])


def test_many_conditional_denies_keep_the_ready_message_within_the_crd() -> None:
    # An organisation's policy template (Deny to everyone outside the org, with a Condition) on every
    # one of a grant's 100 repositories, each with the longest name the CRD admits: every one is
    # MayBeDenied. The Ready message must still fit the CRD, or the API server refuses the status
    # write on every pass (and the MayBeDenied Events, judged against the old status, repeat).
    assert len(ROLE) == 613
    conditional = [access.Denial("DenyOutsideOrg", "ecr:BatchGetImage", True)]
    repos = [RepositoryRef("aws", "us-east-1", "123456789012", f"{index:03d}" + "r" * 253) for index in range(100)]
    outcome = Outcome(ROLE, None, False, APPLIED, tuple(
        RepositoryResult(repo.arn, "EcrAccessGrant" + "0" * 24, verdicts.denied(repo, conditional, ROLE))
        for repo in repos))

    built = status.build_status(outcome, 1, None, "T")

    ready = built["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("True", "Reconciled")
    assert len(ready["message"]) <= _condition_message_max()
    assert "MayBeDenied" in ready["message"] or "may be denied" in ready["message"]
    # Every repository still says so in its own entry.
    assert [repo["reason"] for repo in built["repositories"]] == ["MayBeDenied"] * 100


def test_many_conditional_denies_are_one_warning_event_not_one_per_repository() -> None:
    # The same organisation template on 100 repositories: the first pass posts one MayBeDenied
    # Event naming the first and the count (kopf cuts an Event's message at 1024 characters), not
    # 100 Events for one grant; a repository that later becomes MayBeDenied is one Event again.
    conditional = [access.Denial("DenyOutsideOrg", "ecr:BatchGetImage", True)]
    repos = [RepositoryRef("aws", "us-east-1", "123456789012", f"ml/r{index:03d}") for index in range(100)]

    def built(maybe: int, previous: Any) -> Any:
        return status.build_status(Outcome(ROLE, None, False, APPLIED, tuple(
            RepositoryResult(repo.arn, "EcrAccessGrant" + "0" * 24,
                             verdicts.denied(repo, conditional if index < maybe else [], ROLE))
            for index, repo in enumerate(repos))), 1, previous, "T")

    first = built(99, None)
    events = [event for event in status.transition_events(None, first, 1) if event[1] == "MayBeDenied"]
    assert len(events) == 1
    assert "ml/r000" in events[0][2] and "98 more" in events[0][2]

    second = built(100, first)
    events = [event for event in status.transition_events(first, second, 1) if event[1] == "MayBeDenied"]
    assert len(events) == 1 and "ml/r099" in events[0][2] and "more" not in events[0][2]
    assert status.transition_events(second, built(100, second), 1) == []


def test_a_notprincipal_naming_the_role_and_its_account_does_not_exclude_the_nodes_sessions() -> None:
    role = "arn:aws:iam::123456789012:role/node"
    deny = {"Sid": "OnlyNodes", "Effect": "Deny", "Action": "ecr:*",
            "NotPrincipal": {"AWS": [role, "arn:aws:iam::123456789012:root"]}}
    # Not DeniedByPolicy (the rule excludes it), but not silence either: MayBeDenied, saying why.
    [found] = access.denials({"Statement": [deny]}, role, ("ecr:BatchGetImage",))
    assert found.conditional and "assumed-role session" in found.because
