"""Properties of policy merging over arbitrary foreign policies and arbitrary sets of live grants.

A repository policy belongs to its owner first. Whatever shape their statements take, the operator
must leave them exactly as they were, converge in one write, undo itself completely, and write the
same document whatever order the grants were seen in.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ecr_access import policy
from ecr_access.model import REFERENCE_ACTIONS

CLUSTER = "0f3c2a1e-6b1d-4c8e-9a7f-2d5e8b9c0a11"
PREFIX = policy.cluster_prefix(CLUSTER)
SETTINGS = settings(max_examples=200, deadline=None)

ALNUM = string.ascii_letters + string.digits
ACTIONS = (
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:PutImage",
    "ecr:DescribeImages",
    "ecr:*",
)
ACCOUNTS = ("123456789012", "111122223333", "444455556666")

role_arns = st.builds(
    "arn:aws:iam::{}:role/{}".format,
    st.sampled_from(ACCOUNTS),
    st.text(ALNUM + "_-", min_size=1, max_size=12),
)
action_values = st.one_of(
    st.sampled_from(ACTIONS),
    st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=4),
)
principals = st.one_of(
    st.just("*"),
    st.builds(lambda arn: {"AWS": arn}, role_arns),
    st.builds(lambda arns: {"AWS": arns}, st.lists(role_arns, min_size=1, max_size=3)),
    st.builds(lambda service: {"Service": service}, st.sampled_from(["ec2.amazonaws.com", "codebuild.amazonaws.com"])),
)
foreign_sids = st.one_of(
    st.none(),
    st.text(ALNUM, min_size=1, max_size=20).filter(lambda sid: not sid.startswith(PREFIX)),
    # Another cluster's statement, or a handed-over one: never ours.
    st.builds(policy.statement_sid, st.text(ALNUM, min_size=1, max_size=8).filter(lambda c: c != CLUSTER),
              st.just(REFERENCE_ACTIONS)),
    st.builds(policy.retained_sid, st.just(CLUSTER), st.just("team-ml"), st.text(ALNUM, min_size=1, max_size=8),
              st.uuids().map(str)),
)
conditions = st.builds(
    lambda value: {"StringEquals": {"aws:PrincipalOrgID": value}},
    st.one_of(st.just("o-a1b2c3d4e5"), st.lists(st.sampled_from(["o-a1b2c3d4e5", "o-zzzzzzzzzz"]), min_size=1)),
)


@st.composite
def foreign_statements(draw: st.DrawFn) -> dict[str, Any]:
    statement: dict[str, Any] = {}
    sid = draw(foreign_sids)
    if sid is not None:
        statement["Sid"] = sid
    statement["Effect"] = draw(st.sampled_from(["Allow", "Deny"]))
    statement["Principal"] = draw(principals)
    statement[draw(st.sampled_from(["Action", "NotAction"]))] = draw(action_values)
    if draw(st.booleans()):
        statement["Condition"] = draw(conditions)
    return statement


@st.composite
def foreign_policies(draw: st.DrawFn) -> dict[str, Any] | None:
    """None (no policy yet) or a policy holding only statements that are not this cluster's."""
    if draw(st.integers(0, 9)) == 0:
        return None
    doc: dict[str, Any] = {}
    version = draw(st.sampled_from(["2012-10-17", "2008-10-17", None]))
    if version is not None:
        doc["Version"] = version
    if draw(st.booleans()):
        doc["Statement"] = draw(foreign_statements())  # a single object, not a list
    else:
        doc["Statement"] = draw(st.lists(foreign_statements(), max_size=4))
    return doc


