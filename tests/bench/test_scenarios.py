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
    assert cached_reads([0.0, 59.0, 61.5, 119.0, 123.0]) == 3
    assert cached_reads([0.0, 60.0, 120.0]) == 2, "the answer from 0 s still does at 60 s, not at 120 s"
    assert cached_reads([i * 0.6 for i in range(1000)]) == 10, "one read each 61.2 s, over 10 minutes"
    assert cached_reads([]) == 0


def test_trickle_bound_writes_only_for_a_window_that_brings_a_new_role() -> None:
    scenario = Scenario(grants=4, repositories=1, roles=2)  # all name bench/repo-0; roles 0, 1, 0, 1

    bound = trickle_bound(scenario, [0.0, 10.0, 30.0, 100.0])

    # role 0 at 0 s: read, write, re-read; role 1 at 10 s: the same; role 0 again at 30 s: the policy
    # re-read at 10 s already holds it; role 1 again at 100 s: over cache_ttl since the last read, one read
    assert bound == {"GetRole": 3, "ListAttachedRolePolicies": 3, "TagRole": 2, "AttachRolePolicy": 2,
                     "GetRepositoryPolicy": 5, "SetRepositoryPolicy": 2}


def test_trickle_bound_reads_a_role_again_after_cache_ttl() -> None:
    scenario = Scenario(grants=3, repositories=1, roles=1)

    bound = trickle_bound(scenario, [0.0, 10.0, 70.0])

    assert bound["GetRole"] == bound["ListAttachedRolePolicies"] == 2
    assert bound["TagRole"] == bound["AttachRolePolicy"] == 1
    assert bound["SetRepositoryPolicy"] == 1 and bound["GetRepositoryPolicy"] == 3


def test_an_even_trickle_spreads_n_grants_over_the_seconds() -> None:
    assert trickle_schedule(4, 60.0) == [0.0, 15.0, 30.0, 45.0]
    assert trickle_schedule(3, 0.0) == [0.0, 0.0, 0.0]


def test_a_slow_trickle_bound_lies_between_the_burst_and_one_write_per_grant() -> None:
    scenario = Scenario.sized(1000)

    bound = trickle_bound(scenario, trickle_schedule(1000, 600.0))

    burst = scenario.lower_bound()
    assert bound["TagRole"] == burst["TagRole"] and bound["AttachRolePolicy"] == burst["AttachRolePolicy"]
    assert burst["SetRepositoryPolicy"] <= bound["SetRepositoryPolicy"]
    pairs = {(scenario.role_of(i), repo) for i in range(1000) for repo in scenario.repos_of(i)}
    assert bound["SetRepositoryPolicy"] <= len(pairs), "at most one write per role a repository gains"
    assert burst["GetRole"] < bound["GetRole"], "roles are read again as the cache expires"


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
