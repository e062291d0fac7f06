"""The benchmark's plot: change-driven calls against their bound, drift passes against their floor,
and time to Ready, for every scenario of a run."""

from __future__ import annotations

import pathlib
from typing import Any


def label(result: dict[str, Any]) -> str:
    return f"{result.get('scenario', 'burst')}\nN={result['n']}"


def plot(results: list[dict[str, Any]], path: pathlib.Path) -> None:
    import matplotlib  # noqa: PLC0415 - only the plot needs it

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    figure, (sizes_axis, calls, ready) = pyplot.subplots(1, 3, figsize=(15, 4.6))
    bursts = [item for item in results if item.get("scenario", "burst") == "burst"]
    if bursts:
        sizes = [item["n"] for item in bursts]
        sizes_axis.plot(sizes, [item["change_calls_total"] for item in bursts], "o-", label="change-driven (measured)")
        sizes_axis.plot(sizes, [item["lower_bound_total"] for item in bursts], "s--", label="lower bound")
        sizes_axis.plot(sizes, [item["per_grant_design_calls"] for item in bursts], "^:", label="per-grant design")
        sizes_axis.set(xscale="log", yscale="log", xlabel="grants (N)", ylabel="AWS calls",
                       title="Burst: change-driven AWS calls")
        sizes_axis.legend()
    labels = [label(item) for item in results]
    places = range(len(results))
    width = 0.4
    calls.bar([x - width / 2 for x in places], [item["ratio_to_lower_bound"] for item in results], width,
              label="change-driven / lower bound")
    steady = [_pass_ratio(item) for item in results]
    calls.bar([x + width / 2 for x in places], steady, width, label="drift pass reads / floor (mean)")
    calls.axhline(1.0, color="grey", linewidth=0.8)
    calls.set(xticks=list(places), xticklabels=labels, ylabel="ratio", title="Calls against their floor")
    calls.legend(fontsize="small", loc="lower left")
    third = 0.27
    for offset, key in ((-third, "p50_s"), (0.0, "p99_s"), (third, "last_s")):
        ready.bar([x + offset for x in places], [item["time_to_ready"][key] for item in results], third,
                  label=key.removesuffix("_s"))
    ready.set(xticks=list(places), xticklabels=labels, ylabel="seconds",
              title="Time to Ready from each grant's creation")
    ready.legend(fontsize="small")
    for axis in (sizes_axis, calls, ready):
        axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _pass_ratio(result: dict[str, Any]) -> float:
    """Mean drift reads per steady pass over the floor (the passes over all N grants, if no steady window)."""
    floor = result["pass_floor"]
    if result.get("steady"):
        reads = result["steady"]["drift_reads_per_pass"]
    else:
        reads = [item["calls"] for item in result["drift_passes"] if item["checked"] >= result["n"]]
    return round(sum(reads) / len(reads) / floor, 4) if reads and floor else 0.0
