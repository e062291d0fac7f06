"""The access check (issue 16): which Deny statements block a grant's role, table-driven, and the
property that an Allow never changes the verdict."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, find, given
from hypothesis import strategies as st

from ecr_access import access
from ecr_access.model import REFERENCE_ACTIONS

ROLE = "arn:aws:iam::123456789012:role/cld_x-cluster_node_role"
OTHER = "arn:aws:iam::123456789012:role/someone-else"
ROOT = "arn:aws:iam::123456789012:root"
PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
OURS = {"Sid": "EcrAccessabc", "Effect": "Allow", "Principal": {"AWS": [ROLE]}, "Action": list(PULL)}


def deny(sid: str = "Block", **element: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Deny", **({"Principal": "*", "Action": "ecr:*"} | element)}


CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, bool]]]] = [
    ("Principal *, ecr:*", deny(), [("Block", "ecr:BatchGetImage", False)]),
    ("Principal AWS *", deny(Principal={"AWS": "*"}), [("Block", "ecr:BatchGetImage", False)]),
    ("the role's ARN", deny(Principal={"AWS": ROLE}, Action="ecr:BatchGetImage"),
     [("Block", "ecr:BatchGetImage", False)]),
    ("the role's ARN in a list", deny(Principal={"AWS": [OTHER, ROLE]}), [("Block", "ecr:BatchGetImage", False)]),
    ("the account root", deny(Principal={"AWS": ROOT}), [("Block", "ecr:BatchGetImage", False)]),
    ("the bare account id", deny(Principal={"AWS": "123456789012"}), [("Block", "ecr:BatchGetImage", False)]),
    ("another role: no effect", deny(Principal={"AWS": OTHER}), []),
    ("another account: no effect", deny(Principal={"AWS": "arn:aws:iam::210987654321:root"}), []),
    ("a service principal: no effect", deny(Principal={"Service": "ec2.amazonaws.com"}), []),
    ("NotPrincipal excluding another role covers the role", {"Sid": "NP", "Effect": "Deny",
     "NotPrincipal": {"AWS": OTHER}, "Action": "ecr:*"}, [("NP", "ecr:BatchGetImage", False)]),
    # Excluded by the rule, so never DeniedByPolicy; but AWS matches a NotPrincipal against the node's
    # assumed-role session, which neither lists: it may still deny, which cannot be judged (MayBeDenied).
    ("NotPrincipal excluding the role", {"Sid": "NP", "Effect": "Deny", "NotPrincipal": {"AWS": [ROLE]},
     "Action": "ecr:*"}, [("NP", "ecr:BatchGetImage", True)]),
    ("NotPrincipal excluding the account", {"Sid": "NP", "Effect": "Deny", "NotPrincipal": {"AWS": ROOT},
     "Action": "ecr:*"}, [("NP", "ecr:BatchGetImage", True)]),
    ("NotPrincipal *: nobody is denied", {"Sid": "NP", "Effect": "Deny", "NotPrincipal": "*", "Action": "ecr:*"}, []),
    ("NotAction not naming the pull actions", deny(Action=None, NotAction=["ecr:PutImage"]),
     [("Block", "ecr:BatchGetImage", False)]),
    ("NotAction naming every one of them", {"Sid": "NA", "Effect": "Deny", "Principal": "*",
     "NotAction": ["ecr:Batch*", "ecr:GetDownload*"]}, []),
    ("NotAction naming some of them", {"Sid": "NA", "Effect": "Deny", "Principal": "*",
     "NotAction": ["ecr:BatchGetImage"]}, [("NA", "ecr:GetDownloadUrlForLayer", False)]),
    ("a wildcard action", deny(Action=["ecr:Get*"]), [("Block", "ecr:GetDownloadUrlForLayer", False)]),
    ("a ? wildcard, any case", deny(Action="ECR:batchgetimag?"), [("Block", "ecr:BatchGetImage", False)]),
    ("*", deny(Action="*"), [("Block", "ecr:BatchGetImage", False)]),
    ("an action the grant does not have", deny(Action=["ecr:PutImage", "ecr:Delete*"]), []),
    ("another service's wildcard", deny(Action="s3:*"), []),
    ("a Condition", deny(Condition={"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}),
     [("Block", "ecr:BatchGetImage", True)]),
    ("no Sid", {"Effect": "Deny", "Principal": "*", "Action": "ecr:*"}, [("", "ecr:BatchGetImage", False)]),
    ("an Allow", {**OURS, "Sid": "Foreign"}, []),
]


@pytest.mark.parametrize(("statement", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_which_deny_blocks_the_role(statement: dict[str, Any], expected: list[tuple[str, str, bool]]) -> None:
    statement = {key: value for key, value in statement.items() if value is not None}
    document = {"Version": "2012-10-17", "Statement": [OURS, statement]}
    found = access.denials(document, ROLE, PULL)
    assert [(item.sid, item.action, item.conditional) for item in found] == expected


def test_an_unconditional_deny_comes_before_a_conditional_one() -> None:
    document = {"Statement": [deny("Maybe", Condition={"Bool": {"aws:SecureTransport": "false"}}), deny("Surely")]}
    assert [item.sid for item in access.denials(document, ROLE, PULL)] == ["Surely", "Maybe"]


def test_no_policy_denies_nothing() -> None:
    assert access.denials(None, ROLE, REFERENCE_ACTIONS) == []


PRINCIPALS = st.one_of(st.just("*"), st.fixed_dictionaries({"AWS": st.sampled_from([ROLE, OTHER, ROOT, "*"])}),
                       st.fixed_dictionaries({"AWS": st.lists(st.sampled_from([ROLE, OTHER, ROOT]), min_size=1)}))
ACTIONS = st.one_of(st.sampled_from(["*", "ecr:*", "ecr:Get*", "s3:*", *REFERENCE_ACTIONS]),
                    st.lists(st.sampled_from(["ecr:Batch*", "ecr:PutImage", *REFERENCE_ACTIONS]), min_size=1))
# Whom a statement names: with Principal, whom it covers; with NotPrincipal, whom it spares (the role's ARN
# or account there makes a Deny MayBeDenied, another role or none of them covers the role, `*` spares all).
WHOM = st.tuples(st.sampled_from(["Principal", "NotPrincipal"]), PRINCIPALS)
STATEMENTS = st.builds(
    lambda effect, whom, key, action, condition: {
        "Effect": effect, whom[0]: whom[1], key: action,
        **({"Condition": {"Bool": {"aws:SecureTransport": "false"}}} if condition else {})},
    st.sampled_from(["Allow", "Deny"]), WHOM, st.sampled_from(["Action", "NotAction"]), ACTIONS, st.booleans())
FOREIGN_ALLOWS = st.builds(
    lambda whom, action, condition: {"Sid": "ForeignAllow", "Effect": "Allow", whom[0]: whom[1], "Action": action,
                                     **({"Condition": condition} if condition else {})},
    WHOM, ACTIONS, st.sampled_from([None, {"Bool": {"aws:SecureTransport": "true"}}]))
SPARES_THE_ROLE = {"Effect": "Deny", "NotPrincipal": {"AWS": [ROLE]}, "Action": "ecr:*"}  # MayBeDenied
SPARES_ANOTHER = {"Effect": "Deny", "NotPrincipal": {"AWS": OTHER}, "Action": "ecr:*"}  # DeniedByPolicy


@given(st.lists(STATEMENTS, max_size=6), FOREIGN_ALLOWS, st.integers(min_value=0, max_value=6))
@example([SPARES_THE_ROLE], {"Sid": "ForeignAllow", "Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "*"}, 0)
@example([SPARES_ANOTHER, SPARES_THE_ROLE], {"Sid": "ForeignAllow", "Effect": "Allow",
                                             "NotPrincipal": {"AWS": OTHER}, "Action": "ecr:*"}, 1)
def test_adding_a_foreign_allow_never_changes_the_verdict(
        statements: list[dict[str, Any]], allow: dict[str, Any], where: int) -> None:
    before = access.denials({"Statement": statements}, ROLE, REFERENCE_ACTIONS)
    after = access.denials({"Statement": [*statements[:where], allow, *statements[where:]]}, ROLE, REFERENCE_ACTIONS)
    assert after == before



def _verdict(statement: dict[str, Any]) -> str:
    found = access.denials({"Statement": [statement]}, ROLE, REFERENCE_ACTIONS)
    if not found:
        return "spared"
    return "DeniedByPolicy" if not found[0].conditional else \
        "MayBeDenied (session)" if found[0].because.startswith("unless") else "MayBeDenied (condition)"


@pytest.mark.parametrize("verdict", ["DeniedByPolicy", "MayBeDenied (session)", "MayBeDenied (condition)", "spared"])
def test_the_generated_not_principal_denies_reach_every_verdict(verdict: str) -> None:
    # So that the property above is tried on NotPrincipal Denies that block, that may block and that spare.
    assert find(STATEMENTS, lambda item: "NotPrincipal" in item and item["Effect"] == "Deny"
                and _verdict(item) == verdict)
