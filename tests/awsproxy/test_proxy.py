"""The proxy in front of a real moto server, seen through boto3 as the operator would see it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

import botocore.exceptions
import pytest
from botocore.config import Config

from awsproxy.faults import Fault, FaultConfig, Rates, decide
from awsproxy.proxy import AwsProxy, ProxyThread, run_in_thread
from awsproxy.stats import Stats
from ecr_sandbox.seed import repository_policy
from tests.awsproxy.conftest import ClientFactory, make_client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def http(url: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(),
                                     method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def outcome(call: Any) -> str:
    """What one client call saw: "ok", an AWS error code, or "connection"."""
    try:
        call()
    except botocore.exceptions.ClientError as error:
        return str(error.response["Error"]["Code"])
    except (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError):
        return "connection"
    return "ok"


# -- forwarding and counting ----------------------------------------------------------------------


def test_requests_are_forwarded_and_answers_returned(proxy: ProxyThread, via_proxy: ClientFactory,
                                                      direct: ClientFactory) -> None:
    repo, role = unique("proxy/fwd"), unique("proxy-fwd")
    created = via_proxy("ecr").create_repository(repositoryName=repo)["repository"]
    via_proxy("ecr").set_repository_policy(repositoryName=repo, policyText=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow", "Principal": "*",
                                                 "Action": "ecr:BatchGetImage"}]}))
    via_proxy("iam").create_role(RoleName=role, AssumeRolePolicyDocument="{}")

    assert direct("ecr").describe_repositories(repositoryNames=[repo])["repositories"][0]["repositoryArn"] \
        == created["repositoryArn"]
    assert repository_policy(via_proxy("ecr"), repo)["Statement"][0]["Sid"] == "A"
    assert via_proxy("iam").get_role(RoleName=role)["Role"]["Arn"] == direct("iam").get_role(RoleName=role)["Role"][
        "Arn"]
    assert via_proxy("sts").get_caller_identity()["Account"] == "123456789012"


def test_upstream_errors_pass_through_unchanged(via_proxy: ClientFactory) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as missing_role:
        via_proxy("iam").get_role(RoleName=unique("nope"))
    assert missing_role.value.response["Error"]["Code"] == "NoSuchEntity"
    with pytest.raises(botocore.exceptions.ClientError) as missing_repo:
        via_proxy("ecr").get_repository_policy(repositoryName=unique("nope"))
    assert missing_repo.value.response["Error"]["Code"] == "RepositoryNotFoundException"


def test_counts_are_exact_per_service_and_operation(proxy: ProxyThread, via_proxy: ClientFactory) -> None:
    repo = unique("proxy/count")
    ecr, iam = via_proxy("ecr"), via_proxy("iam")
    ecr.create_repository(repositoryName=repo)
    for _ in range(3):
        outcome(lambda: ecr.get_repository_policy(repositoryName=repo))  # RepositoryPolicyNotFound: still a call
    for _ in range(5):
        iam.list_roles()
    via_proxy("sts").get_caller_identity()

    stats = proxy.stats()
    assert stats.by_operation() == {"CreateRepository": 1, "GetRepositoryPolicy": 3, "ListRoles": 5,
                                    "GetCallerIdentity": 1}
    assert stats.count("GetRepositoryPolicy", service="ecr") == 3
    assert stats.count("ListRoles", service="iam", outcome="forwarded") == 5
    assert stats.count(service="iam") == 5
    assert stats.count(outcome="throttle") == 0
    assert stats.count("ListRoles", service="ecr") == 0


def test_reset_zeroes_the_counts(proxy: ProxyThread, via_proxy: ClientFactory) -> None:
    via_proxy("sts").get_caller_identity()
    before = proxy.stats()
    via_proxy("sts").get_caller_identity()
    assert (proxy.stats() - before).by_operation() == {"GetCallerIdentity": 1}
    proxy.reset()
    assert proxy.stats().by_operation() == {}


def test_the_timeline_lists_each_request_as_it_arrived(moto_url: str) -> None:
    with run_in_thread(moto_url, timeline=True) as proxy:
        before = time.time()
        make_client("sts", proxy.url).get_caller_identity()
        make_client("ecr", proxy.url).describe_repositories()
        after = time.time()
        calls = proxy.calls()
        assert [(call.service, call.operation) for call in calls] == [
            ("sts", "GetCallerIdentity"), ("ecr", "DescribeRepositories")]
        assert before <= calls[0].at <= calls[1].at <= after
        proxy.reset()
        assert proxy.calls() == []


def test_the_timeline_names_the_role_or_repository_each_request_is_about(moto_url: str) -> None:
    """What the benchmark tells repeated reads apart by (`bench.harness --timeline`)."""
    with run_in_thread(moto_url, timeline=True) as proxy:
        iam, ecr = make_client("iam", proxy.url), make_client("ecr", proxy.url)
        with contextlib.suppress(iam.exceptions.NoSuchEntityException):
            iam.get_role(RoleName="node-a")
        with contextlib.suppress(ecr.exceptions.RepositoryNotFoundException):
            ecr.get_repository_policy(repositoryName="ml/a")
        ecr.describe_repositories()
        assert [(call.operation, call.subject) for call in proxy.calls()] == [
            ("GetRole", "node-a"), ("GetRepositoryPolicy", "ml/a"), ("DescribeRepositories", "")]


def test_no_timeline_is_kept_unless_asked(proxy: ProxyThread, via_proxy: ClientFactory) -> None:
    via_proxy("sts").get_caller_identity()
    assert proxy.stats().by_operation() == {"GetCallerIdentity": 1} and proxy.calls() == []


# -- faults as boto3 sees them ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "call", "rates", "code", "status"),
    [
        pytest.param("iam", lambda c: c.list_roles(), FaultConfig(throttle=1.0), "Throttling", 400, id="iam-throttle"),
        pytest.param("sts", lambda c: c.get_caller_identity(), FaultConfig(throttle=1.0), "Throttling", 400,
                     id="sts-throttle"),
        pytest.param("ecr", lambda c: c.describe_repositories(), FaultConfig(throttle=1.0), "ThrottlingException",
                     400, id="ecr-throttle"),
        pytest.param("iam", lambda c: c.list_roles(), FaultConfig(error=1.0), "InternalFailure", 500,
                     id="iam-500"),
        pytest.param("ecr", lambda c: c.describe_repositories(), FaultConfig(error=1.0), "ServerException", 500,
                     id="ecr-500"),
    ],
)
def test_injected_errors_parse_as_the_aws_error(proxy: ProxyThread, via_proxy: ClientFactory, service: str,
                                                call: Any, rates: FaultConfig, code: str, status: int) -> None:
    proxy.set_faults(rates)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(via_proxy(service))
    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["ResponseMetadata"]["RequestId"]
    assert proxy.stats().count(outcome="forwarded") == 0, "an injected error never reaches AWS"


def test_botocore_retries_injected_throttling_as_it_would_aws(proxy: ProxyThread, via_proxy: ClientFactory) -> None:
    """Standard-mode retries treat the injected answers as throttling: calls succeed, with retries."""
    proxy.set_faults(throttle=0.3)
    iam = via_proxy("iam", Config(retries={"mode": "standard", "total_max_attempts": 10}))
    for _ in range(4):
        iam.list_roles()
    stats = proxy.stats()
    assert stats.count("ListRoles", outcome="forwarded") == 4
    assert stats.count("ListRoles", outcome="throttle") == stats.count("ListRoles") - 4 > 0


def test_a_dropped_connection_is_a_connection_error_and_never_reaches_aws(
    proxy: ProxyThread, via_proxy: ClientFactory, direct: ClientFactory
) -> None:
    repo = unique("proxy/drop")
    proxy.set_faults(drop=1.0)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        via_proxy("ecr").create_repository(repositoryName=repo)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        via_proxy("iam").list_roles()
    assert direct("ecr").describe_repositories()["repositories"] == [] or repo not in {
        item["repositoryName"] for item in direct("ecr").describe_repositories()["repositories"]}
    assert proxy.stats().count(outcome="drop") == 2
    assert proxy.stats().count(outcome="forwarded") == 0


def test_a_response_dropped_after_forwarding_hides_a_write_that_happened(
    proxy: ProxyThread, via_proxy: ClientFactory, direct: ClientFactory
) -> None:
    repo = unique("proxy/lost")
    proxy.set_faults(FaultConfig(operations={"CreateRepository": Rates(drop_after=1.0)}))
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        via_proxy("ecr").create_repository(repositoryName=repo)
    assert direct("ecr").describe_repositories(repositoryNames=[repo])["repositories"][0]["repositoryName"] == repo
    assert proxy.stats().count("CreateRepository", outcome="drop_after") == 1
    assert proxy.stats().count("CreateRepository", outcome="forwarded") == 1


def test_latency_is_added(proxy: ProxyThread, via_proxy: ClientFactory) -> None:
    sts = via_proxy("sts")
    sts.get_caller_identity()  # connect first
    proxy.set_faults(latency_ms=300)
    started = time.monotonic()
    sts.get_caller_identity()
    assert time.monotonic() - started >= 0.3
    assert proxy.stats().count(outcome="delayed") == 1


def test_per_operation_rates_fault_only_that_operation(proxy: ProxyThread, via_proxy: ClientFactory) -> None:
    proxy.set_faults(FaultConfig(operations={"iam:ListRoles": Rates(throttle=1.0)}))
    iam = via_proxy("iam")
    assert [outcome(iam.list_roles) for _ in range(3)] == ["Throttling"] * 3
    assert outcome(lambda: iam.list_policies(Scope="Local")) == "ok"
    assert outcome(via_proxy("sts").get_caller_identity) == "ok"


def test_each_fault_comes_at_its_rate_reproducibly_for_a_seed(proxy: ProxyThread, via_proxy: ClientFactory) -> None:
    """300 calls, one attempt each, seed 1234: the exact mix is fixed by the seed, and near the rates."""
    config = FaultConfig(throttle=0.3, error=0.05, drop=0.05, drop_after=0.05)

    def run() -> tuple[dict[str, int], Stats]:
        proxy.reset(seed=1234)
        proxy.set_faults(config)
        sts = via_proxy("sts")
        seen: dict[str, int] = {}
        for _ in range(300):
            kind = outcome(sts.get_caller_identity)
            seen[kind] = seen.get(kind, 0) + 1
        return seen, proxy.stats()

    seen, stats = run()
    injected = {fault.value: stats.count("GetCallerIdentity", outcome=fault.value) for fault in Fault}
    assert injected == {"throttle": 91, "error": 18, "drop": 11, "drop_after": 14}
    replay = random.Random(1234)
    expected = collections.Counter(decide(replay, config).fault for _ in range(300))
    assert injected == {fault.value: expected[fault] for fault in Fault}, "one decision per request, in order"
    for fault in Fault:
        assert injected[fault.value] / 300 == pytest.approx(config.rate(fault), abs=0.06)
    assert seen == {"Throttling": 91, "InternalFailure": 18, "connection": 11 + 14, "ok": 300 - 91 - 18 - 11 - 14}
    assert stats.count("GetCallerIdentity") == 300
    assert stats.count("GetCallerIdentity", outcome="forwarded") == 300 - 91 - 18 - 11
    assert run() == (seen, stats), "the same seed gives the same run"


# -- control over HTTP, and the other ways to run it --------------------------------------------------


def test_stats_and_config_over_http(proxy: ProxyThread, via_proxy: ClientFactory) -> None:
    via_proxy("sts").get_caller_identity()
    status, body = http(f"{proxy.url}/__awsproxy__/stats")
    assert status == 200
    assert Stats.from_json(body) == proxy.stats()
    assert body["totals"]["total"] == 1
    assert body["calls"][0]["service"] == "sts" and body["calls"][0]["operation"] == "GetCallerIdentity"

    status, body = http(f"{proxy.url}/__awsproxy__/config", {"throttle": 1.0})
    assert status == 200 and body["throttle"] == 1.0
    assert outcome(via_proxy("sts").get_caller_identity) == "Throttling"
    assert http(f"{proxy.url}/__awsproxy__/config")[1]["throttle"] == 1.0

    status, body = http(f"{proxy.url}/__awsproxy__/config", {"throttle": 0.9, "error": 0.9})
    assert status == 400 and "more than 1" in body["error"]
    assert proxy.proxy.faults.throttle == 1.0, "a refused config changes nothing"

    assert http(f"{proxy.url}/__awsproxy__/reset", {})[0] == 200
    assert proxy.stats().by_operation() == {}


def test_the_async_api(moto_url: str) -> None:
    async def scenario() -> tuple[str, Stats]:
        proxy = AwsProxy(moto_url, faults=FaultConfig(throttle=1.0), seed=1)
        url = await proxy.start("127.0.0.1", 0)
        try:
            loop = asyncio.get_running_loop()
            seen = await loop.run_in_executor(None, lambda: outcome(make_client("ecr", url).describe_repositories))
            return seen, proxy.stats()
        finally:
            await proxy.stop()

    seen, stats = asyncio.run(scenario())
    assert seen == "ThrottlingException"
    assert stats.by_operation("throttle") == {"DescribeRepositories": 1}


def test_the_command_line(moto_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "awsproxy", "--upstream", moto_url, "--port", "0", "--throttle", "1", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("awsproxy listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert outcome(make_client("iam", url).list_roles) == "Throttling"
        http(f"{url}/__awsproxy__/config", {"throttle": 0})
        assert outcome(make_client("iam", url).list_roles) == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_the_command_line_refuses_impossible_rates(moto_url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "awsproxy", "--upstream", moto_url, "--throttle", "2"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "throttle must be a probability" in done.stderr


def test_the_upstream_can_be_set_after_start(moto_url: str) -> None:
    """How a harness fronts an emulator that picks its port only after the proxy's URL is handed out."""
    with run_in_thread("http://127.0.0.1:9", seed=1) as handle:
        assert outcome(make_client("sts", handle.url).get_caller_identity) == "ServiceUnavailable"
        assert handle.stats().count("GetCallerIdentity", outcome="upstream_error") == 1
        handle.set_upstream(moto_url)
        assert outcome(make_client("sts", handle.url).get_caller_identity) == "ok"
