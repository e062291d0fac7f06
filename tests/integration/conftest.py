"""Fixtures for integration tests: moto in-process (with AWS managed policies loaded), the real AWS
adapter, and a counter of AWS calls made through botocore's event hooks.

The counter sees every call the operator's clients make, by operation name, so tests can assert
"zero writes" exactly. `inject` makes chosen operations fail with a chosen AWS error before the
request is sent, which is how AccessDenied, LimitExceeded and throttling are tested: moto itself
never returns them.
"""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import moto.iam.models
import pytest
from moto import mock_aws
from moto.iam.aws_managed_policies import aws_managed_policies_data

from ecr_access.aws import catalog
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.model import Defaults, GrantKey, GrantSpec, RepositoryRef, RoleKey
from ecr_access.reconcile import LiveGrant, Reconciler, Tuning
from ecr_access.spec import parse_spec

ACCOUNT = "123456789012"
REGION = "us-west-2"
_BOTO = boto3.session.Session(region_name=REGION)  # what the operator judges specs with (aws.catalog)
DEFAULTS = Defaults(partition="aws", region=REGION, account=ACCOUNT, catalog=catalog.load(_BOTO, _BOTO.client("ecr")))
CLUSTER_ID = "test-cluster-uid"
CLOUD_ID = "cld_abc123"
NODE_ROLE = f"{CLOUD_ID}-cluster_node_role"
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
WRITES = {"SetRepositoryPolicy", "DeleteRepositoryPolicy", "AttachRolePolicy", "DetachRolePolicy", "TagRole",
          "UntagRole"}
FOREIGN = {
    "Sid": "TeamCiPush",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
    "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload"],
}


ECR_MANAGED_POLICIES = json.dumps({name: value for name, value in json.loads(aws_managed_policies_data).items()
                                   if name.startswith("AmazonEC2ContainerRegistry")})


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


@dataclass
class Calls:
    """AWS operations the operator called, in order; `inject` fails chosen ones."""

    made: list[str] = field(default_factory=list)
    failures: dict[str, collections.deque[tuple[int, str, str]]] = field(default_factory=dict)

    def count(self, operation: str) -> int:
        return self.made.count(operation)

    def writes(self) -> list[str]:
        return [name for name in self.made if name in WRITES]

    def clear(self) -> None:
        self.made.clear()

    def inject(self, operation: str, code: str, message: str = "injected", status: int = 400, times: int = 1) -> None:
        queue = self.failures.setdefault(operation, collections.deque())
        queue.extend([(status, code, message)] * times)

    def before_call(self, model: Any, **_: Any) -> Any:
        self.made.append(model.name)
        queue = self.failures.get(model.name)
        if queue:
            status, code, message = queue.popleft()
            return _Http(status), {"Error": {"Code": code, "Message": message},
                                   "ResponseMetadata": {"HTTPStatusCode": status}}
        return None


@dataclass
class World:
    """One moto account with helpers to set it up and read it back, plus the operator's pieces."""

    admin: boto3.session.Session
    session: AwsSession
    calls: Calls
    reconciler: Reconciler

    @property
    def iam(self) -> Any:
        return self.admin.client("iam")

    def ecr(self, region: str = REGION) -> Any:
        return self.admin.client("ecr", region_name=region)

    def create_role(self, name: str = NODE_ROLE, path: str = "/") -> str:
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        return str(self.iam.create_role(RoleName=name, Path=path,
                                        AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])

    def create_repository(self, name: str, policy: dict[str, Any] | None = None, region: str = REGION) -> RepositoryRef:
        self.ecr(region).create_repository(repositoryName=name)
        if policy is not None:
            self.ecr(region).set_repository_policy(repositoryName=name, policyText=json.dumps(policy))
        return RepositoryRef("aws", region, ACCOUNT, name)

    def policy(self, name: str, region: str = REGION) -> dict[str, Any] | None:
        try:
            text = self.ecr(region).get_repository_policy(repositoryName=name)["policyText"]
        except self.ecr(region).exceptions.RepositoryPolicyNotFoundException:
            return None
        return dict(json.loads(text))

    def statements(self, name: str, region: str = REGION) -> list[dict[str, Any]]:
        doc = self.policy(name, region)
        if doc is None:
            return []
        raw = doc["Statement"]
        return list(raw) if isinstance(raw, list) else [raw]

    def ours(self, name: str) -> list[dict[str, Any]]:
        return [item for item in self.statements(name) if str(item.get("Sid", "")).startswith(self.reconciler.prefix)]

    def attached(self, role: str = NODE_ROLE) -> set[str]:
        return {item["PolicyArn"] for item in self.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}


