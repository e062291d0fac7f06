"""One grant cycle for both callers (`cycle`): what a handler and a drift pass report and retry.

AWS is in memory at the ports; the applied record still names a repository that was dropped from
the spec and does not answer, so the previous contribution cannot be settled yet."""

from __future__ import annotations

import asyncio
from typing import Any

from ecr_access import cycle
from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.grants import LiveGrant
from ecr_access.model import Defaults, GrantKey
from ecr_access.reconcile import ApplyMode, Reconciler
from ecr_access.spec import parse_spec
from tests.memory import Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
KEY = GrantKey("default", "g")
SPEC = parse_spec({"role": {"name": "node"}, "managedPolicy": "None", "repositories": [{"name": "kept"}]}, DEFAULTS)
APPLIED = parse_spec({"role": {"name": "node"}, "managedPolicy": "None",
                      "repositories": [{"name": "kept"}, {"name": "dropped"}]}, DEFAULTS)
TIMING = cycle.Timing(retry_delay=15.0, stalled_retry_delay=300.0)


def world() -> tuple[Reconciler, Grants]:
    ecr = FakeEcr("kept", "dropped")
    ecr.silent.add("dropped")
    reconciler = Reconciler(FakeIam(ACCOUNT, ["node"]), ecr, cluster_id="c", account=ACCOUNT,  # type: ignore[arg-type]
                            config=Config(coalesce_window=0.0, cache_ttl=0.0))
    live = Grants(DEFAULTS)
    live.live[KEY] = LiveGrant(KEY, SPEC, generation=1, applied=APPLIED)
    return reconciler, live


def test_a_handler_keeps_the_record_warns_and_retries_while_the_previous_spec_is_not_released() -> None:
    reconciler, live = world()

    report = asyncio.run(cycle.apply_and_report(
        reconciler, KEY, SPEC, live, generation=1, previous={}, applied=APPLIED, recorded='{"old": "record"}',
        mode=ApplyMode(), timing=TIMING, now=lambda: "T"))

    assert report.record is None, "the record keeps naming the dropped repository until it is released"
    assert [reason for reason, _ in report.unsettled] == ["PreviousSpecNotReleased"]
    assert report.retry == 15.0, "a transient leftover: retried soon"
    assert report.status["conditions"][0]["status"] == "True", "what the spec asks for holds"


def test_a_drift_pass_leaves_the_previous_spec_to_the_handlers_retries() -> None:
    """The drift loop writes no record, so it neither retries for the leftover nor posts its Event
    every retry delay: kopf retries the grant's own handler, which can move the record on."""
    reconciler, live = world()
    events: list[str] = []
    writes: list[Any] = []
    drift = DriftChecker(reconciler, interval=300.0, retry_delay=15.0,
                         write_status=lambda key, patch: writes.append(patch),
                         warn=lambda grant, reason, message: events.append(reason), now=lambda: "T")
    drift.indexes_ready(live)

    report = asyncio.run(drift.check())

    assert (report.checked, report.retrying, report.failed) == (1, 0, 0)
    assert drift.due_for_retry() == set()
    assert events == []
