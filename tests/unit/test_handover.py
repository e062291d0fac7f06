"""The Retain hand-over never costs a role its access, and never blocks the rest of a repository."""

from __future__ import annotations

import json

from ecr_access import handover, policy
from ecr_access.model import REFERENCE_ACTIONS

CLUSTER = "cluster-uid"
PREFIX = policy.cluster_prefix(CLUSTER)
SID = policy.statement_sid(CLUSTER, REFERENCE_ACTIONS)
ROLE_A = "arn:aws:iam::123456789012:role/a"
ROLE_B = "arn:aws:iam::123456789012:role/b"
ROLE_C = "arn:aws:iam::123456789012:role/c"
KEEP = handover.Handover(policy.retained_sid(CLUSTER, "default", "keep", "uid-1"), SID, ROLE_A, REFERENCE_ACTIONS)


def shared(*roles: str) -> policy.DesiredStatement:
    return policy.DesiredStatement(SID, REFERENCE_ACTIONS, frozenset(roles))


def filler(size: int) -> dict[str, object]:
    """A foreign statement that makes a policy of about `size` characters."""
    statement = {"Sid": "Filler", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                 "Action": "ecr:ListImages", "Condition": {"StringEquals": {"aws:PrincipalTag/x": ""}}}
    base = len(policy.serialize({"Version": policy.POLICY_VERSION, "Statement": [statement]}))
    statement["Condition"] = {"StringEquals": {"aws:PrincipalTag/x": "x" * (size - base)}}
    return statement


def test_a_handover_that_fits_is_written_and_its_role_leaves_the_shared_statement() -> None:
    current = policy.merge(None, PREFIX, [shared(ROLE_A, ROLE_B)])

    result = handover.fit(current, PREFIX, [shared(ROLE_B)], [KEEP])

    assert result.pending == frozenset()
    by_sid = {item["Sid"]: item for item in policy.statements(result.document)}
    assert by_sid[KEEP.sid]["Principal"] == {"AWS": [ROLE_A]}
    assert by_sid[SID]["Principal"] == {"AWS": [ROLE_B]}


def test_a_handover_already_written_is_left_alone() -> None:
    current = policy.merge(None, PREFIX, [shared(ROLE_B)], [KEEP.statement()])

    result = handover.fit(current, PREFIX, [shared(ROLE_B)], [KEEP])

    assert policy.equivalent(result.document, current)
    assert result.pending == frozenset()


def test_a_handover_that_does_not_fit_keeps_the_role_and_lets_removals_land() -> None:
    # Room for the shared statement with three roles, not for a second statement of its own.
    with_three = policy.merge({"Version": policy.POLICY_VERSION, "Statement": [filler(9_500)]}, PREFIX,
                              [shared(ROLE_A, ROLE_B, ROLE_C)])
    assert policy.size(with_three) < policy.MAX_POLICY_CHARS
    assert policy.size(policy.merge(with_three, PREFIX, [shared(ROLE_B)], [KEEP.statement()])) > \
        policy.MAX_POLICY_CHARS

    # C is removed, A hands over: the hand-over does not fit, the removal lands all the same.
    result = handover.fit(with_three, PREFIX, [shared(ROLE_B)], [KEEP])

    assert result.pending == {KEEP.sid}
    by_sid = {item["Sid"]: item for item in policy.statements(result.document)}
    assert KEEP.sid not in by_sid
    assert by_sid[SID]["Principal"] == {"AWS": [ROLE_A, ROLE_B]}, "A keeps its access; C's removal lands"
    assert len(json.dumps(result.document, separators=(",", ":"))) <= policy.MAX_POLICY_CHARS


def test_existing_access_comes_before_a_new_principal() -> None:
    # The hand-over moves A's existing access; a new principal competes for the room B's removal made.
    with_two = policy.merge({"Version": policy.POLICY_VERSION, "Statement": [filler(9_700)]}, PREFIX,
                            [shared(ROLE_A, ROLE_B)])

    result = handover.fit(with_two, PREFIX, [shared(ROLE_C)], [KEEP])

    assert result.pending == frozenset()
    assert result.rejected == {SID: frozenset({ROLE_C})}, "C does not fit, and is told so (PolicyTooLarge)"
    assert {item["Sid"] for item in policy.statements(result.document)} == {"Filler", KEEP.sid}
