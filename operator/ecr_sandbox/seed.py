"""What the sandbox puts in its emulated AWS account and its cluster, and how it, the demo and the tests read it back.

An Anyscale-style account: a node role named the way `anyscale cloud setup` names it, a role as
`anyscale cloud register --instance-iam-role-id` would name it, and two repositories, one of which
already holds someone else's statement that the operator must leave alone. Tests and the benchmark
create their own roles with the same `NODE_TRUST_POLICY`.

A second account, a central registry (`CENTRAL_ACCOUNT`): one repository with someone else's
statement, and the role the operator assumes there (`examples/central-registry.yaml` configures it
with an EcrAccessAccount, and grants the first account's node role pull on that repository). moto
routes calls made with assumed-role credentials to the role's account, which is how the seed
reaches it too (so the moto server must not be given MOTO_ACCOUNT_ID).

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
# The central registry account and what it holds (DESIGN §6).
CENTRAL_ACCOUNT = "210987654321"
CENTRAL_ROLE = "ecr-access-operator"  # what the operator assumes there (deploy/iam/trust-operator.json)
CENTRAL_REPOSITORY = "central/base-images"
CENTRAL_FOREIGN_STATEMENT = {
    "Sid": "CentralCiPush",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{CENTRAL_ACCOUNT}:root"},
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


def aws_client(aws_env: Mapping[str, str], service: str, region: str = REGION, account: str = ACCOUNT) -> Any:
    """A boto3 client pointed at the sandbox's moto server, in the sandbox's account or, as an
    administrator there, in `account` (by assuming a role in it: moto routes by credentials)."""
    session: Any = boto3.session.Session()
    keys = {"aws_access_key_id": aws_env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": aws_env["AWS_SECRET_ACCESS_KEY"]}
    if account != ACCOUNT:
        sts = session.client("sts", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name=region, **keys)
        answer = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/sandbox-admin", RoleSessionName="sandbox-seed")
        credentials = answer["Credentials"]
        keys = {"aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"]}
    return session.client(service, endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name=region, **keys)


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
    seed_central(aws_env)


def seed_central(aws_env: Mapping[str, str]) -> None:
    """The central registry account: the role the operator assumes (trusting the sandbox's account),
    and one repository with a foreign statement."""
    iam = aws_client(aws_env, "iam", account=CENTRAL_ACCOUNT)
    ecr = aws_client(aws_env, "ecr", account=CENTRAL_ACCOUNT)
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=CENTRAL_ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=CENTRAL_REPOSITORY)
    ecr.set_repository_policy(
        repositoryName=CENTRAL_REPOSITORY,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [CENTRAL_FOREIGN_STATEMENT]}),
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
    central = aws_client(aws_env, "ecr", account=CENTRAL_ACCOUNT)
    yield f"{CENTRAL_REPOSITORY} (central registry, account {CENTRAL_ACCOUNT})", repository_policy(
        central, CENTRAL_REPOSITORY)
