"""`make bench-large`: N=10,000 grants (500 repositories, 1,000 roles), one burst, against issue 17's
targets: peak RSS <= 250 MiB; <= 15 KiB per grant above the idle process; change-driven calls <=
1.02 x the lower bound; converge <= 1.2 x (calls / rate limit) + the creation time; the steady
state at its floor, with zero writes. Each target is printed and stored with its measured value and
whether it passed, in bench/results/<date>-large.json.
"""

from __future__ import annotations

import argparse
import pathlib
import signal
import sys
from typing import Any

from bench import harness
from bench.scenarios import Scenario, large_targets


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    steady = result["steady"] or {}
    checks = large_targets(
        peak_rss_mib=result["peak_rss_mib"], idle_rss_kib=result["idle_rss_mib"] * 1024,
        converged_rss_kib=result["converged_rss_mib"] * 1024, grants=result["n"],
        change_calls=result["change_calls_total"], lower_bound=result["lower_bound_total"],
        converge_s=result["converge_s"], create_s=result["create_s"],
        steady_reads_per_pass=steady.get("drift_reads_per_pass", []), pass_floor=result["pass_floor"],
        steady_writes=steady.get("aws_writes", 0) + steady.get("k8s_writes", 0))
    return [check.to_json() for check in checks]


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, harness._interrupt)
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grants", type=int, default=10_000, help="N (repositories N/20, roles N/10)")
    parser.add_argument("--resync", type=float, default=150.0,
                        help="resync interval: a pass reads 2,500 answers at 20/s per service, so > 125 s")
    parser.add_argument("--steady-intervals", type=int, default=1)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument("--timeline", type=pathlib.Path, default=None,
                        help="a file: write every request there, one JSON line each (`harness.Bench`)")
    parser.add_argument("--keep", type=pathlib.Path, default=None,
                        help="a directory: leave the run's sandbox (operator.log and the servers' logs) under it")
    args = parser.parse_args(argv)
    scenario = Scenario.large() if args.grants == 10_000 else Scenario.sized(args.grants)
    with harness.workdir("bench-large-", args.keep) as where:
        result = harness.Bench(harness.Run(scenario), args.resync, args.steady_intervals, 0, where,
                               timeline=args.timeline).run()
    print(harness.summary(result), flush=True)
    checks = targets(result)
    for check in checks:
        print(f"  {'pass' if check['pass'] else 'MISS'}  {check['target']}: measured {check['measured']} "
              f"(limit {check['limit']})", flush=True)
    out = harness.write([result], args.out, suffix="-large", targets=checks)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
