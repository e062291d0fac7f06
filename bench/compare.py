"""`python -m bench.compare A.json B.json`: whether two `bench.harness` results made the same AWS
and Kubernetes calls, scenario by scenario (issue 15: "the metrics add no calls").

`make bench-metrics` runs the same small burst with the operator's metrics port on and off
(`--no-metrics`) and compares them here. What is compared is what the operator decides to call:
the change-driven calls by operation, the drift-pass reads of every pass, and the steady state's
AWS and Kubernetes writes. Times and memory are left out: they differ run to run on a shared
machine, whatever the metrics do. Exit 0 when every compared figure is equal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """What one scenario's result says the operator called, with nothing that depends on timing."""
    steady = result.get("steady") or {}
    return {
        "change_calls": result.get("change_calls", {}),
        "drift_reads_per_pass": steady.get("drift_reads_per_pass", []),
        "steady_aws_writes": steady.get("aws_writes"),
        "steady_k8s_writes": steady.get("k8s_writes"),
    }


def differences(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[str]:
    """One line per figure that differs, keyed by scenario and size; none when the runs agree."""
    def keyed(results: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        return {(result["scenario"], result["n"]): figures(result) for result in results}

    one, other = keyed(first), keyed(second)
    lines = [f"{name} N={n}: only in one of the runs" for name, n in sorted(one.keys() ^ other.keys())]
    for key in sorted(one.keys() & other.keys()):
        for figure, value in one[key].items():
            if other[key][figure] != value:
                lines.append(f"{key[0]} N={key[1]} {figure}: {value} != {other[key][figure]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=pathlib.Path)
    parser.add_argument("second", type=pathlib.Path)
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text())["results"] for path in (args.first, args.second)]
    for results in runs:
        for result in results:
            print(f"{args.first.name if results is runs[0] else args.second.name}: {result['scenario']} "
                  f"N={result['n']} {json.dumps(figures(result), sort_keys=True)}")
    found = differences(*runs)
    print("\n".join(found) if found else "the same calls in both runs")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
