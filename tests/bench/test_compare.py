"""bench.compare: equal runs agree, and any difference in what the operator called is named."""

from __future__ import annotations

import copy
from typing import Any

from bench import compare


def result(gets: int = 5, writes: int = 0) -> dict[str, Any]:
    return {"scenario": "burst", "n": 100, "converge_s": 3.1,
            "change_calls": {"GetRole": gets, "SetRepositoryPolicy": 5},
            "steady": {"drift_reads_per_pass": [25, 25], "aws_writes": writes, "k8s_writes": 0}}


def test_runs_that_called_the_same_agree_whatever_their_timing() -> None:
    other = copy.deepcopy(result())
    other["converge_s"] = 9.9

    assert compare.differences([result()], [other]) == []


def test_a_different_call_count_or_steady_write_is_named() -> None:
    found = compare.differences([result()], [result(gets=6, writes=1)])

    assert any("change_calls" in line for line in found)
    assert any("steady_aws_writes: 0 != 1" in line for line in found)


def test_a_scenario_in_one_run_only_is_a_difference() -> None:
    other = dict(result(), n=10)

    assert len(compare.differences([result()], [other])) == 2
