"""Fixtures for integration tests: moto in-process (with AWS managed policies loaded), the real AWS
adapter, and a counter of AWS calls made through botocore's event hooks.

The counter sees every call the operator's clients make, by operation name, so tests can assert
"zero writes" exactly. `inject` makes chosen operations fail with a chosen AWS error before the
request is sent, which is how AccessDenied, LimitExceeded and throttling are tested: moto itself
never returns them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Coroutine, Iterator, Mapping
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
from ecr_access.conditions import Outcome
from ecr_access.config import Config
from ecr_access.grants import LiveGrants
from ecr_access.model import Defaults, GrantKey, GrantSpec, RepositoryRef
from ecr_access.reconcile import ApplyMode, Reconciler
from ecr_access.sweep import Registry, sweep
from ecr_sandbox import seed
from tests import memory

ACCOUNT = "123456789012"
REGION = "us-west-2"
_BOTO = boto3.session.Session(region_name=REGION)  # what the operator judges specs with (aws.catalog)
DEFAULTS = Defaults(partition="aws", region=REGION, account=ACCOUNT, catalog=catalog.load(_BOTO, _BOTO.client("ecr")))
CLUSTER_ID = "test-cluster-uid"
HOME = Registry("aws", REGION, ACCOUNT)
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
    failures: dict[str, list[tuple[int, str, str, Mapping[str, str]]]] = field(default_factory=dict)

    def count(self, operation: str) -> int:
        return self.made.count(operation)

    def writes(self) -> list[str]:
        return [name for name in self.made if name in WRITES]

    def clear(self) -> None:
        self.made.clear()

    def inject(self, operation: str, code: str, message: str = "injected", status: int = 400, times: int = 1,
               where: Mapping[str, str] | None = None) -> None:
        """Fail the next `times` calls of `operation`; with `where`, only calls whose parameters
        include those (e.g. {"RoleName": "r1"}: the operator reads some things alongside others,
        so "the next call" alone may not be the one a test means)."""
        self.failures.setdefault(operation, []).extend([(status, code, message, where or {})] * times)

    def before_call(self, model: Any, params: Mapping[str, Any], **_: Any) -> Any:
        self.made.append(model.name)
        queue = self.failures.get(model.name, [])
        for index, (status, code, message, where) in enumerate(queue):
            if where and not where.items() <= _parameters(params).items():
                continue
            del queue[index]
            return _Http(status), {"Error": {"Code": code, "Message": message},
                                   "ResponseMetadata": {"HTTPStatusCode": status}}
        return None


def simulator(decisions: Mapping[str, str] | None = None) -> Callable[..., tuple[_Http, dict[str, Any]]]:
    """A botocore `before-call.iam.SimulatePrincipalPolicy` handler: IAM's policy simulator, which
    moto does not implement, answering a canned decision for each action in `decisions`, on every
    resource (ecr:GetAuthorizationToken "allowed" when none are given)."""
    results = [{"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": decision}
               for action, decision in (decisions or {"ecr:GetAuthorizationToken": "allowed"}).items()]

    def answer(**_: Any) -> tuple[_Http, dict[str, Any]]:
        return _Http(200), {"EvaluationResults": results, "IsTruncated": False,
                            "ResponseMetadata": {"HTTPStatusCode": 200}}

    return answer


def _parameters(request: Mapping[str, Any]) -> dict[str, Any]:
    """A call's parameters from botocore's serialized request: a dict for query protocols (IAM),
    JSON bytes for JSON ones (ECR)."""
    body = request.get("body")
    if isinstance(body, Mapping):
        return dict(body)
    if isinstance(body, bytes | str) and body:
        decoded = json.loads(body)
        return decoded if isinstance(decoded, dict) else {}
    return {}


def settings(**changes: Any) -> Config:
    """The operator's Config for in-process tests: by default every apply sees AWS as it is now
    (tests change AWS between applies within a second), and no sync waits for a burst."""
    return Config(**{"cache_ttl": 0.0, "coalesce_window": 0.0, **changes})


async def no_sleep(_: float) -> None:
    """The reconciler's pause between writes against a concurrent writer, skipped."""


