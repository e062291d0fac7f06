"""`planreport`: one line per change, greppable by principal, and the exit code of `plan`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ecr_access import planreport
from ecr_access.conditions import Finding, Outcome, RepositoryResult, Severity
from ecr_access.model import GrantKey
from ecr_access.plan import GrantPlan, Plan, Ready
from ecr_access.plandiff import RepositoryChange, RoleChange, StatementChange
from ecr_access.planning import Write

REPO = "arn:aws:ecr:us-west-2:123456789012:repository/ml/a"
ROLE = "arn:aws:iam::123456789012:role/node"
OTHER = "arn:aws:iam::123456789012:role/other"
EMPTY = Plan("c", "123456789012", "us-west-2", "aws", "Enforce", False, False, (), (), (), (), ())


def test_no_changes_exits_0_and_says_so() -> None:
    assert planreport.exit_code(EMPTY) == 0
    text = planreport.to_text(EMPTY)
    assert "No grant is affected." in text and text.rstrip().endswith("No changes: AWS already holds what these "
                                                                       "grants ask for.")


def test_every_kind_of_change_is_one_line_naming_its_repository_or_role() -> None:
    sid = "EcrAccessGrantabcdef010123456789abcdef"
    plan = dataclasses.replace(EMPTY, offline=True, repositories=(
        RepositoryChange(REPO, "123456789012", "update", (
            StatementChange(sid, "update", True, (ROLE,), (OTHER,), unaccounted=(OTHER,)),
            StatementChange("Theirs", "remove", False, principals_removed=("*",)))),
        RepositoryChange(REPO + "2", "123456789012", "delete", (StatementChange(sid, "remove", True, (), (ROLE,)),)),
    ), roles=(RoleChange(ROLE, "123456789012", attach=("arn:p/ReadOnly",), tags_set=(("ecraccess.io/x", "ReadOnly",
                                                                                       None),),
                         tags_removed=(("ecraccess.io/attached", "PullOnly"),)),),
        writes=(Write("123456789012", "SetRepositoryPolicy", REPO),) * 3)

    changes = [line.strip() for line in planreport.to_text(plan).splitlines() if line.startswith("  ")]
    assert changes == [
        f"~ repository {REPO}: + principal {ROLE} in Sid {sid}",
        f"~ repository {REPO}: - principal {OTHER} in Sid {sid} ({planreport.OFFLINE_NOTE})",
        f"~ repository {REPO}: - statement Theirs (foreign)",
        f"~ repository {REPO}: - principal * in Sid Theirs",
        f"- repository {REPO}2: - statement {sid}",
        f"- repository {REPO}2: - principal {ROLE} in Sid {sid}",
        f"- repository {REPO}2: policy deleted (no statement left)",
        f"~ role {ROLE}: + managed policy arn:p/ReadOnly",
        f'~ role {ROLE}: ~ tag ecraccess.io/x = "ReadOnly" (was unset)',
        f'~ role {ROLE}: - tag ecraccess.io/attached (was "PullOnly")',
    ]
    assert planreport.to_text(plan).rstrip().endswith("Plan: 2 repository policies and 1 role to change (3 writes).")
    assert planreport.exit_code(plan) == 2


def test_grants_show_the_ready_verdict_and_every_repository_verdict() -> None:
    refused = Finding("NotPermitted", "No EcrGrantPolicy selects namespace team-a.", Severity.TERMINAL)
    outcome = Outcome(ROLE, None, False, refused, (RepositoryResult(REPO, "sid", refused),))
    plan = dataclasses.replace(EMPTY, grants=(
        GrantPlan(GrantKey("team-a", "g"), "create", "apply", Ready("False", "NotPermitted", refused.message), outcome),
        GrantPlan(GrantKey("team-b", "h"), "delete", "absent")))
    text = planreport.to_text(plan)
    assert f"  team-a/g (create): would be Ready=False (NotPermitted): {refused.message}" in text
    assert f"      repository {REPO}: NotPermitted: No EcrGrantPolicy selects namespace team-a." in text
    assert "  team-b/h (delete): not in the cluster: nothing to release" in text
    document = json.loads(json.dumps(planreport.to_json(plan)))
    assert document["grants"][0]["repositories"] == [
        {"arn": REPO, "sid": "sid", "ready": False, "reason": "NotPermitted", "message": refused.message}]
    assert document["grants"][1]["ready"] is None and document["changes"] is False


@pytest.mark.parametrize(("changed", "problems", "code"), [(False, (), 0), (True, (), 2), (True, ("x",), 1),
                                                           (False, ("x",), 1)])
def test_exit_codes_are_terraforms_detailed_ones(changed: bool, problems: tuple[str, ...], code: int) -> None:
    roles = (RoleChange(ROLE, "1", attach=("a",)),) if changed else ()
    assert planreport.exit_code(dataclasses.replace(EMPTY, roles=roles, problems=problems)) == code
