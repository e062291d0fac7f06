"""The operator's IAM policy and trust policies: least privilege, in step with the code and with the manifests.

The lead's integration test records the AWS calls the scenarios make; these tests check the file statically:
what it allows and refuses, that it covers every AWS operation the adapters implement, and that the trust
policies name the ServiceAccount the manifests create.
"""

from __future__ import annotations

import inspect
import json
import re

import pytest

from ecr_access import model
from ecr_access.aws import ecr, iam
from tests.deploy import iam_policy
from tests.deploy.manifests import DEPLOY, NAME, NAMESPACE, kustomize, one

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
ROLE = "arn:aws:iam::123456789012:role/cld_abc123-cluster_node_role"
REPO = "arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer"
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"


def _adapter_actions() -> set[str]:
    """The AWS operations the adapters implement: their public methods, named after the operation (STYLE.md)."""
    actions = set()
    for service, adapter in (("iam", iam.IamAdapter), ("ecr", ecr.EcrAdapter)):
        for name, _ in inspect.getmembers(adapter, inspect.isfunction):
            if not name.startswith("_"):
                actions.add(f"{service}:" + "".join(part.title() for part in name.split("_")))
    return actions


def test_policy_grants_exactly_the_operations_the_adapters_call() -> None:
    assert iam_policy.granted_actions() == _adapter_actions()


def test_statements_have_distinct_sids_and_plain_action_lists() -> None:
    sids = [statement["Sid"] for statement in iam_policy.statements()]
    assert sids == ["ReadWriteRepositoryPolicies", "ReadRoles", "AttachOnlyEcrManagedPolicies",
                    "TagRolesOnlyWithOurKeys"]
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
    for action in iam_policy.granted_actions():
        assert f"`{action}`" in readme, f"{action} is granted but not explained in deploy/iam/README.md"


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