@dataclass
class World:
    """One moto account with helpers to set it up and read it back, plus the operator's pieces.

    The operator runs on one event loop, as under kopf: `run` drives a coroutine on this world's
    loop, and `apply`, `release` and `sweep` drive the reconciler's async API with it."""

    admin: boto3.session.Session
    session: AwsSession
    calls: Calls
    reconciler: Reconciler
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(work)

    def apply(self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants,
              mode: ApplyMode = ApplyMode(), *, reconciler: Reconciler | None = None) -> Outcome:  # noqa: B008
        return memory.Driver(reconciler or self.reconciler, self.loop).apply(key, spec, applied, live, mode)

    def release(self, key: GrantKey, spec: GrantSpec | None, applied: GrantSpec | None, live: LiveGrants,
                uid: str = "", *, reconciler: Reconciler | None = None) -> Outcome:
        return memory.Driver(reconciler or self.reconciler, self.loop).release(key, spec, applied, live, uid)

    def sweep(self, live: LiveGrants, home: Registry = HOME, *, reconciler: Reconciler | None = None) -> list[Any]:
        return list(self.run(sweep((reconciler or self.reconciler).repositories, live, home)))

    def reconciler_with(self, cluster_id: str = CLUSTER_ID, clock: Any = None, **changes: Any) -> Reconciler:
        """Another reconciler (a restarted operator, or another cluster's) on this world's AWS,
        with these settings (`settings`) and clock."""
        extra = {"clock": clock} if clock is not None else {}
        return Reconciler(IamAdapter(self.session), EcrAdapter(self.session), cluster_id=cluster_id, account=ACCOUNT,
                          config=settings(**changes), sleep=no_sleep, **extra)

    @property
    def iam(self) -> Any:
        return self.admin.client("iam")

    def ecr(self, region: str = REGION) -> Any:
        return self.admin.client("ecr", region_name=region)

    def create_role(self, name: str = NODE_ROLE, path: str = "/") -> str:
        return str(self.iam.create_role(RoleName=name, Path=path,
                                        AssumeRolePolicyDocument=json.dumps(seed.NODE_TRUST_POLICY))["Role"]["Arn"])

    def create_repository(self, name: str, policy: dict[str, Any] | None = None, region: str = REGION) -> RepositoryRef:
        self.ecr(region).create_repository(repositoryName=name)
        if policy is not None:
            self.ecr(region).set_repository_policy(repositoryName=name, policyText=json.dumps(policy))
        return RepositoryRef("aws", region, ACCOUNT, name)

    def policy(self, name: str, region: str = REGION) -> dict[str, Any] | None:
        return seed.repository_policy(self.ecr(region), name)

    def statements(self, name: str, region: str = REGION) -> list[dict[str, Any]]:
        return seed.repository_statements(self.ecr(region), name)

    def ours(self, name: str) -> list[dict[str, Any]]:
        return [item for item in self.statements(name) if str(item.get("Sid", "")).startswith(self.reconciler.prefix)]

    def attached(self, role: str = NODE_ROLE) -> set[str]:
        return {item["PolicyArn"] for item in self.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}


class Grants(memory.Grants):
    """The live grants of one test (`tests.memory.Grants`), judged with this account's defaults."""

    def __init__(self) -> None:
        super().__init__(DEFAULTS)


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
        reconciler = Reconciler(IamAdapter(session), EcrAdapter(session), cluster_id=CLUSTER_ID, account=ACCOUNT,
                                config=settings(), sleep=no_sleep)
        world = World(boto3.session.Session(region_name=REGION), session, calls, reconciler)
        yield world
        world.loop.close()


@pytest.fixture
def grants() -> Grants:
    return Grants()


@pytest.fixture
def cluster(world: World, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A `tests.integration.cluster.Cluster` on `world`, with a clock that ticks a second per reading."""
    from ecr_access import handlers  # noqa: PLC0415 - only the handler tests need kopf
    from tests.integration.cluster import Cluster  # noqa: PLC0415 - it imports this module

    clock = (f"2026-01-01T00:00:{second:02d}Z" for second in itertools.count())
    monkeypatch.setattr(handlers, "now", lambda: next(clock))
    return Cluster(world)


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
