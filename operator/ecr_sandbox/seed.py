"""What the sandbox puts in its emulated AWS account and its cluster, and how it, the demo and the tests read it back.

An Anyscale-style account: a node role named the way `anyscale cloud setup` names it, a role as
`anyscale cloud register --instance-iam-role-id` would name it, and two repositories, one of which
already holds someone else's statement that the operator must leave alone. Tests and the benchmark
create their own roles with the same `NODE_TRUST_POLICY`.

In the cluster: `ALLOW_ALL_POLICY`, one EcrGrantPolicy that lets every namespace grant any role pull
on any repository, so that the examples, `make demo` and the tests that are not about tenancy work
under the operator's default policy mode (Enforce) as they did before policies existed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-west-2"
CLOUD_ID = "cld_sandbox123"
ROLES = (f"{CLOUD_ID}-cluster_node_role", "anyscale-registered-node-role")
REPOSITORIES = ("ml/trainer", "ml/serving")
# Someone else's statement, already in ml/serving: the operator must leave it exactly as it is.
FOREIGN_STATEMENT = {
    "Sid": "CiPushFromBuildAccount",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"],
}
# The trust policy of an EC2 instance role, which every node role the sandbox, the tests and the bench create has.
NODE_TRUST_POLICY: dict[str, Any] = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


# The sandbox's allow-all EcrGrantPolicy (DESIGN §5), applied after the CRDs and before the operator starts
# and the examples are applied; `--empty` applies none. Every namespace ({}), any role, any repository, any
# managed policy, and the reference's 12 pull actions only (actions: []): write actions still need a policy
# that lists them. A convenience of a single-user sandbox, not a recommendation: a cluster's policies are
# narrower (examples/policy-team.yaml), which is why this lives here and not in examples/.
SANDBOX_POLICY = "sandbox-allow-all"
ALLOW_ALL_POLICY: dict[str, Any] = {
    "apiVersion": "ecraccess.io/v1alpha1",
    "kind": "EcrGrantPolicy",
    "metadata": {"name": SANDBOX_POLICY, "labels": {"app.kubernetes.io/managed-by": "ecr-sandbox"}},
    "spec": {
        "namespaceSelector": {},
        "roles": ["*"],
        "repositories": ["*"],
        "managedPolicies": ["ReadOnly", "PullOnly", "None"],
        "actions": [],
    },
}


def aws_client(aws_env: Mapping[str, str], service: str, region: str = REGION) -> Any:
    """A boto3 client pointed at the sandbox's moto server."""
    session: Any = boto3.session.Session()
    return session.client(
        service,
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name=region,
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )


def seed_aws(aws_env: Mapping[str, str]) -> None:
    """An Anyscale-style account: node roles, and two repositories, one with a foreign statement."""
    iam = aws_client(aws_env, "iam")
    ecr = aws_client(aws_env, "ecr")
    trust = json.dumps(NODE_TRUST_POLICY)
    for role in ROLES:
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    for repo in REPOSITORIES:
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repo)
    ecr.set_repository_policy(
        repositoryName="ml/serving",
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN_STATEMENT]}),
    )


def repository_policy(ecr: Any, repo: str) -> dict[str, Any] | None:
    """`repo`'s policy document as the emulated ECR (`ecr`, a boto3 client) holds it; None when it has none."""
    try:
        text = ecr.get_repository_policy(repositoryName=repo)["policyText"]
    except ecr.exceptions.RepositoryPolicyNotFoundException:
        return None
    return dict(json.loads(text))


def repository_statements(ecr: Any, repo: str) -> list[dict[str, Any]]:
    """`repo`'s policy statements ([] when it has no policy; a lone statement object is a list of one)."""
    document = repository_policy(ecr, repo)
    if document is None:
        return []
    raw = document["Statement"]
    return list(raw) if isinstance(raw, list) else [raw]


def repository_policies(aws_env: Mapping[str, str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each sandbox repository's policy document (None when it has none), for the demo."""
    ecr = aws_client(aws_env, "ecr")
    for repo in REPOSITORIES:
        yield repo, repository_policy(ecr, repo)
