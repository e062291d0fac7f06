"""The pure parts of the benchmark: bounds, the split by cause, percentiles, the targets (no sandbox)."""

from __future__ import annotations

import dataclasses

import pytest
from bench.scenarios import (
    Scenario,
    Target,
    by_operation,
    cached_reads,
    coalescing_windows,
    large_targets,
    per_pass,
    percentile,
    ready_times,
    split_by_cause,
    trickle_bound,
    trickle_schedule,
)

from bench import harness


@dataclasses.dataclass(frozen=True)
class FakeCall:
    at: float
    operation: str
    cause: str = "change"


def test_a_burst_trickle_bound_is_the_burst_lower_bound() -> None:
    scenario = Scenario.sized(100)

    assert trickle_bound(scenario, [0.0] * 100) == scenario.lower_bound()


def test_arrivals_within_the_quiet_window_share_one_write() -> None:
    assert coalescing_windows([0.0, 0.4, 0.8, 1.2]) == [[0.0, 0.4, 0.8, 1.2]]
    assert coalescing_windows([0.0, 0.6, 1.2]) == [[0.0], [0.6], [1.2]], "a gap over 0.5 s opens a new window"
    assert coalescing_windows([1.2, 0.0, 0.6]) == [[0.0], [0.6], [1.2]], "in time order"


def test_a_window_is_cut_at_the_longest_wait() -> None:
    steady_stream = [i * 0.25 for i in range(400)]  # 100 s of arrivals, never quiet

    windows = coalescing_windows(steady_stream, quiet=0.5, longest=60.0)

    assert [len(window) for window in windows] == [240, 160]


def test_role_reads_repeat_once_per_cache_ttl() -> None:
    assert cached_reads([0.0, 1.0, 59.0]) == 1
    assert cached_reads([0.0, 59.0, 60.0, 119.0, 120.0]) == 3
    assert cached_reads([i * 0.6 for i in range(1000)]) == 10, "a 10-minute trickle reads a role ten times"
    assert cached_reads([]) == 0


def test_trickle_bound_counts_windows_per_repository_and_reads_per_role() -> None:
    scenario = Scenario(grants=3, repositories=1, roles=1)  # every grant names bench/repo-0 and bench-role-0

    bound = trickle_bound(scenario, [0.0, 10.0, 70.0])

    assert bound == {"GetRole": 2, "ListAttachedRolePolicies": 2, "TagRole": 1, "AttachRolePolicy": 1,
                     "GetRepositoryPolicy": 6, "SetRepositoryPolicy": 3}


def test_an_even_trickle_spreads_n_grants_over_the_seconds() -> None:
    assert trickle_schedule(4, 60.0) == [0.0, 15.0, 30.0, 45.0]
    assert trickle_schedule(3, 0.0) == [0.0, 0.0, 0.0]


def test_a_slow_trickle_bound_lies_between_the_burst_and_one_write_per_grant() -> None:
    scenario = Scenario.sized(1000)

    bound = trickle_bound(scenario, trickle_schedule(1000, 600.0))

    burst = scenario.lower_bound()
    assert bound["TagRole"] == burst["TagRole"] and bound["AttachRolePolicy"] == burst["AttachRolePolicy"]
    assert burst["SetRepositoryPolicy"] < bound["SetRepositoryPolicy"]
    pairs = sum(len(scenario.repos_of(i)) for i in range(1000))
    assert bound["SetRepositoryPolicy"] <= pairs


def test_calls_split_by_cause_and_by_pass() -> None:
    calls = [FakeCall(1.0, "GetRole"), FakeCall(2.0, "GetRole", "drift"), FakeCall(3.0, "SetRepositoryPolicy", ""),
             FakeCall(4.0, "GetRepositoryPolicy", "drift"), FakeCall(6.0, "GetRole", "drift"),
             FakeCall(9.0, "GetRole", "drift")]

    change, drift = split_by_cause(calls)

    assert by_operation(change) == {"GetRole": 1, "SetRepositoryPolicy": 1}, "no cause counts as change-driven"
    assert [call.at for call in drift] == [2.0, 4.0, 6.0, 9.0]
    passes = per_pass(drift, [5.0, 8.0], since=0.0)
    assert [[call.at for call in made] for made in passes] == [[2.0, 4.0], [6.0]], "a pass still running is left out"


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_time_to_ready_is_from_each_grants_own_creation() -> None:
    created = {"a": 0.0, "b": 10.0, "c": 20.0}
    ready = {"a": 1.0, "b": 12.0, "c": 25.0}

    assert ready_times(created, ready) == {"p50_s": 2.0, "p99_s": 5.0, "last_s": 5.0, "grants": 3}


def test_large_targets_say_pass_or_miss() -> None:
    checks = {check.name: check for check in large_targets(
        peak_rss_mib=240.0, idle_rss_kib=90 * 1024, converged_rss_kib=90 * 1024 + 20 * 10_000, grants=10_000,
        change_calls=5600, lower_bound=5500, converge_s=370.0, create_s=40.0, steady_reads_per_pass=[2500],
        pass_floor=2500, steady_writes=0)}

    assert checks["peak_rss"].passed
    assert checks["rss_per_grant"].measured == 20.0 and not checks["rss_per_grant"].passed
    assert checks["change_calls"].measured == pytest.approx(1.0182) and checks["change_calls"].passed
    assert checks["converge"].limit == pytest.approx(1.2 * 5600 / 20 + 40.0)
    assert checks["converge"].passed
    assert checks["steady_floor"].passed and checks["steady_writes"].passed
    assert not Target("w", "zero writes", 1.0, 0.0, at_most=False).passed
    assert checks["peak_rss"].to_json()["pass"] is True


def test_scenarios_parse_into_runs() -> None:
    runs = harness.parse_runs("burst,trickle60,trickle", "10,100", "1000", 600.0)

    assert [(run.name, run.scenario.grants) for run in runs] == [
        ("burst", 10), ("burst", 100), ("trickle60", 1000), ("trickle600", 1000)]
    assert Scenario.large() == Scenario.sized(10_000)
