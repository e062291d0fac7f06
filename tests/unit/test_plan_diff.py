"""`plandiff`: the net change between two policy documents and on a role, as a reviewer reads it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecr_access import plandiff, policy
from ecr_access.planning import RoleOverlay
from ecr_access.ports import RoleInfo

PREFIX = policy.cluster_prefix("c")
OURS = policy.statement_sid("c", ["ecr:BatchGetImage"])
ROLE_A = "arn:aws:iam::123456789012:role/a"
ROLE_B = "arn:aws:iam::123456789012:role/b"
REPO = "arn:aws:ecr:us-west-2:123456789012:repository/r"
FOREIGN = {"Sid": "Theirs", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
           "Action": "ecr:PutImage"}


def ours(*principals: str, sid: str = OURS) -> dict[str, Any]:
    return policy.DesiredStatement(sid, ("ecr:BatchGetImage",), frozenset(principals)).render()


def text(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def diff(before: str | None, after: str | None, **kwargs: Any) -> plandiff.RepositoryChange | None:
    return plandiff.repository(REPO, "123456789012", before, after, PREFIX, **kwargs)


@pytest.mark.parametrize(("before", "after", "kind", "expected"), [
    # A new statement of ours in a policy with someone else's statement.
    (text(FOREIGN), text(FOREIGN, ours(ROLE_A)), "update", [(OURS, "add", (ROLE_A,), ())]),
    # No policy before: one is created.
    (None, text(ours(ROLE_A, ROLE_B)), "create", [(OURS, "add", (ROLE_A, ROLE_B), ())]),
    # A principal joins, another leaves.
    (text(ours(ROLE_A)), text(ours(ROLE_B)), "update", [(OURS, "update", (ROLE_B,), (ROLE_A,))]),
    # Our last principal leaves a policy that holds a foreign statement: the statement goes.
    (text(FOREIGN, ours(ROLE_A)), text(FOREIGN), "update", [(OURS, "remove", (), (ROLE_A,))]),
    # ... and from a policy with nothing else, the policy goes.
    (text(ours(ROLE_A)), None, "delete", [(OURS, "remove", (), (ROLE_A,))]),
])
def test_statement_and_principal_changes(before: str | None, after: str | None, kind: str,
                                         expected: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]) -> None:
    found = diff(before, after)
    assert found is not None and found.policy == kind
    assert [(item.sid, item.change, item.principals_added, item.principals_removed)
            for item in found.statements] == expected
    assert all(item.ours for item in found.statements)


def test_documents_that_mean_the_same_are_no_change() -> None:
    # Re-ordered, a string Action for a list of one, spacing: what AWS or a person reformats.
    before = text(FOREIGN, ours(ROLE_A, ROLE_B))
    after = json.dumps({"Statement": [{**ours(ROLE_B, ROLE_A), "Action": "ecr:BatchGetImage"},
                                      {**FOREIGN, "Action": ["ecr:PutImage"]}], "Version": "2012-10-17"}, indent=4)
    assert diff(before, after) is None


def test_a_statement_whose_actions_change_says_which_fields_change() -> None:
    edited = {**ours(ROLE_A), "Action": ["ecr:BatchGetImage", "ecr:ListImages"]}
    found = diff(text(ours(ROLE_A)), text(edited))
    assert found is not None
    (item,) = found.statements
    assert (item.change, item.fields, item.principals_added, item.principals_removed) == ("update", ("Action",), (), ())


def test_statements_without_a_sid_are_matched_by_content() -> None:
    anonymous = {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}
    found = diff(text(anonymous, ours(ROLE_A)), text(anonymous, ours(ROLE_A, ROLE_B)))
    assert found is not None and [item.sid for item in found.statements] == [OURS]


def test_removed_principals_no_grant_accounts_for_are_marked() -> None:
    found = diff(text(ours(ROLE_A, ROLE_B)), text(ours(ROLE_A)), accounted=lambda principal: principal == ROLE_A)
    assert found is not None and found.statements[0].unaccounted == (ROLE_B,)
    found = diff(text(ours(ROLE_A, ROLE_B)), text(ours(ROLE_A)))
    assert found is not None and found.statements[0].unaccounted == ()


def test_a_role_change_lists_attachments_and_tags_against_what_aws_held() -> None:
    entry = RoleOverlay(info=RoleInfo(ROLE_A, "AROA1", {"team": "ml", "ecraccess.io/attached": "PullOnly"}),
                        attached=frozenset({"arn:p/PullOnly", "arn:p/Other"}),
                        tags={"team": "ml", "ecraccess.io/abc": "ReadOnly"},
                        added={"arn:p/ReadOnly"}, removed={"arn:p/PullOnly"})
    found = plandiff.role(entry, "a", "123456789012")
    assert found is not None
    assert (found.arn, found.attach, found.detach) == (ROLE_A, ("arn:p/ReadOnly",), ("arn:p/PullOnly",))
    assert found.tags_set == (("ecraccess.io/abc", "ReadOnly", None),)
    assert found.tags_removed == (("ecraccess.io/attached", "PullOnly"),)


def test_a_role_the_plan_only_read_is_no_change() -> None:
    entry = RoleOverlay(info=RoleInfo(ROLE_A, "AROA1", {"k": "v"}), attached=frozenset({"arn:p/ReadOnly"}))
    assert plandiff.role(entry, "a", "123456789012") is None
    # A policy attached and detached again within one plan nets out.
    entry.added.add("arn:p/PullOnly")
    entry.added.discard("arn:p/PullOnly")
    assert plandiff.role(entry, "a", "123456789012") is None


@pytest.mark.parametrize(("principal", "expected"), [
    ({"AWS": ROLE_A}, {ROLE_A}),
    ({"AWS": [ROLE_A, ROLE_B]}, {ROLE_A, ROLE_B}),
    ("*", {"*"}),
    ({"Service": "ec2.amazonaws.com"}, set()),
    (None, set()),
])
def test_principals_of_a_statement(principal: Any, expected: set[str]) -> None:
    assert plandiff.principals({"Principal": principal}) == expected
