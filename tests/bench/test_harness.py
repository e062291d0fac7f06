"""The benchmark harness itself runs (a benchmark is not a test: nothing here asserts a duration)."""

from __future__ import annotations

import json
import pathlib

import pytest

from awsproxy.stats import Arrival
from bench import harness

pytestmark = pytest.mark.e2e


def test_lower_bound_counts_each_role_and_repository_once() -> None:
    scenario = harness.Scenario(grants=6, repositories=2, roles=2)
    floor = scenario.lower_bound()
    assert floor == {"GetRole": 2, "ListAttachedRolePolicies": 2, "TagRole": 2, "AttachRolePolicy": 2,
                     "GetRepositoryPolicy": 4, "SetRepositoryPolicy": 2}
    assert scenario.pass_floor() == {"GetRole": 2, "ListAttachedRolePolicies": 2, "GetRepositoryPolicy": 2}
    assert scenario.per_grant_design() > sum(floor.values())


def test_a_small_run_produces_every_measurement(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "result.json"

    assert harness.main(["--sizes", "4", "--resync", "2", "--steady-intervals", "2", "--drift-samples", "1",
                         "--out", str(out)]) == 0

    [result] = json.loads(out.read_text())["results"]
    assert result["n"] == 4
    assert result["scenario"] == "burst" and result["lower_bound_total"] > 0
    assert result["change_calls_uncaused"] == 0, "every call the operator makes names its cause"
    assert result["time_to_ready"]["grants"] == 4
    assert result["steady"]["aws_writes"] == 0, "a quiet steady state writes nothing to AWS"
    assert result["steady"]["k8s_writes"] == 0, "nor to Kubernetes"
    steady = result["steady"]
    assert steady["passes"] == 2 and len(steady["reads_per_pass_by_operation"]) == 2, "the window is whole passes"
    assert sum(steady["reads_per_pass"]) == steady["aws_reads"]
    assert steady["pass_floor"] == 6
    assert steady["reads_per_pass"] == [6, 6], "each pass reads each role and repository once, afresh"
    assert steady["drift_reads_per_pass"] == [6, 6], "and names the drift cause"
    assert len(result["drift_repair_s"]) == 1
    assert result["peak_rss_mib"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_the_timeline_is_one_json_line_per_request_in_arrival_order(tmp_path: pathlib.Path) -> None:
    calls = [Arrival(1.0, "iam", "GetRole", "change", "node-a"), Arrival(2.0, "ecr", "ListImages", "drift")]
    out = tmp_path / "runs" / "burst-10.jsonl"
    harness.write_timeline(out, calls)
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"at": 1.0, "service": "iam", "operation": "GetRole", "cause": "change", "subject": "node-a"},
        {"at": 2.0, "service": "ecr", "operation": "ListImages", "cause": "drift", "subject": ""}]


def test_a_runs_sandbox_is_removed_unless_kept(tmp_path: pathlib.Path) -> None:
    with harness.workdir("bench-x-", None) as temporary:
        (temporary / "operator.log").write_text("log")
    assert not temporary.exists()
    with harness.workdir("bench-x-", tmp_path / "keep") as kept:
        (kept / "operator.log").write_text("log")
    assert kept.parent == tmp_path / "keep" and (kept / "operator.log").read_text() == "log"
