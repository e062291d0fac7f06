"""Repository policy merging: what the operator writes into policies that people and other tools share.

Every case here is something a repository owner would notice: a foreign statement that changed, a
policy rewritten for nothing, a grant that lost its access, or a document that ECR would reject.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import string
from collections.abc import Iterable
from typing import Any

import pytest

from ecr_access import policy
from ecr_access.model import REFERENCE_ACTIONS

CLUSTER = "0f3c2a1e-6b1d-4c8e-9a7f-2d5e8b9c0a11"  # a kube-system namespace UID
OTHER_CLUSTER = "7d1e9b2c-0000-4a5b-8c6d-111122223333"
PREFIX = policy.cluster_prefix(CLUSTER)
PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
SID = policy.statement_sid(CLUSTER, REFERENCE_ACTIONS)
PULL_SID = policy.statement_sid(CLUSTER, PULL)

ROLE_A = "arn:aws:iam::123456789012:role/cld_aaaaaaaaaaaaaaaaaaaaaaaa-cluster_node_role"
ROLE_B = "arn:aws:iam::123456789012:role/cld_bbbbbbbbbbbbbbbbbbbbbbbb-cluster_node_role"
ROLE_C = "arn:aws:iam::210987654321:role/team/ml-nodes"
STALE_ID = "AROA3XFRBF535PLBIFPI4"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def desired(*arns: str, actions: Iterable[str] = REFERENCE_ACTIONS) -> policy.DesiredStatement:
    actions = tuple(actions)
    return policy.DesiredStatement(policy.statement_sid(CLUSTER, actions), actions, frozenset(arns))


def ours(*arns: str, actions: Iterable[str] = REFERENCE_ACTIONS) -> dict[str, Any]:
    """Our statement as the operator renders it: what a repository owner reads in the console."""
    actions = tuple(actions)
    return {
        "Sid": policy.statement_sid(CLUSTER, actions),
        "Effect": "Allow",
        "Principal": {"AWS": sorted(set(arns))},
        "Action": sorted(set(actions)),
    }


def dumps(value: Any) -> str:
    """Serialization that keeps key order: 'byte-identical' means exactly that."""
    return json.dumps(value, separators=(",", ":"))


def foreign_part(doc: policy.Document | None) -> list[str]:
    return [dumps(item) for item in policy.statements(doc) if not policy.is_ours(item, PREFIX)]


def our_part(doc: policy.Document | None) -> list[dict[str, Any]]:
    return [item for item in policy.statements(doc) if policy.is_ours(item, PREFIX)]


CI_PUSH = {
    "Sid": "AllowCIPush",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::111122223333:role/ci"},
    "Action": "ecr:PutImage",
}
DENY_DELETE = {
    "Sid": "DenyDelete",
    "Effect": "Deny",
    "Principal": "*",
    "NotAction": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
}
ORG_PULL = {
    "Sid": "OrgPull",
    "Effect": "Allow",
    "Principal": "*",
    "Action": ["ecr:BatchGetImage"],
    "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
}
TWO_ACCOUNTS = {
    "Effect": "Allow",
    "Principal": {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:root"]},
    "Action": ["ecr:BatchGetImage", "ecr:BatchCheckLayerAvailability"],
}
OTHER_CLUSTERS = {
    "Sid": policy.statement_sid(OTHER_CLUSTER, REFERENCE_ACTIONS),
    "Effect": "Allow",
    "Principal": {"AWS": [ROLE_C]},
    "Action": sorted(REFERENCE_ACTIONS),
}
RETAINED = {
    "Sid": policy.retained_sid(CLUSTER, "team-ml", "old-grant", "3f0c9a1e-uid"),
    "Effect": "Allow",
    "Principal": {"AWS": [ROLE_C]},
    "Action": sorted(REFERENCE_ACTIONS),
}

# Starting points: (policy before the operator touches it, policy after our statement is removed again).
STARTING_POINTS = [
    pytest.param(None, None, id="no-policy"),
    pytest.param({"Version": "2012-10-17", "Statement": CI_PUSH}, ..., id="single-statement-object"),
    pytest.param({"Version": "2012-10-17", "Statement": [CI_PUSH]}, ..., id="string-action"),
    pytest.param({"Version": "2012-10-17", "Statement": [DENY_DELETE]}, ..., id="not-action-and-star-principal"),
    pytest.param({"Version": "2012-10-17", "Statement": [ORG_PULL]}, ..., id="condition"),
    pytest.param({"Version": "2012-10-17", "Statement": [TWO_ACCOUNTS]}, ..., id="principal-list-no-sid"),
    pytest.param({"Version": "2008-10-17", "Statement": [CI_PUSH, TWO_ACCOUNTS]}, ..., id="version-2008"),
    pytest.param({"Version": "2012-10-17", "Statement": [OTHER_CLUSTERS]}, ..., id="other-clusters-prefix"),
    pytest.param({"Version": "2012-10-17", "Statement": [RETAINED, CI_PUSH]}, ..., id="retained-statement"),
    pytest.param(
        {"Version": "2012-10-17", "Id": "team-ml", "Statement": [CI_PUSH, DENY_DELETE, ORG_PULL, OTHER_CLUSTERS]},
        ...,
        id="everything-foreign-and-an-id",
    ),
    pytest.param({"Version": "2012-10-17", "Statement": []}, None, id="empty-statement-list"),
]


@pytest.mark.parametrize(("before", "after_removal"), STARTING_POINTS)
def test_adding_our_statement_keeps_every_foreign_statement_byte_for_byte(before, after_removal):
    snapshot = copy.deepcopy(before)

    merged = policy.merge(before, PREFIX, [desired(ROLE_B, ROLE_A)])

    assert before == snapshot, "merge must not modify the document it was given"
    assert merged is not None
    assert foreign_part(merged) == foreign_part(before)
    foreign = [item for item in policy.statements(merged) if not policy.is_ours(item, PREFIX)]
    assert policy.equivalent({"Statement": foreign}, {"Statement": policy.statements(before)})
    assert our_part(merged) == [ours(ROLE_A, ROLE_B)]
    statement = our_part(merged)[0]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"AWS": [ROLE_A, ROLE_B]}
    assert statement["Action"] == sorted(REFERENCE_ACTIONS)
    expected_version = "2012-10-17" if before is None else before["Version"]
    assert merged["Version"] == expected_version
    assert not policy.equivalent(before, merged), "adding a grant must be written"
    if before is not None:
        assert {key: value for key, value in merged.items() if key != "Statement"} == {
            key: value for key, value in before.items() if key != "Statement"
        }


def test_no_policy_becomes_a_new_2012_policy_holding_only_our_statement():
    merged = policy.merge(None, PREFIX, [desired(ROLE_A)])

    assert merged == {"Version": "2012-10-17", "Statement": [ours(ROLE_A)]}


@pytest.mark.parametrize(
    "nothing_wanted",
    [pytest.param([], id="no-statements"), pytest.param([desired()], id="statement-without-principals")],
)
@pytest.mark.parametrize(("before", "after_removal"), STARTING_POINTS)
def test_removing_our_statement_restores_the_original_policy(before, after_removal, nothing_wanted):
    merged = policy.merge(before, PREFIX, [desired(ROLE_A)])

    removed = policy.merge(merged, PREFIX, nothing_wanted)

    if after_removal is None:
        assert removed is None, "a policy left with no statements is deleted"
    else:
        assert policy.equivalent(removed, before)
        assert foreign_part(removed) == foreign_part(before)
        assert our_part(removed) == []


@pytest.mark.parametrize(
    "before",
    [
        pytest.param({"Version": "2012-10-17", "Statement": []}, id="empty-statement-list"),
        pytest.param({"Version": "2012-10-17"}, id="no-statement-key"),
        pytest.param({"Version": "2012-10-17", "Statement": CI_PUSH}, id="single-foreign-object"),
        pytest.param({"Version": "2008-10-17", "Statement": [OTHER_CLUSTERS, RETAINED]}, id="foreign-only"),
    ],
)
def test_nothing_of_ours_to_add_or_remove_leaves_the_policy_untouched(before):
    merged = policy.merge(before, PREFIX, [desired(actions=PULL)])  # a statement with no principals

    assert merged is before
    assert policy.equivalent(merged, before)


def test_our_statement_when_already_equal_needs_no_write():
    # As AWS may return it: a single principal as a string, actions in another order.
    current = {
        "Version": "2012-10-17",
        "Statement": [
            CI_PUSH,
            {"Sid": SID, "Effect": "Allow", "Principal": {"AWS": ROLE_A}, "Action": list(reversed(REFERENCE_ACTIONS))},
        ],
    }

    merged = policy.merge(current, PREFIX, [desired(ROLE_A)])

    assert policy.equivalent(current, merged)
    assert policy.fit(current, PREFIX, [desired(ROLE_A)]).rejected == {}


@pytest.mark.parametrize(
    ("principals_now", "wanted"),
    [
        pytest.param([ROLE_A], [ROLE_B], id="other-role"),
        pytest.param([ROLE_A, ROLE_B], [ROLE_A], id="one-role-too-many"),
        pytest.param([ROLE_A], [ROLE_A, ROLE_B], id="one-role-missing"),
    ],
)
def test_stale_statement_is_rewritten_from_the_live_grants(principals_now, wanted):
    current = {"Version": "2012-10-17", "Statement": [ours(*principals_now), CI_PUSH]}

    merged = policy.merge(current, PREFIX, [desired(*wanted)])

    assert not policy.equivalent(current, merged)
    assert our_part(merged) == [ours(*wanted)]
    assert foreign_part(merged) == [dumps(CI_PUSH)]


def test_unique_id_principal_is_reported_as_stale_and_dropped_by_the_rewrite():
    current = {"Version": "2012-10-17", "Statement": [CI_PUSH, ours(ROLE_A, STALE_ID)]}

    assert policy.stale_principals(current, PREFIX) == [STALE_ID]
    merged = policy.merge(current, PREFIX, [desired(ROLE_A)])

    assert not policy.equivalent(current, merged)
    assert our_part(merged) == [ours(ROLE_A)]
    assert policy.stale_principals(merged, PREFIX) == []


def test_unique_ids_in_foreign_statements_are_not_ours_to_report():
    foreign = {"Sid": "Legacy", "Effect": "Allow", "Principal": {"AWS": STALE_ID}, "Action": "ecr:BatchGetImage"}
    other = dict(OTHER_CLUSTERS, Principal={"AWS": [STALE_ID]})

    assert policy.stale_principals({"Statement": [foreign, other]}, PREFIX) == []


@pytest.mark.parametrize(
    "wanted",
    [pytest.param([desired(ROLE_A)], id="add"), pytest.param([], id="remove")],
)
def test_another_clusters_statement_with_the_same_actions_is_left_alone(wanted):
    current = {"Version": "2012-10-17", "Statement": [OTHER_CLUSTERS, ours(ROLE_B)]}

    merged = policy.merge(current, PREFIX, wanted)

    assert merged is not None
    assert foreign_part(merged) == [dumps(OTHER_CLUSTERS)]
    assert our_part(merged) == [item.render() for item in wanted]


def test_retained_statement_is_added_when_absent():
    retained = policy.build_retained_statement(RETAINED["Sid"], ROLE_C, REFERENCE_ACTIONS)
    current = {"Version": "2012-10-17", "Statement": [CI_PUSH, ours(ROLE_A, ROLE_C)]}

    merged = policy.merge(current, PREFIX, [desired(ROLE_A)], extra=[retained])

    assert retained == RETAINED
    assert policy.statements(merged) == [CI_PUSH, RETAINED, ours(ROLE_A)]


@pytest.mark.parametrize(
    "existing",
    [
        pytest.param(RETAINED, id="as-written"),
        pytest.param(dict(RETAINED, Principal={"AWS": [ROLE_A, ROLE_C]}), id="edited-by-a-person"),
    ],
)
def test_retained_statement_already_present_is_never_touched_or_duplicated(existing):
    retained = policy.build_retained_statement(RETAINED["Sid"], ROLE_C, REFERENCE_ACTIONS)
    current = {"Version": "2012-10-17", "Statement": [existing, ours(ROLE_A)]}

    merged = policy.merge(current, PREFIX, [desired(ROLE_A)], extra=[retained])

    assert policy.equivalent(current, merged)
    assert [dumps(item) for item in policy.statements(merged)] == [dumps(existing), dumps(ours(ROLE_A))]


def test_removing_the_last_grant_of_a_policy_that_only_had_ours_deletes_it():
    current = {"Version": "2012-10-17", "Statement": [ours(ROLE_A), ours(ROLE_B, actions=PULL)]}

    assert policy.merge(current, PREFIX, []) is None
    assert policy.merge(current, PREFIX, [desired(), desired(actions=PULL)]) is None


def test_one_action_set_removed_the_other_kept():
    current = {"Version": "2012-10-17", "Statement": [ours(ROLE_A), ours(ROLE_B, actions=PULL)]}

    merged = policy.merge(current, PREFIX, [desired(ROLE_B, actions=PULL)])

    assert policy.statements(merged) == [ours(ROLE_B, actions=PULL)]


# --- Sids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "actions",
    [
        pytest.param(REFERENCE_ACTIONS, id="reference-actions"),
        pytest.param(tuple(reversed(REFERENCE_ACTIONS)), id="reference-actions-reversed"),
        pytest.param(PULL, id="pull-only"),
        pytest.param(("ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"), id="pull-only-reordered"),
        pytest.param(("ecr:*",), id="wildcard"),
    ],
)
@pytest.mark.parametrize("cluster", [CLUSTER, OTHER_CLUSTER, "ns-scoped/team-a,team-b"])
def test_statement_sid_is_prefix_plus_two_digests(cluster, actions):
    expected = "EcrAccessGrant" + sha(cluster)[:8] + sha(",".join(sorted(actions)))[:16]

    sid = policy.statement_sid(cluster, actions)

    assert sid == expected
    assert policy.is_valid_sid(sid)
    assert sid.startswith(policy.cluster_prefix(cluster))
    assert policy.is_ours({"Sid": sid}, policy.cluster_prefix(cluster))


def test_statement_sids_differ_per_action_set_and_per_cluster():
    sids = {
        policy.statement_sid(cluster, actions)
        for cluster in (CLUSTER, OTHER_CLUSTER)
        for actions in (REFERENCE_ACTIONS, PULL, ("ecr:*",))
    }

    assert len(sids) == 6
    assert not policy.is_ours({"Sid": policy.statement_sid(OTHER_CLUSTER, PULL)}, PREFIX)


@pytest.mark.parametrize(
    ("cluster", "namespace", "name", "uid"),
    [
        pytest.param(CLUSTER, "team-ml", "ml-images", "0b7e-uid", id="plain"),
        pytest.param(OTHER_CLUSTER, "default", "a.b-c", "9d1f-uid", id="dotted-name"),
    ],
)
def test_retained_sid_is_prefix_plus_digest_of_cluster_namespace_name_and_uid(cluster, namespace, name, uid):
    sid = policy.retained_sid(cluster, namespace, name, uid)

    assert sid == "EcrAccessRetained" + sha(f"{cluster}/{namespace}/{name}/{uid}")[:16]
    assert sid != policy.retained_sid(cluster, namespace, name, uid + "-reused"), "a reused name gets its own"
    assert policy.is_valid_sid(sid)
    assert not policy.is_ours({"Sid": sid}, policy.cluster_prefix(cluster))


@pytest.mark.parametrize(
    ("sid", "valid"),
    [
        pytest.param("EcrAccessGrant0123abcdef", True, id="alphanumeric"),
        pytest.param("Ecr-Access", False, id="dash"),
        pytest.param("Ecr Access", False, id="space"),
        pytest.param("Ecr_Access", False, id="underscore"),
        pytest.param("Écr", False, id="non-ascii"),
    ],
)
def test_is_valid_sid(sid, valid):
    assert policy.is_valid_sid(sid) is valid


# --- Size ----------------------------------------------------------------------------------------


def node_role(index: int) -> str:
    """A realistic Anyscale node role ARN: `cld_` + a 24-character id."""
    rng = random.Random(index)
    cloud = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))
    return f"arn:aws:iam::123456789012:role/cld_{cloud}-cluster_node_role"


def group(grants: Iterable[tuple[str, Iterable[str]]]) -> list[policy.DesiredStatement]:
    """What the live grants ask of one repository: one statement per action set, principals unioned."""
    by_actions: dict[tuple[str, ...], set[str]] = {}
    for arn, actions in grants:
        by_actions.setdefault(tuple(sorted(set(actions))), set()).add(arn)
    return [
        policy.DesiredStatement(policy.statement_sid(CLUSTER, actions), actions, frozenset(arns))
        for actions, arns in by_actions.items()
    ]


def test_two_grants_naming_one_role_give_one_principal():
    merged = policy.merge(None, PREFIX, group([(ROLE_A, REFERENCE_ACTIONS), (ROLE_A, reversed(REFERENCE_ACTIONS))]))

    assert policy.statements(merged) == [ours(ROLE_A)]
    assert policy.statements(merged)[0]["Principal"] == {"AWS": [ROLE_A]}


def test_twenty_five_grants_on_one_repository_fit_in_one_statement():
    roles = [node_role(index) for index in range(25)]
    assert len(set(roles)) == 25 and all(len(role) == 77 for role in roles)

    result = policy.fit(None, PREFIX, group((role, REFERENCE_ACTIONS) for role in roles))

    assert result.rejected == {}
    assert len(policy.statements(result.document)) == 1
    assert policy.statements(result.document)[0]["Principal"] == {"AWS": sorted(roles)}
    assert len(policy.serialize(result.document)) < policy.MAX_POLICY_CHARS
    assert policy.size(result.document) == len(policy.serialize(result.document))


def test_serialization_is_compact():
    doc = policy.merge(None, PREFIX, [desired(ROLE_A)])

    assert policy.serialize(doc) == json.dumps(doc, separators=(",", ":"))
    assert " " not in policy.serialize(doc)


@pytest.mark.parametrize(
    "present_count",
    [pytest.param(0, id="nothing-present"), pytest.param(5, id="five-present"), pytest.param(60, id="sixty-present")],
)
def test_fit_keeps_present_principals_and_admits_new_ones_in_sorted_order(present_count):
    roles = [node_role(index) for index in range(200)]
    # Present principals sort last, so that admitting new ones first would push them out.
    present = sorted(roles)[-present_count:] if present_count else []
    new = sorted(set(roles) - set(present))
    current = {"Version": "2012-10-17", "Statement": [CI_PUSH, ours(*present)]} if present else None

    result = policy.fit(current, PREFIX, [desired(*roles)])

    assert policy.size(result.document) <= policy.MAX_POLICY_CHARS
    assert foreign_part(result.document) == foreign_part(current)
    kept = set(policy.statements(result.document)[-1]["Principal"]["AWS"])
    assert set(present) <= kept
    admitted = sorted(kept - set(present))
    assert admitted == new[: len(admitted)], "new principals are admitted in sorted order"
    assert admitted, "there was room for some"
    assert result.rejected == {SID: frozenset(new[len(admitted):])}
    # As many as fit: one more would have gone over the limit.
    one_more = policy.merge(current, PREFIX, [desired(*kept, new[len(admitted)])])
    assert policy.size(one_more) > policy.MAX_POLICY_CHARS


def test_fit_gives_no_room_when_foreign_statements_fill_the_policy():
    big = {
        "Sid": "ManyAccounts",
        "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{index:012d}:root" for index in range(300)]},
        "Action": "ecr:BatchGetImage",
    }
    current = {"Version": "2012-10-17", "Statement": [big]}
    assert policy.MAX_POLICY_CHARS - 400 < policy.size(current) <= policy.MAX_POLICY_CHARS

    result = policy.fit(current, PREFIX, [desired(ROLE_A, ROLE_B)])

    assert result.document is current
    assert result.rejected == {SID: frozenset({ROLE_A, ROLE_B})}


def test_fit_returns_the_policy_unchanged_when_foreign_statements_alone_exceed_the_limit():
    current = {"Version": "2012-10-17", "Statement": [CI_PUSH, DENY_DELETE, ORG_PULL, ours(ROLE_A)]}
    foreign_only = {"Version": "2012-10-17", "Statement": [CI_PUSH, DENY_DELETE, ORG_PULL]}
    limit = policy.size(foreign_only) - 1

    result = policy.fit(current, PREFIX, [desired(ROLE_A, ROLE_B, ROLE_C)], limit=limit)

    assert result.document is current
    assert result.rejected == {SID: frozenset({ROLE_B, ROLE_C})}, "only new principals are rejected"


def test_fit_is_merge_when_everything_fits():
    current = {"Version": "2012-10-17", "Statement": [CI_PUSH, ours(ROLE_A)]}
    wanted = [desired(ROLE_A, ROLE_B), desired(ROLE_C, actions=PULL)]

    result = policy.fit(current, PREFIX, wanted)

    assert result.rejected == {}
    assert result.document == policy.merge(current, PREFIX, wanted)


# --- Comparison by meaning -------------------------------------------------------------------------


def doc_of(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    doc: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        doc["Version"] = version
    return doc


BASE = {
    "Sid": "Pull",
    "Effect": "Allow",
    "Principal": {"AWS": [ROLE_A]},
    "Action": ["ecr:BatchGetImage"],
    "Resource": "*",
}
WITHOUT_ACTION = {key: value for key, value in BASE.items() if key != "Action"}


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(doc_of(BASE, CI_PUSH), doc_of(CI_PUSH, BASE), True, id="statement-order"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Action="ecr:BatchGetImage")), True, id="string-vs-list-action"),
        pytest.param(doc_of(dict(BASE, Principal="*")), doc_of(dict(BASE, Principal={"AWS": "*"})), True,
                     id="star-vs-aws-star"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Principal={"AWS": ROLE_A})), True, id="string-vs-list-principal"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Action=["ECR:batchgetimage"])), True, id="action-case"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Action=["ecr:BatchGetImage", "ecr:BatchGetImage"])), True,
                     id="duplicate-actions"),
        pytest.param(doc_of(DENY_DELETE), doc_of(dict(DENY_DELETE, NotAction=list(reversed(DENY_DELETE["NotAction"])))),
                     True, id="not-action-order"),
        pytest.param(doc_of(ORG_PULL),
                     doc_of(dict(ORG_PULL, Condition={"StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5"]}})),
                     True, id="condition-string-vs-list"),
        pytest.param(doc_of(BASE, version=None), doc_of(BASE, version="2008-10-17"), True, id="absent-version-is-2008"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Principal={"AWS": [ROLE_B]})), False, id="other-principal"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Principal={"AWS": [ROLE_A, ROLE_B]})), False,
                     id="extra-principal"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Effect="Deny")), False, id="other-effect"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Resource="arn:aws:ecr:us-west-2:123456789012:repository/x")),
                     False, id="other-resource"),
        pytest.param(doc_of(dict(BASE, Resource="arn:aws:ecr:us-west-2:123456789012:repository/ML")),
                     doc_of(dict(BASE, Resource="arn:aws:ecr:us-west-2:123456789012:repository/ml")), False,
                     id="resource-case-matters"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Action=["ecr:GetDownloadUrlForLayer"])), False,
                     id="other-action"),
        pytest.param(doc_of(BASE), doc_of(dict(WITHOUT_ACTION, NotAction=["ecr:BatchGetImage"])), False,
                     id="action-vs-not-action"),
        pytest.param(doc_of(ORG_PULL),
                     doc_of(dict(ORG_PULL, Condition={"StringEquals": {"aws:PrincipalOrgID": ["o-zzzzzzzzzz"]}})),
                     False, id="other-condition-value"),
        pytest.param(doc_of(BASE), doc_of(BASE, CI_PUSH), False, id="extra-statement"),
        pytest.param(doc_of(BASE), doc_of(BASE, version="2008-10-17"), False, id="other-version"),
        pytest.param(doc_of(BASE), doc_of(dict(BASE, Sid="Pull2")), False, id="other-sid"),
        pytest.param(None, doc_of(), False, id="no-policy-vs-empty-policy"),
        pytest.param(None, None, True, id="no-policy-both"),
    ],
)
def test_documents_are_compared_by_meaning(left, right, same):
    assert policy.equivalent(left, right) is same
    assert policy.equivalent(right, left) is same
    assert (policy.normalize(left) == policy.normalize(right)) is same


# --- Parsing what AWS returns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, None, id="no-policy"),
        pytest.param('{"Version":"2012-10-17","Statement":[]}', {"Version": "2012-10-17", "Statement": []},
                     id="empty"),
        pytest.param(json.dumps({"Statement": CI_PUSH}, indent=2), {"Statement": CI_PUSH}, id="single-object"),
    ],
)
def test_parse_accepts_policies_aws_returns(text, expected):
    assert policy.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("{not json", "not valid JSON", id="not-json"),
        pytest.param("[]", "not a JSON object", id="list"),
        pytest.param('{"Statement": ["oops"]}', "not an object", id="string-statement"),
        pytest.param('{"Statement": 3}', "not an object", id="number-statement"),
    ],
)
def test_parse_rejects_policies_it_cannot_merge_into_safely(text, message):
    with pytest.raises(policy.PolicyDocumentError, match=message):
        policy.parse(text)


@pytest.mark.parametrize(("suffix", "ours"), [
    pytest.param(policy.statement_sid(CLUSTER, REFERENCE_ACTIONS)[len(PREFIX):], True, id="prefix-and-16-hex"),
    pytest.param("Notes", False, id="a-person-who-borrowed-the-prefix"),
    pytest.param("0123456789ABCDEF", False, id="upper-case-hex"),
    pytest.param("0123456789abcdef0", False, id="17-digits"),
    pytest.param("", False, id="the-bare-prefix"),
])
def test_only_sids_of_the_exact_form_are_ours(suffix: str, ours: bool) -> None:
    assert policy.is_ours({"Sid": PREFIX + suffix}, PREFIX) is ours


def test_a_human_statement_that_starts_with_our_prefix_is_kept() -> None:
    human = {"Sid": PREFIX + "KeepMe", "Effect": "Allow", "Principal": {"AWS": ROLE_A}, "Action": "ecr:ListImages"}
    current = {"Version": policy.POLICY_VERSION, "Statement": [human]}

    assert policy.merge(current, PREFIX, []) == current
    assert policy.owned_principals(current, PREFIX) == {}


@pytest.mark.parametrize("broken", [
    pytest.param({"AWS": 5}, id="a-number"),
    pytest.param({"AWS": [ROLE_A, 7]}, id="a-number-in-the-list"),
    pytest.param(["arn:aws:iam::123456789012:root"], id="a-list"),
])
def test_a_malformed_statement_of_ours_is_unreadable(broken: object) -> None:
    ours = {"Sid": policy.statement_sid(CLUSTER, REFERENCE_ACTIONS), "Effect": "Allow", "Principal": broken,
            "Action": list(REFERENCE_ACTIONS)}
    with pytest.raises(policy.PolicyDocumentError, match="Principal"):
        policy.check_ours({"Version": policy.POLICY_VERSION, "Statement": [ours]}, PREFIX)
