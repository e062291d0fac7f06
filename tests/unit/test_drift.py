"""What one drift pass reads: each role and repository once, afresh, whatever the timing of the
passes. AWS is in memory at the ports, and each read takes time on the test's clock, as reads do
under the IAM rate limit, so that a pass's last reads are only seconds old when the next one begins."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter

import pytest

from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.model import Defaults
from ecr_access.ports import RoleInfo
from ecr_access.reconcile import Reconciler
from tests.memory import Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
INTERVAL = 20.0
READ_TAKES = 2.0  # seconds on the test's clock: a pass's six reads take 12 s, well inside the interval


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowIam(FakeIam):
    def __init__(self, clock: Clock, names: list[str]) -> None:
        super().__init__(ACCOUNT, names)
        self.clock = clock

    async def get_role(self, name: str) -> RoleInfo | None:
        self.clock.now += READ_TAKES
        return await super().get_role(name)

    async def list_attached_role_policies(self, role_name: str) -> frozenset[str]:
        self.clock.now += READ_TAKES
        return await super().list_attached_role_policies(role_name)


class SlowEcr(FakeEcr):
    def __init__(self, clock: Clock, *names: str) -> None:
        super().__init__(*names)
        self.clock = clock

    async def get_repository_policy(self, repo: object) -> str | None:
        self.clock.now += READ_TAKES
        return await super().get_repository_policy(repo)


def ours(ecr: FakeEcr, name: str) -> list[object]:
    text = ecr.policies[name]
    return [item for item in json.loads(text)["Statement"] if item["Sid"].startswith("EcrAccessGrant")] if text else []


def calls(iam: FakeIam, ecr: FakeEcr) -> Counter[str]:
    made = Counter(iam.calls + ecr.calls)
    iam.calls.clear()
    ecr.calls.clear()
    return made


def test_each_pass_reads_every_role_and_repository_afresh_even_what_the_last_pass_read_seconds_ago() -> None:
    """A pass begins one interval after the previous one began, which read its last answers only 8 s
    before: those must not be reused (that pass would miss drift made since), nor read twice."""
    clock = Clock()
    iam, ecr = SlowIam(clock, ["node-a", "node-b"]), SlowEcr(clock, "ml/a", "ml/b")
    reconciler = Reconciler(iam, ecr, cluster_id="c", account=ACCOUNT,  # type: ignore[arg-type]
                            config=Config(coalesce_window=0.0), clock=clock)
    live = Grants(DEFAULTS)
    for index, (role, repo) in enumerate([("node-a", "ml/a"), ("node-b", "ml/b"), ("node-a", "ml/b"),
                                          ("node-b", "ml/a")]):
        live.add(f"g{index}", {"role": {"name": role}, "repositories": [{"name": repo}]})
    drift = DriftChecker(reconciler, interval=INTERVAL, retry_delay=15.0, write_status=lambda key, patch: None,
                         warn=lambda grant, reason, message: None, now=lambda: "T")
    drift.indexes_ready(live)
    once = Counter({"GetRole": 2, "ListAttachedRolePolicies": 2, "GetRepositoryPolicy": 2})

    async def passes() -> list[tuple[Counter[str], bool]]:
        await drift.check()  # the first pass attaches and writes everything
        made = []
        for began in (1000.0, 1000.0 + INTERVAL, 1000.0 + 2 * INTERVAL):
            calls(iam, ecr)
            clock.now = began
            await drift.check()
            made.append((calls(iam, ecr), bool(ours(ecr, "ml/b"))))
            assert clock.now < began + INTERVAL, "each pass ends before the next begins"
            if began == 1000.0:
                ecr.policies["ml/b"] = None  # someone deletes ml/b's policy just after this pass read it
        return made

    (steady, _), (repairing, repaired), (after, _) = asyncio.run(passes())

    assert steady == once
    assert repaired, "the very next pass repaired the deleted policy"
    assert repairing == once + Counter({"SetRepositoryPolicy": 1, "GetRepositoryPolicy": 1}), (
        "each role and repository read once, and ml/b re-read to verify its repair")
    assert after == once, "whatever the pass before read late, this one reads it again, once"


def _failing_checker(live: Grants) -> DriftChecker:
    iam, ecr = FakeIam(ACCOUNT, ["node-a"]), FakeEcr("ml/a")
    reconciler = Reconciler(iam, ecr, cluster_id="c", account=ACCOUNT,  # type: ignore[arg-type]
                            config=Config(coalesce_window=0.0))
    drift = DriftChecker(reconciler, interval=INTERVAL, retry_delay=15.0, write_status=lambda key, patch: None,
                         warn=lambda grant, reason, message: None, now=lambda: "T")
    drift.indexes_ready(live)
    return drift


def test_a_failed_reconcile_now_check_names_the_grants_it_was_for(caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    live = Grants(DEFAULTS)
    key, _ = live.add("trainer", {"role": {"name": "node-a"}, "repositories": [{"name": "ml/a"}]}, namespace="team-ml")
    drift = _failing_checker(live)

    async def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the API server went away")

    monkeypatch.setattr(drift, "check_requested", fail)

    def logged() -> list[logging.LogRecord]:
        return [record for record in caplog.records if "Reconcile-now" in record.getMessage()]

    async def request_and_wait() -> None:
        drift.start()
        drift.request(key, "t1")
        for _ in range(1000):  # a few loop turns: the loop wakes, fails, logs
            if logged():
                break
            await asyncio.sleep(0)
        await drift.stop()

    with caplog.at_level(logging.ERROR, logger="ecr_access.drift"):
        asyncio.run(request_and_wait())
    [record] = logged()
    assert "team-ml/trainer" in record.getMessage()
    assert record.grant["namespace"] == "team-ml" and record.grant["name"] == "trainer"  # type: ignore[attr-defined]


def test_a_failed_check_of_one_grant_names_it(caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    live = Grants(DEFAULTS)
    live.add("trainer", {"role": {"name": "node-a"}, "repositories": [{"name": "ml/a"}]}, namespace="team-ml")
    drift = _failing_checker(live)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(drift, "_check_one", broken)
    with caplog.at_level(logging.ERROR, logger="ecr_access.drift"):
        report = asyncio.run(drift.check())
    assert report.failed == 1
    [record] = caplog.records
    assert "team-ml/trainer" in record.getMessage()
    assert record.grant["name"] == "trainer"  # type: ignore[attr-defined]
