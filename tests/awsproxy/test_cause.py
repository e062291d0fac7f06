"""Why the operator calls AWS, on the wire: the operator's AWS adapter puts the cause in effect
(`ecr_access.cause`) on each request's User-Agent, and the proxy counts calls by it. This is how
the benchmark tells what grant changes cost from what drift passes cost, and what CloudTrail
shows an auditor; the metric carries it too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from awsproxy.protocol import identify
from awsproxy.proxy import ProxyThread, run_in_thread
from ecr_access import cause
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.metrics import Metrics
from ecr_access.model import RepositoryRef

from .conftest import REGION, make_client

REPO = RepositoryRef("aws", REGION, "123456789012", "cause/a")


@pytest.fixture
def counting(moto_url: str) -> Iterator[ProxyThread]:
    with run_in_thread(moto_url, seed=7, timeline=True) as handle:
        yield handle


@pytest.mark.parametrize(("agent", "expected"), [
    ("Boto3/1.35 md/Botocore#1.35 ecr-access-cause/drift", "drift"),
    ("ecr-access-cause/sweep", "sweep"),
    ("Boto3/1.35 Botocore/1.35", ""),
    ("Boto3/1.35 not-ecr-access-cause/drift", ""),
])
def test_the_cause_is_read_from_the_user_agent(agent: str, expected: str) -> None:
    call = identify("POST", "/", "", {"User-Agent": agent, "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921."
                                      "GetRepositoryPolicy"}, b"{}")
    assert (call.operation, call.cause) == ("GetRepositoryPolicy", expected)


def test_each_call_of_the_adapter_carries_the_cause_it_was_made_for(
    counting: ProxyThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"AWS_ENDPOINT_URL": counting.url, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    make_client("ecr", counting.url).create_repository(repositoryName=REPO.name)
    metrics = Metrics()
    session = AwsSession.create(REGION, metrics=metrics)
    ecr, iam = EcrAdapter(session), IamAdapter(session)

    async def calls() -> None:
        await ecr.get_repository_policy(REPO)  # a grant's change: the default
        with cause.acting_for(cause.DRIFT):
            await ecr.get_repository_policy(REPO)
            await asyncio.ensure_future(iam.get_role("missing-role"))  # a task the pass started is the pass's
        with cause.acting_for(cause.SWEEP):
            await ecr.get_repository_policy(REPO)
        await iam.get_role("missing-role")

    asyncio.run(calls())

    made = [(call.operation, call.cause) for call in counting.calls() if call.operation != "CreateRepository"]
    assert made == [("GetRepositoryPolicy", "change"), ("GetRepositoryPolicy", "drift"), ("GetRole", "drift"),
                    ("GetRepositoryPolicy", "sweep"), ("GetRole", "change")]
    sample = metrics.registry.get_sample_value
    for who, count in (("change", 1), ("drift", 1), ("sweep", 1)):
        assert sample("ecr_access_aws_requests_total", {
            "service": "ecr", "operation": "GetRepositoryPolicy", "code": "RepositoryPolicyNotFoundException",
            "cause": who}) == count, who


def test_an_unknown_cause_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown cause"), cause.acting_for("burst"):
        pass