class Grants:
    """An in-memory `LiveGrants`: the set of live grants as kopf's indexes would hold them."""

    def __init__(self) -> None:
        self.live: dict[GrantKey, LiveGrant] = {}

    def add(self, name: str, spec: dict[str, Any] | GrantSpec, namespace: str = "default",
            **fields: Any) -> tuple[GrantKey, GrantSpec]:
        parsed = spec if isinstance(spec, GrantSpec) else parse_spec(spec, DEFAULTS)
        key = GrantKey(namespace, name)
        self.live[key] = LiveGrant(key, parsed, **fields)
        return key, parsed

    def remove(self, key: GrantKey) -> LiveGrant:
        return self.live.pop(key)

    def naming_repository(self, repo: RepositoryRef) -> list[LiveGrant]:
        return [grant for grant in self.live.values() if repo in grant.spec.repositories]

    def on_role(self, role: RoleKey) -> list[LiveGrant]:
        return [grant for grant in self.live.values() if grant.spec.role.key == role]

    def everything(self) -> list[LiveGrant]:
        return list(self.live.values())


def ledger(world: World, role: str = NODE_ROLE) -> dict[str, str]:
    """The role's `ecraccess.io/*` tags: the managed-policy ledger (`attachments`)."""
    tags = world.iam.get_role(RoleName=role)["Role"].get("Tags", [])
    return {item["Key"]: item["Value"] for item in tags if item["Key"].startswith("ecraccess.io/")}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # moto parses all ~1,600 AWS managed policies for every IAM backend it creates, several times a
    # test; the operator only ever touches the ECR ones, so those (and their neighbours) are all it gets.
    monkeypatch.setattr(moto.iam.models, "aws_managed_policies_data", ECR_MANAGED_POLICIES)
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        session = AwsSession.create(REGION)
        calls = Calls()
        session.session.events.register("before-call.*.*", calls.before_call)
        # fresh_age=0: every apply sees AWS as it is now (tests change AWS between applies within a second)
        reconciler = Reconciler(IamAdapter(session), EcrAdapter(session), cluster_id=CLUSTER_ID, account=ACCOUNT,
                                tuning=Tuning(fresh_age=0.0))
        yield World(boto3.session.Session(region_name=REGION), session, calls, reconciler)


@pytest.fixture
def grants() -> Grants:
    return Grants()


@pytest.fixture
def cluster(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A `tests.integration.cluster.Cluster` on `world`, with a clock that ticks a second per reading."""
    from ecr_access import handlers  # noqa: PLC0415 - only the handler tests need kopf
    from tests.integration.cluster import Cluster  # noqa: PLC0415 - it imports this module

    clock = (f"2026-01-01T00:00:{second:02d}Z" for second in itertools.count())
    monkeypatch.setattr(handlers, "now", lambda: next(clock))
    cluster = Cluster(world)
    yield cluster
    cluster.loop.close()


class PrincipalCheck:
    """What moto does not check and ECR does: every principal of a repository policy must exist.

    Registered on `before-call.ecr.SetRepositoryPolicy`, it refuses, with ECR's own error, a policy
    naming a role that moto's IAM does not have in this account (a role in another account counts
    as unknown, as a typo'd ARN there would be). `refused` counts the refusals.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.refused = 0
        self.accepted: set[str] = set()  # ARNs to take as existing (roles in another account)

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:
        document = json.loads(json.loads(params["body"])["policyText"])  # the request as sent
        raw = document.get("Statement", [])
        for statement in raw if isinstance(raw, list) else [raw]:
            principal = statement.get("Principal", {})
            value = principal.get("AWS", []) if isinstance(principal, dict) else []
            for arn in [value] if isinstance(value, str) else value:
                if not self._exists(arn):
                    self.refused += 1
                    return _Http(400), {"Error": {"Code": "InvalidParameterException", "Message": (
                        "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
                        "'Invalid repository policy provided'")}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    def _exists(self, arn: str) -> bool:
        if arn in self.accepted:
            return True
        if arn == "*" or arn.endswith(":root") or not arn.startswith(f"arn:aws:iam::{ACCOUNT}:role/"):
            return arn == "*" or arn.endswith(":root")
        try:
            self.world.iam.get_role(RoleName=arn.rsplit("/", 1)[1])
        except self.world.iam.exceptions.NoSuchEntityException:
            return False
        return True


@pytest.fixture
def principal_check(world: World) -> PrincipalCheck:
    check = PrincipalCheck(world)
    world.session.session.events.register_first("before-call.ecr.SetRepositoryPolicy", check)
    return check
