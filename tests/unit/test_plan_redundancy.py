"""`redundancy`: which foreign statements a grant makes redundant (what `adopt` may remove)."""

from __future__ import annotations

from typing import Any

import pytest

from ecr_access import policy, redundancy
from ecr_access.model import REFERENCE_ACTIONS

PREFIX = policy.cluster_prefix("c")
ROLE = "arn:aws:iam::123456789012:role/cld_abc123-cluster_node_role"
OTHER = "arn:aws:iam::123456789012:role/other"
# The manual procedure's statement (docs/access-amazon-ecr.md), for the grant's role.
ALLOW_PULL: dict[str, Any] = {"Sid": "AllowPull", "Effect": "Allow", "Principal": {"AWS": ROLE},
                              "Action": list(REFERENCE_ACTIONS)}


def judged(statement: dict[str, Any], actions: tuple[str, ...] = REFERENCE_ACTIONS) -> list[tuple[bool, str]]:
    return [(item.redundant, item.reason) for item in redundancy.judge([statement], ROLE, actions, PREFIX)]


@pytest.mark.parametrize("statement", [
    ALLOW_PULL,
    {**ALLOW_PULL, "Principal": {"AWS": [ROLE]}},  # a list of one
    {**ALLOW_PULL, "Principal": {"AWS": [ROLE, ROLE.replace("cld_abc123", "CLD_ABC123")]}},  # one role, two spellings
    {**ALLOW_PULL, "Action": "ecr:BatchGetImage"},  # a string, a subset
    {**ALLOW_PULL, "Action": ["ECR:batchgetimage", "ecr:ListImages"]},  # IAM reads actions ignoring case
    {k: v for k, v in ALLOW_PULL.items() if k != "Sid"},  # no Sid
])
def test_the_manual_procedures_statement_and_its_variants_are_redundant(statement: dict[str, Any]) -> None:
    assert judged(statement) == [(True, "")]


def test_a_statement_naming_other_principals_too_is_only_partly_covered() -> None:
    (found,) = judged({**ALLOW_PULL, "Principal": {"AWS": [ROLE, OTHER]}})
    assert found == (False, f"it names other principals too ({OTHER})")


@pytest.mark.parametrize(("action", "grant"), [
    ("ecr:PutImage", REFERENCE_ACTIONS),
    ("ecr:*", REFERENCE_ACTIONS),  # a wildcard is not a subset of the actions it matches...
    ("ecr:Batch*", ("ecr:BatchGetImage", "ecr:BatchCheckLayerAvailability")),
    ("*", REFERENCE_ACTIONS),
])
def test_actions_the_grant_does_not_allow_make_it_only_partly_covered(action: str, grant: tuple[str, ...]) -> None:
    (found,) = judged({**ALLOW_PULL, "Action": [action, "ecr:BatchGetImage"]}, grant)
    assert found == (False, f"it allows actions the grant does not ({action})")


@pytest.mark.parametrize(("action", "grant"), [
    ("ecr:*", ("ecr:*",)),  # ...only of the same wildcard
    ("ecr:BatchGetImage", ("ecr:Batch*",)),  # a named action a glob of the grant matches
    ("ecr:batch*", ("ecr:Batch*",)),
])
def test_actions_the_grants_globs_allow_are_covered(action: str, grant: tuple[str, ...]) -> None:
    assert judged({**ALLOW_PULL, "Action": action}, grant) == [(True, "")]


@pytest.mark.parametrize("statement", [
    {**ALLOW_PULL, "Effect": "Deny"},
    {**ALLOW_PULL, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}},
    {**ALLOW_PULL, "Resource": "*"},
    {k: v for k, v in ALLOW_PULL.items() if k != "Action"} | {"NotAction": "ecr:PutImage"},
    {k: v for k, v in ALLOW_PULL.items() if k != "Principal"} | {"NotPrincipal": {"AWS": OTHER}},
    {**ALLOW_PULL, "Principal": "*"},
    {**ALLOW_PULL, "Principal": {"AWS": OTHER}},
    {**ALLOW_PULL, "Principal": {"AWS": ROLE, "Service": "ec2.amazonaws.com"}},
    {**ALLOW_PULL, "Principal": {"AWS": ROLE.replace("role/", "role/path/")}},  # another role by that name
    {**ALLOW_PULL, "Action": []},
    policy.DesiredStatement(policy.statement_sid("c", REFERENCE_ACTIONS), REFERENCE_ACTIONS,
                            frozenset({ROLE})).render(),  # this cluster's own
])
def test_anything_else_is_not_listed_at_all(statement: dict[str, Any]) -> None:
    assert judged(statement) == []


def test_another_clusters_statement_is_foreign_and_judged_like_any() -> None:
    theirs = policy.DesiredStatement(policy.statement_sid("other-cluster", REFERENCE_ACTIONS), REFERENCE_ACTIONS,
                                     frozenset({ROLE})).render()
    assert judged(theirs) == [(True, "")]
