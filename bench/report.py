"""What the harness prints and stores: the scenarios named on its command line, a one-paragraph
summary of each result, and the results file."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

from bench.scenarios import Run, Scenario

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def parse_runs(scenarios: str, sizes: str, trickle_sizes: str, trickle_seconds: float) -> list[Run]:
    """`burst` at each of `sizes`; `trickle` (over `trickle_seconds`) or `trickleS` (over S s) at each
    of `trickle_sizes`."""
    runs = []
    for name in (item.strip() for item in scenarios.split(",") if item.strip()):
        if name == "burst":
            runs += [Run(Scenario.sized(int(n))) for n in sizes.split(",") if n]
        elif name.startswith("trickle"):
            spread = float(name.removeprefix("trickle") or trickle_seconds)
            runs += [Run(Scenario.sized(int(n)), spread) for n in trickle_sizes.split(",") if n]
        else:
            raise SystemExit(f"unknown scenario {name!r}: burst, trickle or trickleS")
    return runs


def summary(result: dict[str, Any]) -> str:
    ready = result["time_to_ready"]
    passes = [f"{item['calls']}@{item['checked']}" for item in result["drift_passes"]]
    line = (f"{result['scenario']} N={result['n']}: change-driven {result['change_calls_total']} / bound "
            f"{result['lower_bound_total']} ({result['ratio_to_lower_bound']}), quiet-window bound "
            f"{result['quiet_window_bound_total']} ({result['ratio_to_quiet_window_bound']}); "
            f"drift passes (calls@grants "
            f"checked) {passes}, floor {result['pass_floor']}; to Ready p50 {ready['p50_s']} s, p99 "
            f"{ready['p99_s']} s, last {ready['last_s']} s; converge {result['converge_s']} s (created in "
            f"{result['create_s']} s); peak RSS {result['peak_rss_mib']} MiB (idle {result['idle_rss_mib']})")
    if result["steady"]:
        steady = result["steady"]
        line += (f"\n  steady: {steady['passes']} passes, drift reads per pass {steady['drift_reads_per_pass']} "
                 f"(floor {steady['pass_floor']}), {steady['aws_writes']} AWS writes, {steady['k8s_writes']} "
                 f"k8s writes, {steady['change_calls']} change-driven calls; drift repair {result['drift_repair_s']}")
    if "events_by_reason" in result:  # results from before 2026-12-03 have none
        line += (f"\n  Events {result['events_by_reason']}, {result['grants_with_repeated_applied']} grants with "
                 "more than one Applied")
    return line + f"\n  change-driven by operation {result['change_calls']} against {result['lower_bound']}"



def write(results: list[dict[str, Any]], out: pathlib.Path | None, suffix: str = "", **extra: Any) -> pathlib.Path:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    path = out or RESULTS / f"{stamp}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    kubectl = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True,
                             check=False).stdout
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
               "kubectl": json.loads(kubectl).get("clientVersion", {}).get("gitVersion") if kubectl else None}
    path.write_text(json.dumps({"date": stamp, "machine": machine, "command": sys.argv,
                                "operator_tree": operator_tree(), **extra,
                                "results": results}, indent=2) + "\n")
    return path




def operator_tree() -> dict[str, Any]:
    """Which operator was measured: the checkout `ecr_access` was imported from, its commit, and a
    digest of its uncommitted changes (if any: a run against a tree being edited says so)."""
    import ecr_access  # noqa: PLC0415 - only to find where it came from

    root = pathlib.Path(ecr_access.__file__).resolve().parent.parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False).stdout

    diff = git("diff", "HEAD", "--", "operator")
    return {"checkout": str(root), "commit": git("rev-parse", "HEAD").strip(),
            "uncommitted": [line[3:] for line in git("status", "--short", "--", "operator").splitlines()],
            "uncommitted_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None}