action_sets = st.one_of(
    st.sampled_from([REFERENCE_ACTIONS, ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")]),
    st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3).map(tuple),
)
# A live grant, as far as one repository's policy is concerned: a resolved role ARN and an action set.
grants = st.lists(st.tuples(role_arns, action_sets), max_size=8)


def desired_from(live: Iterable[tuple[str, Iterable[str]]]) -> list[policy.DesiredStatement]:
    """Group live grants by action set into this cluster's statements, in the order the grants come."""
    by_actions: dict[tuple[str, ...], set[str]] = {}
    for arn, actions in live:
        by_actions.setdefault(tuple(sorted(set(actions))), set()).add(arn)
    return [
        policy.DesiredStatement(policy.statement_sid(CLUSTER, actions), actions, frozenset(arns))
        for actions, arns in by_actions.items()
    ]


def with_stale_statement(doc: dict[str, Any] | None, arns: list[str], position: int) -> dict[str, Any] | None:
    """The same policy with one of our statements already in it, as an earlier reconcile left it."""
    if not arns:
        return doc
    stale = desired_from((arn, REFERENCE_ACTIONS) for arn in arns)[0].render()
    base = doc if doc is not None else {"Version": "2012-10-17"}
    items = policy.statements(base)
    items.insert(position % (len(items) + 1), stale)
    return dict(base, Statement=items)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def foreign_of(doc: dict[str, Any] | None) -> list[str]:
    return [dumps(item) for item in policy.statements(doc) if not policy.is_ours(item, PREFIX)]


@SETTINGS
@given(foreign_policies(), grants, st.lists(role_arns, max_size=3), st.integers(0, 5))
def test_foreign_statements_survive_merge_unchanged(foreign, live, stale_arns, position):
    doc = with_stale_statement(foreign, stale_arns, position)
    wanted = desired_from(live)

    merged = policy.merge(doc, PREFIX, wanted)

    assert foreign_of(merged) == foreign_of(foreign)
    others = [item for item in policy.statements(merged) if not policy.is_ours(item, PREFIX)]
    assert policy.equivalent({"Statement": others}, {"Statement": policy.statements(foreign)})
    ours = [item for item in policy.statements(merged) if policy.is_ours(item, PREFIX)]
    assert ours == [item.render() for item in sorted(wanted, key=lambda item: item.sid)]
    if merged is not None and doc is not None and "Version" in doc:
        assert merged["Version"] == doc["Version"]
    if doc is None and merged is not None:
        assert merged["Version"] == "2012-10-17"


@SETTINGS
@given(foreign_policies(), grants, st.lists(role_arns, max_size=3), st.integers(0, 5))
def test_merge_is_idempotent(foreign, live, stale_arns, position):
    doc = with_stale_statement(foreign, stale_arns, position)
    wanted = desired_from(live)
    merged = policy.merge(doc, PREFIX, wanted)

    again = policy.merge(merged, PREFIX, wanted)

    assert policy.equivalent(again, merged), "a converged policy must not be written again"
    assert again == merged


@SETTINGS
@given(foreign_policies(), grants, st.lists(role_arns, max_size=3), st.integers(0, 5))
def test_removing_every_grant_restores_the_foreign_policy(foreign, live, stale_arns, position):
    doc = with_stale_statement(foreign, stale_arns, position)
    merged = policy.merge(doc, PREFIX, desired_from(live))

    removed = policy.merge(merged, PREFIX, [])

    if policy.statements(foreign):
        assert policy.equivalent(removed, foreign)
        assert foreign_of(removed) == foreign_of(foreign)
    elif merged is doc:  # nothing of ours was ever there: the policy was never touched
        assert removed is doc
    else:
        assert removed is None, "a policy with nothing but our statements is deleted once they go"


@SETTINGS
@given(foreign_policies(), grants.flatmap(lambda live: st.tuples(st.just(live), st.permutations(live))))
def test_policy_depends_only_on_the_set_of_grants(foreign, orders):
    live, shuffled = orders

    first = policy.merge(foreign, PREFIX, desired_from(live))
    second = policy.merge(foreign, PREFIX, desired_from(shuffled))
    doubled = policy.merge(foreign, PREFIX, desired_from([*shuffled, *live]))

    assert first == second == doubled


@SETTINGS
@given(
    foreign_policies(),
    grants.flatmap(lambda live: st.tuples(st.just(live), st.permutations(live))),
    st.integers(200, 2000),
)
def test_fit_never_exceeds_the_limit_and_does_not_depend_on_grant_order(foreign, orders, limit):
    live, shuffled = orders

    first = policy.fit(foreign, PREFIX, desired_from(live), limit=limit)
    second = policy.fit(foreign, PREFIX, desired_from(shuffled), limit=limit)

    assert first == second
    assert policy.size(first.document) <= limit or first.document is foreign
    assert foreign_of(first.document) == foreign_of(foreign)
    wanted = {item.sid: item.principals for item in desired_from(live)}
    written = policy.owned_principals(first.document, PREFIX)
    for sid, principals in wanted.items():
        admitted = written.get(sid, frozenset())
        assert admitted | first.rejected.get(sid, frozenset()) == principals, "every principal is written or rejected"
        assert not admitted & first.rejected.get(sid, frozenset())
