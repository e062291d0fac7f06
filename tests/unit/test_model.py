"""Spec parsing: what a grant means once the operator's defaults are applied, and what it refuses.

The CRD catches most mistakes at `kubectl apply` time, but not all (an older CRD, CEL turned off, or a
rule that needs the operator's own region and account). Every refusal names the field to fix.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from ecr_access.aws import catalog
from ecr_access.model import (
    REFERENCE_ACTIONS,
    Defaults,
    DeletionPolicy,
    GrantSpec,
    ManagedPolicy,
    RepositoryRef,
    RoleRef,
)
from ecr_access.spec import SpecError, parse_spec

# What the operator judges specs with: botocore's ECR actions and regions (aws.catalog).
_BOTO = boto3.session.Session(region_name="us-west-2")
CATALOG = catalog.load(_BOTO, _BOTO.client("ecr"))
DEFAULTS = Defaults(partition="aws", region="us-west-2", account="123456789012", catalog=CATALOG)
ACCOUNT = DEFAULTS.account
TRAINER = RepositoryRef("aws", "us-west-2", ACCOUNT, "ml/trainer")
CLOUD_ROLE = RoleRef("cld_abc123-cluster_node_role", ACCOUNT, "aws")

# The 12 pull actions of the reference procedure (reference/access-amazon-ecr.md), in its order.
REFERENCE_PROCEDURE_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview",
    "ecr:GetRepositoryPolicy",
    "ecr:ListImages",
    "ecr:ListTagsForResource",
]


def spec(**fields: Any) -> dict[str, Any]:
    """A valid spec (cloud-id role, one repository by name), with `fields` replacing its parts."""
    base: dict[str, Any] = {"role": {"anyscaleCloudId": "cld_abc123"}, "repositories": [{"name": "ml/trainer"}]}
    return {**base, **fields}


def grant(**fields: Any) -> GrantSpec:
    """The GrantSpec that `spec()` means, with `fields` replacing its parts."""
    base: dict[str, Any] = {
        "role": CLOUD_ROLE,
        "managed_policy": ManagedPolicy.READ_ONLY,
        "repositories": (TRAINER,),
        "actions": REFERENCE_ACTIONS,
        "deletion_policy": DeletionPolicy.DELETE,
        "suspend": False,
    }
    return GrantSpec(**{**base, **fields})


def repos(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return list(items)


VALID = [
    pytest.param(spec(), grant(), id="cloud-id-and-all-defaults"),
    pytest.param(
        spec(role={"name": "my-node-role"}),
        grant(role=RoleRef("my-node-role", ACCOUNT, "aws")),
        id="role-name",
    ),
    pytest.param(
        spec(role={"arn": "arn:aws:iam::210987654321:role/ml-nodes"}),
        grant(role=RoleRef("ml-nodes", "210987654321", "aws", arn="arn:aws:iam::210987654321:role/ml-nodes")),
        id="role-arn",
    ),
    pytest.param(
        spec(role={"arn": "arn:aws:iam::210987654321:role/team/ml/nodes"}),
        grant(role=RoleRef("nodes", "210987654321", "aws", arn="arn:aws:iam::210987654321:role/team/ml/nodes")),
        id="role-arn-with-path",
    ),
    pytest.param(
        spec(role={"arn": "arn:aws-cn:iam::210987654321:role/ml-nodes"}),
        grant(role=RoleRef("ml-nodes", "210987654321", "aws-cn", arn="arn:aws-cn:iam::210987654321:role/ml-nodes")),
        id="role-arn-aws-cn",
    ),
    pytest.param(
        spec(role={"arn": "arn:aws-us-gov:iam::210987654321:role/ml-nodes"}),
        grant(role=RoleRef("ml-nodes", "210987654321", "aws-us-gov",
                           arn="arn:aws-us-gov:iam::210987654321:role/ml-nodes")),
        id="role-arn-aws-us-gov",
    ),
    pytest.param(
        spec(role={"anyscaleCloudId": "cld_" + "x" * 42}),
        grant(role=RoleRef("cld_" + "x" * 42 + "-cluster_node_role", ACCOUNT, "aws")),
        id="longest-cloud-id-gives-a-64-char-role-name",
    ),
    pytest.param(
        spec(role={"name": "my-node-role", "arn": "", "anyscaleCloudId": None}),
        grant(role=RoleRef("my-node-role", ACCOUNT, "aws")),
        id="empty-alternatives-are-unset",
    ),
    pytest.param(
        spec(repositories=repos({"name": "ml/serving", "region": "eu-central-1", "registryId": "210987654321"})),
        grant(repositories=(RepositoryRef("aws", "eu-central-1", "210987654321", "ml/serving"),)),
        id="repository-explicit-region-and-registry",
    ),
    pytest.param(
        spec(repositories=repos({"arn": "arn:aws:ecr:us-east-1:210987654321:repository/ml/serving"})),
        grant(repositories=(RepositoryRef("aws", "us-east-1", "210987654321", "ml/serving"),)),
        id="repository-by-arn",
    ),
    pytest.param(
        spec(repositories=repos({"arn": "arn:aws-cn:ecr:cn-north-1:210987654321:repository/images"})),
        grant(repositories=(RepositoryRef("aws-cn", "cn-north-1", "210987654321", "images"),)),
        id="repository-arn-aws-cn",
    ),
    pytest.param(
        spec(repositories=repos({"arn": "arn:aws-us-gov:ecr:us-gov-west-1:210987654321:repository/a/b_c.d-e"})),
        grant(repositories=(RepositoryRef("aws-us-gov", "us-gov-west-1", "210987654321", "a/b_c.d-e"),)),
        id="repository-arn-aws-us-gov",
    ),
    pytest.param(
        spec(repositories=repos({"name": "ml/trainer"}, {"name": "ml/trainer", "region": "us-east-1"},
                                {"name": "ml/trainer", "registryId": "210987654321"})),
        grant(repositories=(TRAINER, RepositoryRef("aws", "us-east-1", ACCOUNT, "ml/trainer"),
                            RepositoryRef("aws", "us-west-2", "210987654321", "ml/trainer"))),
        id="same-name-other-region-or-registry-is-another-repository",
    ),
    pytest.param(
        spec(repositories=repos(*({"name": f"repo-{index:03d}"} for index in range(100)))),
        grant(repositories=tuple(RepositoryRef("aws", "us-west-2", ACCOUNT, f"repo-{index:03d}")
                                 for index in range(100))),
        id="100-repositories",
    ),
    pytest.param(spec(actions=[]), grant(), id="empty-actions-are-the-reference-actions"),
    pytest.param(spec(actions=None), grant(), id="null-actions-are-the-reference-actions"),
    pytest.param(
        spec(actions=["ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]),
        grant(actions=("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")),
        id="custom-actions-sorted-and-deduplicated",
    ),
    pytest.param(spec(actions=["ecr:*"]), grant(actions=("ecr:*",)), id="wildcard-action"),
    pytest.param(spec(managedPolicy="PullOnly"), grant(managed_policy=ManagedPolicy.PULL_ONLY), id="pull-only"),
    pytest.param(spec(managedPolicy="None"), grant(managed_policy=ManagedPolicy.NONE), id="no-managed-policy"),
    pytest.param(spec(deletionPolicy="Retain"), grant(deletion_policy=DeletionPolicy.RETAIN), id="retain"),
    pytest.param(spec(suspend=True), grant(suspend=True), id="suspended"),
    pytest.param(
        spec(managedPolicy=None, deletionPolicy=None, suspend=None),
        grant(),
        id="null-enums-and-suspend-take-their-defaults",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_specs(raw, expected):
    assert parse_spec(raw, DEFAULTS) == expected


def test_reference_actions_are_the_procedures_twelve_in_its_order():
    assert list(REFERENCE_ACTIONS) == REFERENCE_PROCEDURE_ACTIONS
    assert list(REFERENCE_ACTIONS) == sorted(REFERENCE_ACTIONS), "statements list actions sorted"


def test_the_same_repository_by_name_and_by_arn_has_one_identity():
    by_name = parse_spec(spec(repositories=[{"name": "ml/trainer"}]), DEFAULTS).repositories[0]
    by_arn = parse_spec(
        spec(repositories=[{"arn": "arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer"}]), DEFAULTS
    ).repositories[0]

    assert by_name == by_arn
    assert by_name.arn == "arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer"


def test_repository_by_name_takes_the_operators_partition():
    china = Defaults(partition="aws-cn", region="cn-north-1", account="210987654321", catalog=CATALOG)

    parsed = parse_spec(spec(), china)

    assert parsed.repositories[0].arn == "arn:aws-cn:ecr:cn-north-1:210987654321:repository/ml/trainer"
    assert parsed.role == RoleRef("cld_abc123-cluster_node_role", "210987654321", "aws-cn")


TOO_MANY = [{"name": f"repo-{index:03d}"} for index in range(101)]

INVALID = [
    pytest.param(None, "spec", "is required", id="no-spec"),
    pytest.param({"repositories": [{"name": "ml/trainer"}]}, "spec.role", "exactly one of", id="no-role"),
    pytest.param(spec(role={}), "spec.role", "got 0", id="empty-role"),
    pytest.param(spec(role={"name": "a", "anyscaleCloudId": "cld_abc123"}), "spec.role", "got 2", id="two-roles"),
    pytest.param(spec(role={"name": "a", "arn": "arn:aws:iam::123456789012:role/a", "anyscaleCloudId": "cld_x"}),
                 "spec.role", "got 3", id="three-roles"),
    pytest.param(spec(role="cld_abc123"), "spec.role", "exactly one of", id="role-not-an-object"),
    pytest.param(spec(role={"name": "has space"}), "spec.role.name", "not a valid IAM role name", id="bad-role-name"),
    pytest.param(spec(role={"name": "r" * 65}), "spec.role.name", "not a valid IAM role name",
                 id="role-name-too-long"),
    pytest.param(spec(role={"name": 42}), "spec.role.name", "must be a string", id="role-name-not-a-string"),
    pytest.param(spec(role={"arn": "arn:aws:iam::123456789012:user/bob"}), "spec.role.arn", "not an IAM role ARN",
                 id="user-arn"),
    pytest.param(spec(role={"arn": "arn:aws:iam::12345:role/r"}), "spec.role.arn", "not an IAM role ARN",
                 id="short-account"),
    pytest.param(spec(role={"arn": "arn:aws-eu:iam::123456789012:role/r"}), "spec.role.arn", "not an IAM role ARN",
                 id="unknown-partition"),
    pytest.param(spec(role={"anyscaleCloudId": "abc123"}), "spec.role.anyscaleCloudId", "not an Anyscale cloud id",
                 id="cloud-id-without-cld"),
    pytest.param(spec(role={"anyscaleCloudId": "cld_" + "x" * 43}), "spec.role.anyscaleCloudId",
                 "not an Anyscale cloud id", id="cloud-id-too-long-for-a-role-name"),
    pytest.param(spec(repositories=None), "spec.repositories", "at least one", id="no-repositories"),
    pytest.param(spec(repositories=[]), "spec.repositories", "at least one", id="empty-repositories"),
    pytest.param(spec(repositories="ml/trainer"), "spec.repositories", "at least one", id="repositories-a-string"),
    pytest.param(spec(repositories=TOO_MANY), "spec.repositories", "at most 100", id="101-repositories"),
    pytest.param(spec(repositories=["ml/trainer"]), "spec.repositories[0]", "must be an object",
                 id="repository-a-string"),
    pytest.param(spec(repositories=[{}]), "spec.repositories[0]", "either name", id="repository-empty"),
    pytest.param(spec(repositories=[{"name": "a", "arn": "arn:aws:ecr:us-west-2:123456789012:repository/a"}]),
                 "spec.repositories[0]", "not both", id="repository-name-and-arn"),
    pytest.param(spec(repositories=[{"arn": "arn:aws:ecr:us-west-2:123456789012:repository/a",
                                     "region": "us-west-2"}]),
                 "spec.repositories[0]", "do not set them with arn", id="region-with-arn"),
    pytest.param(spec(repositories=[{"arn": "arn:aws:ecr:us-west-2:123456789012:repository/a",
                                     "registryId": "123456789012"}]),
                 "spec.repositories[0]", "do not set them with arn", id="registry-with-arn"),
    pytest.param(spec(repositories=[{"arn": "arn:aws:s3:::bucket"}]), "spec.repositories[0].arn",
                 "not an ECR repository ARN", id="not-an-ecr-arn"),
    pytest.param(spec(repositories=[{"name": "ML/Trainer"}]), "spec.repositories[0].name",
                 "not a valid ECR repository name", id="upper-case-name"),
    pytest.param(spec(repositories=[{"name": "a"}]), "spec.repositories[0].name",
                 "not a valid ECR repository name", id="one-char-name"),
    pytest.param(spec(repositories=[{"name": "ml//trainer"}]), "spec.repositories[0].name",
                 "not a valid ECR repository name", id="empty-path-segment"),
    pytest.param(spec(repositories=[{"name": "ml/trainer", "region": "mars-1"}]), "spec.repositories[0].region",
                 "not an AWS region", id="bad-region"),
    pytest.param(spec(repositories=[{"name": "ml/trainer", "registryId": 123456789012}]),
                 "spec.repositories[0].registryId", "quote it in YAML", id="unquoted-registry-id"),
    pytest.param(spec(repositories=[{"name": "ml/trainer", "registryId": "12345"}]),
                 "spec.repositories[0].registryId", "12-digit", id="short-registry-id"),
    pytest.param(spec(repositories=[{"name": "ml/trainer"}, {"name": "ml/serving"}, {"name": "ml/trainer"}]),
                 "spec.repositories[2]", "same repository as spec.repositories[0]", id="duplicate-by-name"),
    pytest.param(spec(repositories=[{"name": "ml/trainer"},
                                    {"arn": "arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer"}]),
                 "spec.repositories[1]", "same repository as spec.repositories[0]", id="duplicate-by-name-and-arn"),
    pytest.param(spec(repositories=[{"name": "ml/trainer"},
                                    {"name": "ml/trainer", "region": "us-west-2", "registryId": "123456789012"}]),
                 "spec.repositories[1]", "arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer",
                 id="duplicate-by-defaults-spelled-out"),
    pytest.param(spec(actions=["ecr:BatchGetImage", "s3:GetObject"]), "spec.actions[1]", "not an ECR action",
                 id="non-ecr-action"),
    pytest.param(spec(actions=["BatchGetImage"]), "spec.actions[0]", "not an ECR action", id="action-without-ecr"),
    pytest.param(spec(actions="ecr:BatchGetImage"), "spec.actions", "must be a list", id="actions-a-string"),
    pytest.param(spec(actions=[f"ecr:Action{'x' * (index % 5 + 1)}{chr(65 + index % 26)}" for index in range(65)]),
                 "spec.actions", "at most 64", id="65-actions"),
    pytest.param(spec(managedPolicy="readonly"), "spec.managedPolicy", "ReadOnly, PullOnly, None",
                 id="managed-policy-wrong-case"),
    pytest.param(spec(deletionPolicy="Orphan"), "spec.deletionPolicy", "Delete, Retain", id="bad-deletion-policy"),
    pytest.param(spec(suspend="yes"), "spec.suspend", "true or false", id="suspend-yes"),
    pytest.param(spec(suspend=1), "spec.suspend", "true or false", id="suspend-one"),
]


@pytest.mark.parametrize(("raw", "field", "message"), INVALID)
def test_invalid_specs_name_the_field_to_fix(raw, field, message):
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, DEFAULTS)

    assert caught.value.field == field
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{field}: ")


def test_an_invalid_value_is_quoted_in_the_message():
    with pytest.raises(SpecError) as caught:
        parse_spec(spec(role={"arn": "arn:aws:iam::123456789012:user/bob"}), DEFAULTS)

    assert "'arn:aws:iam::123456789012:user/bob'" in caught.value.message


@pytest.mark.parametrize(
    ("policy", "partition", "arn"),
    [
        pytest.param(ManagedPolicy.READ_ONLY, "aws", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
                     id="read-only-aws"),
        pytest.param(ManagedPolicy.PULL_ONLY, "aws", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
                     id="pull-only-aws"),
        pytest.param(ManagedPolicy.READ_ONLY, "aws-cn",
                     "arn:aws-cn:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly", id="read-only-aws-cn"),
        pytest.param(ManagedPolicy.PULL_ONLY, "aws-cn",
                     "arn:aws-cn:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly", id="pull-only-aws-cn"),
        pytest.param(ManagedPolicy.READ_ONLY, "aws-us-gov",
                     "arn:aws-us-gov:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly", id="read-only-aws-us-gov"),
        pytest.param(ManagedPolicy.NONE, "aws", None, id="none"),
    ],
)
def test_managed_policy_arn(policy, partition, arn):
    assert policy.arn(partition) == arn


@pytest.mark.parametrize(
    ("role", "described"),
    [
        pytest.param(RoleRef("nodes", ACCOUNT, "aws", arn="arn:aws:iam::123456789012:role/p/nodes"),
                     "arn:aws:iam::123456789012:role/p/nodes", id="by-arn"),
        pytest.param(RoleRef("nodes", ACCOUNT, "aws"), "nodes", id="by-name"),
    ],
)
def test_role_describes_itself_as_the_user_spelled_it(role, described):
    assert role.describe() == described


def test_messages_name_the_role_once() -> None:
    role = parse_spec(spec(), DEFAULTS).role
    assert f"IAM role {role.describe()}" == "IAM role cld_abc123-cluster_node_role"


@pytest.mark.parametrize(("given", "expected"), [
    pytest.param(["ecr:batchgetimage", "ecr:BatchGetImage"], ("ecr:BatchGetImage",), id="case-insensitive-one-sid"),
    pytest.param(["ECR:GetDownloadUrlForLayer"], ("ecr:GetDownloadUrlForLayer",), id="service-prefix-too"),
    pytest.param(["ecr:Get*", "ecr:BatchGetImage"], ("ecr:BatchGetImage", "ecr:get*"), id="a-glob-that-matches"),
    pytest.param(["ecr:ReplicateImage"], ("ecr:ReplicateImage",), id="a-permission-only-action"),
])
def test_actions_are_spelled_as_iam_spells_them(given: list[str], expected: tuple[str, ...]) -> None:
    assert parse_spec(spec(actions=given), DEFAULTS).actions == expected


@pytest.mark.parametrize(("given", "message"), [
    pytest.param("ecr:BatchGetImages", "is not an ECR action", id="a-typo"),
    pytest.param("ecr:Pul*", "matches no ECR action", id="a-glob-matching-nothing"),
    pytest.param("ecr:AssumeRole", "is not an ECR action", id="another-services-action"),
])
def test_an_action_ecr_does_not_have_is_refused(given: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as raised:
        parse_spec(spec(actions=["ecr:BatchGetImage", given]), DEFAULTS)
    assert raised.value.field == "spec.actions[1]"


@pytest.mark.parametrize(("item", "field"), [
    pytest.param({"name": "ml/trainer", "region": "us-west-9"}, "spec.repositories[0].region", id="by-name"),
    pytest.param({"name": "ml/trainer", "region": "aa-east-9"}, "spec.repositories[0].region", id="made-up"),
    pytest.param({"arn": "arn:aws:ecr:us-west-9:123456789012:repository/ml/x"}, "spec.repositories[0].arn",
                 id="by-arn"),
    pytest.param({"arn": "arn:aws:ecr:cn-north-1:123456789012:repository/ml/x"}, "spec.repositories[0].arn",
                 id="a-region-of-another-partition"),
])
def test_a_region_ecr_does_not_run_in_is_refused(item: dict[str, str], field: str) -> None:
    with pytest.raises(SpecError, match="is not a region where Amazon ECR runs") as raised:
        parse_spec(spec(repositories=[item]), DEFAULTS)
    assert raised.value.field == field
