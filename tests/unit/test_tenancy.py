"""Judging a grant against the EcrGrantPolicies that select its namespace (`tenancy`, pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecr_access import tenancy
from ecr_access.model import Defaults, ManagedPolicy
from ecr_access.spec import parse_spec

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
NODE = f"arn:aws:iam::{ACCOUNT}:role/cld_abc-cluster_node_role"
OTHER = "arn:aws:iam::999999999999:role/attacker"
REPO = f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository"


def policy(name: str = "team", **spec: Any) -> tenancy.GrantPolicy:
    return tenancy.parse_policy(name, {"namespaceSelector": {"matchLabels": {"team": "ml"}},
                                       "roles": [f"arn:aws:iam::{ACCOUNT}:role/cld_*-cluster_node_role"],
                                       "repositories": [f"arn:aws:ecr:*:{ACCOUNT}:repository/ml/*"], **spec})


def grant(*repos: str, **extra: Any) -> Any:
    return parse_spec({"role": {"arn": extra.pop("arn", NODE)}, "repositories": [{"name": r} for r in repos],
                       **extra}, DEFAULTS)


@pytest.mark.parametrize(("pattern", "text", "fold", "matches"), [
    ("arn:aws:iam::1:role/*", "arn:aws:iam::1:role/a/b/c", False, True),  # '*' spans '/'
    ("arn:aws:iam::1:role/cld_*-node", "arn:aws:iam::1:role/cld_x-node", False, True),
    ("arn:aws:iam::1:role/cld_*-node", "arn:aws:iam::1:role/cld_x-node-2", False, False),  # anchored
    ("arn:aws:iam::1:role/x", "arn:aws:iam::1:role/X", False, False),  # ARNs: exact case
    ("ecr:put*", "ecr:PutImage", True, True),  # actions: any case
    ("ecr:Batch.et*", "ecr:BatchGetImage", True, False),  # '.' is a character, not a wildcard
    ("*", "", False, True),
])
def test_globs_use_star_only(pattern: str, text: str, fold: bool, matches: bool) -> None:
    assert tenancy.glob(pattern, text, fold=fold) is matches


@pytest.mark.parametrize(("selector", "labels", "selected"), [
    ({}, {}, True),
    ({"matchLabels": {"team": "ml"}}, {"team": "ml", "env": "prod"}, True),
    ({"matchLabels": {"team": "ml"}}, {"team": "web"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["ml", "data"]}]}, {"team": "data"}, True),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ml"]}]}, {}, True),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ml"]}]}, {"team": "ml"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"team": ""}, True),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {"team": "x"}, False),
    ({"matchLabels": {"team": "ml"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]},
     {"team": "ml", "env": "dev"}, False),  # every part must hold
    ({"matchLabels": {tenancy.NAME_LABEL: "ml-prod"}}, {}, True),  # the name label, set on every namespace
])
def test_selectors(selector: dict[str, Any], labels: dict[str, str], selected: bool) -> None:
    parsed = tenancy.parse_policy("p", {"namespaceSelector": selector, "roles": ["*"], "repositories": ["*"]})
    assert tenancy.judge([parsed], "ml-prod", labels, NODE, grant("ml/a")).permitted is selected


def verdict(policies: list[tenancy.GrantPolicy], spec: Any, labels: dict[str, str] | None = None,
            role: str = NODE, namespace: str = "ml") -> tenancy.Verdict:
    return tenancy.judge(policies, namespace, {"team": "ml"} if labels is None else labels, role, spec)


def test_no_policy_selecting_the_namespace_permits_nothing() -> None:
    found = verdict([policy()], grant("ml/a"), labels={"team": "web"}, namespace="web")
    assert not found.permitted and found.repositories == frozenset()
    assert "No EcrGrantPolicy selects namespace web" in found.message


def test_a_role_no_policy_allows() -> None:
    found = verdict([policy()], grant("ml/a", arn=OTHER), role=OTHER)
    assert not found.permitted
    assert OTHER in found.message and "namespace ml (team)" in found.message


def test_a_managed_policy_no_policy_allows() -> None:
    found = verdict([policy(managedPolicies=["None"])], grant("ml/a"))
    assert not found.permitted and "managedPolicy ReadOnly" in found.message
    assert verdict([policy(managedPolicies=["None"])], grant("ml/a", managedPolicy="None")).permitted


@pytest.mark.parametrize("actions", [["ecr:PutImage"], ["ecr:*"], ["ecr:SetRepositoryPolicy", "ecr:BatchGetImage"]])
def test_write_actions_are_refused_by_default_and_accepted_once_listed(actions: list[str]) -> None:
    spec = grant("ml/a", actions=actions)
    refused = verdict([policy()], spec)
    assert not refused.permitted
    outside = sorted(item for item in actions if item != "ecr:BatchGetImage")
    assert ", ".join(outside) in refused.message
    assert verdict([policy(actions=["ecr:*"])], spec).permitted
    assert verdict([policy(actions=[item.lower() for item in actions])], spec).permitted, "any case"


def test_the_reference_pull_actions_need_no_listing() -> None:
    assert verdict([policy()], grant("ml/a", actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"])).permitted


def test_only_the_repositories_a_permitting_policy_allows_are_permitted() -> None:
    spec = grant("ml/a", "web/b", "ml/c")
    found = verdict([policy()], spec)
    assert found.permitted
    assert sorted(repo.name for repo in found.repositories) == ["ml/a", "ml/c"]


def test_one_policy_must_allow_all_of_a_grant_not_a_patchwork() -> None:
    """The role from one policy and the write action from another do not add up to a permit."""
    pull_anyone = tenancy.parse_policy("pull", {"namespaceSelector": {}, "roles": [OTHER], "repositories": ["*"]})
    push_ours = policy("push", actions=["ecr:PutImage"])
    found = verdict([pull_anyone, push_ours], grant("ml/a", arn=OTHER, actions=["ecr:PutImage"]), role=OTHER)
    assert not found.permitted
    assert "ecr:PutImage" in found.message


def test_repositories_come_from_the_policies_that_permit_the_grant() -> None:
    narrow = policy("narrow", repositories=[f"{REPO}/ml/a"], managedPolicies=["None"])
    wide = policy("wide", repositories=["*"])
    found = verdict([narrow, wide], grant("ml/a", "ml/b", managedPolicy="None"))
    assert {repo.name for repo in found.repositories} == {"ml/a", "ml/b"}
    found = verdict([narrow, wide], grant("ml/a", "ml/b", managedPolicy="None", actions=["ecr:PutImage"]))
    assert not found.permitted


@pytest.mark.parametrize(("spec", "field"), [
    ({"roles": ["*"], "repositories": ["*"]}, "spec.namespaceSelector"),
    ({"namespaceSelector": {}, "roles": [], "repositories": ["*"]}, "spec.roles"),
    ({"namespaceSelector": {}, "roles": ["arn with space"], "repositories": ["*"]}, "spec.roles[0]"),
    ({"namespaceSelector": {}, "roles": ["*"], "repositories": ["ml/?"]}, "spec.repositories[0]"),
    ({"namespaceSelector": {}, "roles": ["*"], "repositories": ["*"], "managedPolicies": ["Admin"]},
     "spec.managedPolicies"),
    ({"namespaceSelector": {}, "roles": ["*"], "repositories": ["*"], "actions": ["ecr:Put Image"]},
     "spec.actions[0]"),
    ({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}, "roles": ["*"],
      "repositories": ["*"]}, "spec.namespaceSelector.matchExpressions[0].values"),
    ({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
      "roles": ["*"], "repositories": ["*"]}, "spec.namespaceSelector.matchExpressions[0].values"),
    ({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
      "roles": ["*"], "repositories": ["*"]}, "spec.namespaceSelector.matchExpressions[0].operator"),
])
def test_a_malformed_policy_names_its_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(tenancy.PolicyError) as raised:
        tenancy.parse_policy("bad", spec)
    assert raised.value.field == field


def test_managed_policies_default_to_all_three() -> None:
    assert policy().managed_policies == frozenset(ManagedPolicy)


# -- the property: never more than the union of what the selecting policies allow ----------------------

ROLES = [NODE, OTHER, f"arn:aws:iam::{ACCOUNT}:role/team/x"]
ROLE_GLOBS = ["*", NODE, f"arn:aws:iam::{ACCOUNT}:role/*", "arn:aws:iam::999999999999:role/*"]
REPOS = ["ml/a", "ml/b", "web/c"]
REPO_GLOBS = ["*", f"{REPO}/ml/*", f"{REPO}/web/c", f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/*"]
ACTIONS = ["ecr:BatchGetImage", "ecr:PutImage", "ecr:DeleteRepository"]
ACTION_GLOBS = ["ecr:*", "ecr:Put*", "ecr:deleterepository"]
SELECTORS = [{}, {"matchLabels": {"team": "ml"}}, {"matchExpressions": [{"key": "env", "operator": "Exists"}]},
             {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ml"]}]}]

policies_strategy = st.lists(st.builds(
    lambda index, selector, roles, repos, managed, actions: tenancy.parse_policy(f"p{index}", {
        "namespaceSelector": selector, "roles": roles, "repositories": repos, "managedPolicies": managed,
        "actions": actions}),
    st.integers(0, 99), st.sampled_from(SELECTORS), st.lists(st.sampled_from(ROLE_GLOBS), min_size=1, max_size=2),
    st.lists(st.sampled_from(REPO_GLOBS), min_size=1, max_size=2),
    st.lists(st.sampled_from(["ReadOnly", "PullOnly", "None"]), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(ACTION_GLOBS), max_size=2)), max_size=4)


@settings(max_examples=300, deadline=None)
@given(policies=policies_strategy, labels=st.sampled_from([{}, {"team": "ml"}, {"env": "prod"}]),
       role=st.sampled_from(ROLES), repos=st.lists(st.sampled_from(REPOS), min_size=1, max_size=3, unique=True),
       managed=st.sampled_from(["ReadOnly", "PullOnly", "None"]),
       actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True))
def test_a_grant_is_never_permitted_more_than_its_namespaces_policies_allow(
    policies: list[tenancy.GrantPolicy], labels: dict[str, str], role: str, repos: list[str], managed: str,
    actions: list[str],
) -> None:
    spec = grant(*repos, arn=role, managedPolicy=managed, actions=actions)
    found = tenancy.judge(policies, "ns", labels, role, spec)

    selecting = [item for item in policies if item.selector.selects({**labels, tenancy.NAME_LABEL: "ns"})]
    if found.permitted:
        assert any(item.allows_role(role) for item in selecting)
        assert any(spec.managed_policy in item.managed_policies for item in selecting)
        assert all(any(item.allows_action(action) for item in selecting) for action in spec.actions)
    else:
        assert found.repositories == frozenset() and found.message
    for repo in found.repositories:
        assert repo in spec.repositories
        assert any(item.allows_grant(role, spec.managed_policy, spec.actions) and item.allows_repository(repo.arn)
                   for item in selecting), "one selecting policy allows all of it on this repository"
