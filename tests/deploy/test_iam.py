"""The operator's IAM policy and trust policies: least privilege, in step with the code and with the manifests.

The lead's integration test records the AWS calls the scenarios make; these tests check the file statically:
what it allows and refuses, that it covers every AWS operation the adapters implement, and that the trust
policies name the ServiceAccount the manifests create. The same for the roles the operator assumes in other
accounts (DESIGN §6): registry-account-policy.json, cloud-account-policy.json and their trust policy,
trust-operator.json.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecr_access import model
from ecr_access.aws import ecr, iam
from tests.deploy import iam_policy
from tests.deploy.manifests import DEPLOY, NAME, NAMESPACE, ROOT, account_errors, kustomize, one

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
ROLE = "arn:aws:iam::123456789012:role/cld_abc123-cluster_node_role"
REPO = "arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer"
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
OTHER = "210987654321"  # an account other than the operator's (DESIGN §6's central registry)
OTHER_ROLE = f"arn:aws:iam::{OTHER}:role/cld_def456-cluster_node_role"
OTHER_REPO = f"arn:aws:ecr:us-west-2:{OTHER}:repository/central/base-images"
ACCOUNT_ROLE = f"arn:aws:iam::{OTHER}:role/ecr-access-operator"  # the role an EcrAccessAccount names
# What the operator may do about other accounts: assume the role there (and carry Pod Identity's session tags).
STS_ACTIONS = {"sts:AssumeRole", "sts:TagSession"}
ECR_ACTIONS = {"ecr:GetRepositoryPolicy", "ecr:SetRepositoryPolicy", "ecr:DeleteRepositoryPolicy",
               "ecr:DescribeRepositories"}
ROLE_ACTIONS = {"iam:GetRole", "iam:ListAttachedRolePolicies", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                "iam:TagRole", "iam:UntagRole"}
ACCOUNT_POLICIES = {iam_policy.REGISTRY_ACCOUNT_POLICY: ECR_ACTIONS, iam_policy.CLOUD_ACCOUNT_POLICY: ROLE_ACTIONS}


def _adapter_actions() -> set[str]:
    """The AWS operations the adapters implement: their public methods, named after the operation (STYLE.md)."""
    actions = set()
    for service, adapter in (("iam", iam.IamAdapter), ("ecr", ecr.EcrAdapter)):
        for name, _ in inspect.getmembers(adapter, inspect.isfunction):
            if not name.startswith("_"):
                actions.add(f"{service}:" + "".join(part.title() for part in name.split("_")))
    return actions


# Called only with ECR_ACCESS_VERIFY_IDENTITY=true: granted by a policy of its own, attached only then.
VERIFY_IDENTITY = iam_policy.IAM / "verify-identity-policy.json"
OPTIONAL_ACTIONS = {"iam:SimulatePrincipalPolicy"}


def test_policy_grants_exactly_the_operations_the_adapters_call() -> None:
    # Plus STS: botocore's assume-role credential fetcher calls AssumeRole (aws/session.py), no adapter.
    assert iam_policy.granted_actions() == _adapter_actions() - OPTIONAL_ACTIONS | STS_ACTIONS
    assert _adapter_actions() == ECR_ACTIONS | ROLE_ACTIONS | OPTIONAL_ACTIONS


def test_the_identity_check_has_a_policy_of_its_own_on_roles_only() -> None:
    policy = iam_policy.load_policy(VERIFY_IDENTITY)
    assert policy.granted_actions() == OPTIONAL_ACTIONS
    assert policy.allows("iam:SimulatePrincipalPolicy", ROLE)
    assert not policy.allows("iam:SimulatePrincipalPolicy", "arn:aws:iam::123456789012:user/admin")


def test_statements_have_distinct_sids_and_plain_action_lists() -> None:
    sids = [statement["Sid"] for statement in iam_policy.statements()]
    assert sids == ["ReadWriteRepositoryPolicies", "ReadRoles", "AttachOnlyEcrManagedPolicies",
                    "TagRolesOnlyWithOurKeys", "AssumeAccountRoles"]
    for statement in iam_policy.statements():
        assert isinstance(statement["Action"], list)
        assert all(isinstance(action, str) and "*" not in action for action in statement["Action"])
        assert statement["Resource"] != "*"


@pytest.mark.parametrize("partition", PARTITIONS)
def test_every_managed_policy_the_operator_attaches_is_allowed_in_every_partition(partition: str) -> None:
    role = f"arn:{partition}:iam::123456789012:role/node"
    for policy in model.ManagedPolicy:
        arn = policy.arn(partition)
        if arn is None:
            continue
        for action in ("iam:AttachRolePolicy", "iam:DetachRolePolicy"):
            assert iam_policy.allows(action, role, {"iam:PolicyARN": arn}), (action, arn)


@pytest.mark.parametrize("policy_arn", [
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser",
    "arn:aws:iam::123456789012:policy/AmazonEC2ContainerRegistryReadOnly",  # a customer policy of the same name
])
def test_attaching_any_other_policy_is_refused(policy_arn: str) -> None:
    assert not iam_policy.allows("iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": policy_arn})
    assert not iam_policy.allows("iam:AttachRolePolicy", ROLE)  # no PolicyARN in the request: no match


def test_condition_lists_only_the_two_ecr_managed_policies() -> None:
    attach = next(s for s in iam_policy.statements() if s["Sid"] == "AttachOnlyEcrManagedPolicies")
    listed = set(attach["Condition"]["ArnEquals"]["iam:PolicyARN"])
    expected = {policy.arn(partition) for policy in model.ManagedPolicy for partition in PARTITIONS} - {None}
    assert listed == expected


@pytest.mark.parametrize(("action", "resource", "allowed"), [
    ("ecr:GetRepositoryPolicy", REPO, True),
    ("ecr:SetRepositoryPolicy", REPO, True),
    ("ecr:DeleteRepositoryPolicy", "arn:aws-cn:ecr:cn-north-1:123456789012:repository/a/b", True),
    ("ecr:DescribeRepositories", REPO, True),
    ("iam:GetRole", ROLE, True),
    ("iam:ListAttachedRolePolicies", ROLE, True),
    # What a careless policy would allow, and this one must not:
    ("ecr:PutImage", REPO, False),
    ("ecr:BatchGetImage", REPO, False),
    ("ecr:DeleteRepository", REPO, False),
    ("ecr:SetRepositoryPolicy", "arn:aws:ecr:us-west-2:123456789012:registry", False),
    ("iam:PutRolePolicy", ROLE, False),
    ("iam:UpdateAssumeRolePolicy", ROLE, False),
    ("iam:CreateRole", ROLE, False),
    ("iam:GetRole", "arn:aws:iam::123456789012:user/alice", False),
    ("iam:PassRole", ROLE, False),
    ("iam:TagRole", ROLE, False),  # only with ecraccess.io/ keys (see test_iam_policy)
    ("iam:UntagRole", ROLE, False),
])
def test_policy_allows_the_operators_calls_and_nothing_else(action: str, resource: str, allowed: bool) -> None:
    assert iam_policy.allows(action, resource) is allowed


def test_readme_documents_every_granted_action() -> None:
    readme = (DEPLOY / "iam" / "README.md").read_text()
    granted = iam_policy.granted_actions() | {action for path in ACCOUNT_POLICIES
                                              for action in iam_policy.load_policy(path).granted_actions()}
    for action in granted:
        assert f"`{action}`" in readme, f"{action} is granted but not explained in deploy/iam/README.md"
    for path in (*ACCOUNT_POLICIES, iam_policy.TRUST_OPERATOR):
        assert f"`{path.name}`" in readme, f"deploy/iam/README.md does not say what {path.name} is for"


# --- Other accounts (DESIGN §6): what the operator may assume, and what the roles it assumes may do --------------


def _assume_statement() -> dict[str, Any]:
    (statement,) = [s for s in iam_policy.statements() if set(s["Action"]) & STS_ACTIONS]
    return statement


def test_operator_may_assume_only_roles_of_one_name_never_any_role() -> None:
    statement = _assume_statement()
    assert set(statement["Action"]) == STS_ACTIONS and "Condition" not in statement
    resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
    for resource in resources:
        assert resource != "*"
        # A role ARN with a fixed name: no wildcard after role/, so no other role of any account matches.
        assert re.fullmatch(r"arn:(\*|aws(-cn|-us-gov)?):iam::(\*|[0-9]{12}):role/[A-Za-z0-9_+=,.@/-]+",
                            resource), resource


@pytest.mark.parametrize(("role", "allowed"), [
    (ACCOUNT_ROLE, True),
    (f"arn:aws-cn:iam::{OTHER}:role/ecr-access-operator", True),
    (f"arn:aws:iam::{OTHER}:role/OrganizationAccountAccessRole", False),  # an account's admin role
    (f"arn:aws:iam::{OTHER}:role/ecr-access-operator-admin", False),
    (f"arn:aws:iam::{OTHER}:role/path/ecr-access-operator", False),
    (OTHER_ROLE, False),  # a node role: never assumed, only granted
    ("*", False),
])
def test_operator_policy_scopes_assume_role_to_the_account_roles(role: str, allowed: bool) -> None:
    for action in STS_ACTIONS:
        assert iam_policy.allows(action, role) is allowed, (action, role)
    assert not iam_policy.allows("sts:AssumeRoleWithWebIdentity", role)
    assert not iam_policy.allows("sts:GetFederationToken", role)


def _example_accounts() -> list[dict[str, Any]]:
    documents = [doc for path in sorted((ROOT / "examples").rglob("*.yaml"))
                 for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [doc for doc in documents if doc.get("kind") == "EcrAccessAccount"]


def test_every_example_account_names_a_role_the_operator_may_assume() -> None:
    accounts = _example_accounts()
    assert accounts, "examples/ holds an EcrAccessAccount (central-registry)"
    for account in accounts:
        assert iam_policy.allows("sts:AssumeRole", account["spec"]["assumeRole"]["roleArn"]), account["metadata"]


@pytest.mark.parametrize("path", sorted(ACCOUNT_POLICIES), ids=lambda path: path.name)
def test_account_policies_are_iam_documents_with_exactly_their_actions(path: Path) -> None:
    document = json.loads(path.read_text())
    assert set(document) == {"Version", "Statement"} and document["Version"] == "2012-10-17"
    assert isinstance(document["Statement"], list) and document["Statement"]
    sids = [statement["Sid"] for statement in document["Statement"]]
    assert len(set(sids)) == len(sids) and all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)
    for statement in document["Statement"]:
        assert set(statement) <= iam_policy.SUPPORTED_KEYS and statement["Effect"] == "Allow"
        assert isinstance(statement["Action"], list) and all("*" not in action for action in statement["Action"])
        # Every resource names the one account the role lives in, by the placeholder the README replaces.
        assert isinstance(statement["Resource"], str) and statement["Resource"] != "*"
        assert f":{iam_policy.PLACEHOLDER_ACCOUNT}:" in statement["Resource"], statement["Sid"]
    assert iam_policy.load_policy(path).granted_actions() == ACCOUNT_POLICIES[path]
    assert iam_policy.load_policy(path, account=OTHER).called_actions() == ACCOUNT_POLICIES[path]


@pytest.mark.parametrize("path", sorted(ACCOUNT_POLICIES), ids=lambda path: path.name)
def test_account_policies_mirror_the_operators_statements_for_one_account(path: Path) -> None:
    # The same Sids, actions and conditions as operator-policy.json, with its "any account" narrowed to one:
    # whatever the operator may do at home it may do there, and nothing else.
    own = {statement["Sid"]: statement for statement in iam_policy.statements()}
    for statement in iam_policy.load_policy(path).statements():
        mirrored = own[statement["Sid"]]
        assert sorted(statement["Action"]) == sorted(mirrored["Action"])
        assert statement.get("Condition") == mirrored.get("Condition")
        account_wide = mirrored["Resource"].replace(":*:repository/", f":{iam_policy.PLACEHOLDER_ACCOUNT}:repository/")
        assert statement["Resource"] == account_wide.replace("::*:role/", f"::{iam_policy.PLACEHOLDER_ACCOUNT}:role/")


@pytest.mark.parametrize(("action", "resource", "allowed"), [
    *((action, OTHER_REPO, True) for action in sorted(ECR_ACTIONS)),
    ("ecr:SetRepositoryPolicy", f"arn:aws-us-gov:ecr:us-gov-west-1:{OTHER}:repository/a/b", True),
    ("ecr:SetRepositoryPolicy", "arn:aws:ecr:us-west-2:123456789012:repository/central/base-images", False),
    ("ecr:SetRepositoryPolicy", f"arn:aws:ecr:us-west-2:{OTHER}:registry", False),
    ("ecr:PutImage", OTHER_REPO, False),
    ("ecr:BatchGetImage", OTHER_REPO, False),
    ("ecr:DeleteRepository", OTHER_REPO, False),
    ("ecr:PutRegistryPolicy", f"arn:aws:ecr:us-west-2:{OTHER}:registry", False),
    ("iam:GetRole", OTHER_ROLE, False),
])
def test_registry_account_policy_allows_the_repository_policy_calls_in_its_account(
        action: str, resource: str, allowed: bool) -> None:
    policy = iam_policy.load_policy(iam_policy.REGISTRY_ACCOUNT_POLICY, account=OTHER)
    assert policy.allows(action, resource) is allowed


@pytest.mark.parametrize(("action", "resource", "context", "allowed"), [
    ("iam:GetRole", OTHER_ROLE, {}, True),
    ("iam:ListAttachedRolePolicies", OTHER_ROLE, {}, True),
    ("iam:AttachRolePolicy", OTHER_ROLE, {"iam:PolicyARN": READ_ONLY}, True),
    ("iam:DetachRolePolicy", OTHER_ROLE, {"iam:PolicyARN": READ_ONLY}, True),
    ("iam:AttachRolePolicy", OTHER_ROLE, {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}, False),
    ("iam:AttachRolePolicy", OTHER_ROLE, {}, False),
    ("iam:TagRole", OTHER_ROLE, {"aws:TagKeys": ["ecraccess.io/attached", "ecraccess.io/0a1b2c3d"]}, True),
    ("iam:UntagRole", OTHER_ROLE, {"aws:TagKeys": ["ecraccess.io/0a1b2c3d"]}, True),
    ("iam:TagRole", OTHER_ROLE, {"aws:TagKeys": ["ecraccess.io/attached", "team"]}, False),
    ("iam:GetRole", ROLE, {}, False),  # a role in another account than the one the policy is for
    ("iam:GetRole", f"arn:aws:iam::{OTHER}:user/alice", {}, False),
    ("iam:PassRole", OTHER_ROLE, {}, False),
    ("iam:PutRolePolicy", OTHER_ROLE, {}, False),
    ("iam:UpdateAssumeRolePolicy", OTHER_ROLE, {}, False),
    ("ecr:SetRepositoryPolicy", OTHER_REPO, {}, False),
])
def test_cloud_account_policy_allows_the_role_calls_in_its_account(
        action: str, resource: str, context: dict[str, Any], allowed: bool) -> None:
    policy = iam_policy.load_policy(iam_policy.CLOUD_ACCOUNT_POLICY, account=OTHER)
    assert policy.allows(action, resource, context) is allowed


@pytest.mark.parametrize("partition", PARTITIONS)
def test_cloud_account_policy_attaches_every_managed_policy_in_every_partition(partition: str) -> None:
    policy = iam_policy.load_policy(iam_policy.CLOUD_ACCOUNT_POLICY, account=OTHER)
    for managed in model.ManagedPolicy:
        arn = managed.arn(partition)
        if arn is not None:
            role = f"arn:{partition}:iam::{OTHER}:role/node"
            assert policy.allows("iam:AttachRolePolicy", role, {"iam:PolicyARN": arn}), arn


def test_account_policies_without_the_account_filled_in_allow_nothing_real() -> None:
    # The placeholder is an account nobody has: a file created without the README's sed grants nothing.
    assert not iam_policy.load_policy(iam_policy.REGISTRY_ACCOUNT_POLICY).allows("ecr:SetRepositoryPolicy", OTHER_REPO)
    assert not iam_policy.load_policy(iam_policy.CLOUD_ACCOUNT_POLICY).allows("iam:GetRole", OTHER_ROLE)
    with pytest.raises(ValueError, match="12-digit"):
        iam_policy.load_policy(iam_policy.REGISTRY_ACCOUNT_POLICY, account="2109876")


def test_operator_policy_loads_the_same_through_load_policy() -> None:
    policy = iam_policy.load_policy()
    assert policy.statements() == iam_policy.statements()
    assert policy.granted_actions() == iam_policy.granted_actions()
    assert policy.called_actions() == iam_policy.granted_actions() - {"sts:TagSession"}


def _trust_operator() -> dict[str, Any]:
    return dict(json.loads(iam_policy.TRUST_OPERATOR.read_text()))


def test_trust_operator_lets_only_the_operators_role_assume_with_the_external_id() -> None:
    trust = _trust_operator()
    assert set(trust) == {"Version", "Statement"} and trust["Version"] == "2012-10-17"
    by_action = {statement["Action"]: statement for statement in trust["Statement"]}
    assert set(by_action) == STS_ACTIONS, "no other action: the role is for the operator to assume, nothing more"
    # The operator's role (the one operator-policy.json is attached to), in the placeholder of its account.
    operator_role = f"arn:aws:iam::{iam_policy.OPERATOR_PLACEHOLDER_ACCOUNT}:role/{NAME}"
    for statement in trust["Statement"]:
        assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": operator_role}
    assume = by_action["sts:AssumeRole"]
    (external_id,) = assume["Condition"]["StringEquals"].values()
    assert assume["Condition"] == {"StringEquals": {"sts:ExternalId": external_id}}
    # sts:TagSession grants no assume of its own, so it needs no external id.
    assert "Condition" not in by_action["sts:TagSession"]
    # The role the operator may assume is named as the roles the README creates in the other accounts.
    assert _assume_statement()["Resource"].endswith(f":role/{NAME}")


def test_trust_operators_example_external_id_is_one_the_account_crd_accepts() -> None:
    trust = _trust_operator()
    (assume,) = [statement for statement in trust["Statement"] if statement["Action"] == "sts:AssumeRole"]
    external_id = assume["Condition"]["StringEquals"]["sts:ExternalId"]
    account = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": "b"},
               "spec": {"accountId": OTHER, "assumeRole": {"roleArn": ACCOUNT_ROLE, "externalId": external_id}}}
    assert account_errors(account) == []


def test_trust_operator_without_its_condition_is_what_the_readme_says() -> None:
    # The README drops the external id with jq 'del(.Statement[0].Condition)': Statement[0] is the assume.
    trust = _trust_operator()
    assert trust["Statement"][0]["Action"] == "sts:AssumeRole" and "Condition" in trust["Statement"][0]
    assert "del(.Statement[0].Condition)" in (DEPLOY / "iam" / "README.md").read_text()


def _service_account() -> tuple[str, str]:
    account = one(kustomize("base"), "ServiceAccount")
    return account["metadata"]["namespace"], account["metadata"]["name"]


def test_irsa_trust_lets_only_the_operators_service_account_assume_the_role() -> None:
    trust = json.loads((DEPLOY / "iam" / "trust-irsa.json").read_text())
    (statement,) = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider = statement["Principal"]["Federated"].split(":oidc-provider/", 1)[1]
    conditions = statement["Condition"]["StringEquals"]
    namespace, name = _service_account()
    assert conditions[f"{provider}:sub"] == f"system:serviceaccount:{namespace}:{name}"
    assert conditions[f"{provider}:aud"] == "sts.amazonaws.com"


def test_pod_identity_trust_is_for_eks_pods_of_the_operators_service_account() -> None:
    trust = json.loads((DEPLOY / "iam" / "trust-pod-identity.json").read_text())
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert set(statement["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    conditions = statement["Condition"]["StringEquals"]
    assert (conditions["aws:RequestTag/kubernetes-namespace"],
            conditions["aws:RequestTag/kubernetes-service-account"]) == _service_account()


def test_irsa_overlay_annotates_the_service_account_with_a_role_arn() -> None:
    annotations = one(kustomize("overlays/irsa"), "ServiceAccount")["metadata"].get("annotations", {})
    assert re.fullmatch(r"arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[\w+=,.@/-]+",
                        annotations["eks.amazonaws.com/role-arn"])


@pytest.mark.parametrize("directory", ["base", "overlays/pod-identity", "overlays/argocd"])
def test_other_installs_carry_no_irsa_annotation(directory: str) -> None:
    # With EKS Pod Identity an IRSA annotation would make the SDK try web identity first, with a role that may
    # not trust this cluster.
    annotations = one(kustomize(directory), "ServiceAccount")["metadata"].get("annotations") or {}
    assert "eks.amazonaws.com/role-arn" not in annotations


def test_service_account_is_the_one_the_trust_policies_name() -> None:
    assert _service_account() == (NAMESPACE, NAME)
