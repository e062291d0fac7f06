"""`python -m bench.memory`: what the operator keeps in memory per grant, at N grants (issue 17 part 3).

It starts the sandbox as `bench.harness` does (kubesim, moto and the operator as processes, the
allow-all EcrGrantPolicy, nothing else), seeds R repositories and K roles (`harness.Bench._seed`),
measures the operator's idle memory (every index listed, no grant), creates the N grants of
`harness.Scenario` with one `kubectl create -f`, waits until every one is Ready, lets kopf settle
(its last patches land after Ready; its per-object workers exit after `batching.idle_timeout`), and
reads the operator's memory again.

Two runs, each its own sandbox:
- **rss** (untraced): VmRSS idle and after, VmHWM (the peak), and KiB per grant above idle. These are
  the figures to quote: the operator runs exactly as the image does.
- **trace**: the same, with the operator under tracemalloc (`PYTHONTRACEMALLOC=<frames>`), which
  slows Python and inflates RSS (its own tables), so none of its RSS figures count. A probe
  (`bench/memhook/sitecustomize.py`, on the operator's PYTHONPATH in this run only) dumps a
  tracemalloc snapshot on SIGUSR2; the report is what was allocated after idle and is still held,
  grouped by package and by line. Nothing in the operator's own code changes.

Grouping a retained block by package: its traceback is walked from the allocating frame outwards,
and the block belongs to the first frame in ecr_access or kopf (the two that decide to keep
something: a body parsed by aiohttp inside kopf's watcher is kopf's); failing both, to the first
frame in another known package (kubernetes, botocore, aiohttp, ...); failing that, `other`. The
`allocated_in` grouping is the plain one: the package of the allocating frame.

A measurement, not a test: results go to bench/results/<date>-memory.json.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import pathlib
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import yaml

from bench import arrivals, harness
from ecr_sandbox.kubectl import run_kubectl
from ecr_sandbox.sandbox import Sandbox

HOOK = pathlib.Path(__file__).resolve().parent / "memhook"
RESULTS = harness.RESULTS
OWNERS = ("ecr_access", "kopf")  # packages that decide what is kept; they take precedence
# Third-party packages only: a stdlib frame (json, asyncio) says nothing of who keeps the block.
PACKAGES = ("kubernetes", "botocore", "boto3", "aiohttp", "prometheus_client", "urllib3", "yaml")
GROUPS = ("kopf", "ecr_access", "kubernetes", "botocore", "aiohttp", "other")


def package_of(filename: str) -> str | None:
    """The top-level package a source file belongs to (site-packages, the source tree or the stdlib)."""
    parts = pathlib.PurePath(filename).parts
    for marker in ("site-packages", "operator"):
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            if index + 1 < len(parts):
                return pathlib.PurePath(parts[index + 1]).stem
    for name in ("asyncio", "json", "logging", "concurrent", "email", "http"):
        if f"/{name}/" in filename:
            return name
    return None


def owner_of(frames: list[str]) -> str:
    """The group a retained block is charged to; `frames`, innermost (the allocating one) first."""
    packages = [package_of(name) for name in frames]
    for package in packages:
        if package in OWNERS:
            return str(package)
    for package in packages:
        if package in PACKAGES:
            return group(package)
    return "other"


def group(package: str | None) -> str:
    if package == "boto3":
        return "botocore"
    return package if package in GROUPS else "other"


class MemorySandbox(Sandbox):
    """The harness's sandbox, with the operator optionally traced and probed (its environment only)."""

    def __init__(self, *args: Any, trace_frames: int = 0, snapshot_dir: pathlib.Path | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trace_frames = trace_frames
        self.snapshot_dir = snapshot_dir

    def operator_env(self) -> dict[str, str]:
        env = super().operator_env()
        if self.snapshot_dir is not None:
            base = self._base_env().get("PYTHONPATH", "")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOOK), base]))
            env["ECR_MEMHOOK_DIR"] = str(self.snapshot_dir)
        if self.trace_frames:
            env["PYTHONTRACEMALLOC"] = str(self.trace_frames)
        return env


def grown(before: dict[str, int], after: dict[str, int], grants: int, top: int = 30) -> list[dict[str, Any]]:
    """The object types whose count grew most from `before` to `after`, with the growth per grant."""
    growth = sorted(((after[name] - before.get(name, 0), name) for name in after), reverse=True)[:top]
    return [{"type": name, "grew": count, "per_grant": round(count / grants, 2)} for count, name in growth if count > 0]


def status_kib(pid: int) -> dict[str, int]:
    return {field: arrivals.status_kib(pid, field) for field in ("VmRSS", "VmHWM")}


class Run:
    def __init__(self, scenario: harness.Scenario, workdir: pathlib.Path, *, resync: float, settle: float,
                 trace_frames: int = 0, aws_rate_limit: float | None = None, poll: float = 2.0,
                 operator_env: dict[str, str] | None = None) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.resync = resync
        self.settle = settle
        self.trace_frames = trace_frames
        self.aws_rate_limit = aws_rate_limit
        self.poll = poll
        self.operator_env = operator_env or {}
        self.snapshots = workdir / "snapshots"

    def run(self) -> dict[str, Any]:
        self.snapshots.mkdir(parents=True, exist_ok=True)
        env = {} if self.aws_rate_limit is None else {"ECR_ACCESS_AWS_RATE_LIMIT": str(self.aws_rate_limit)}
        env.update(self.operator_env)
        sandbox = MemorySandbox(self.workdir / "sandbox", seed=False, seed_policy=True, apply_examples=False,
                                resync_interval=self.resync, cluster_id="bench",
                                operator_args=["--sweep-interval", "0"], operator_env=env,
                                trace_frames=self.trace_frames,
                                snapshot_dir=self.snapshots, log=sys.stderr)
        with sandbox:
            return self._measure(sandbox)

    def _measure(self, sandbox: MemorySandbox) -> dict[str, Any]:
        assert sandbox.operator is not None
        pid = sandbox.operator.pid
        # harness.Bench seeds the scenario's roles and repositories; only its `_seed` is used here.
        harness.Bench(self.scenario, self.resync, 0, 0, self.workdir)._seed(sandbox)
        time.sleep(self.settle)
        idle = status_kib(pid)
        idle_snapshot = self._snapshot(pid) if self.trace_frames else None
        # Untraced, the probe's allocator figures at idle (after a collection): to compare with after.
        idle_info = None if self.trace_frames else self._snapshot(pid, load=False)[0]
        manifest = self.workdir / "grants.yaml"
        manifest.write_text(yaml.safe_dump_all(self.scenario.manifests()))
        started = time.monotonic()
        # One `kubectl create` of all N, as the harness does, with room for N=10,000 (the sandbox's
        # own kubectl helper gives up after 60 s).
        run_kubectl("create", "-f", str(manifest), kubeconfig=sandbox.kubeconfig, timeout=1800)
        created = time.monotonic() - started
        at_created = status_kib(pid)
        # The peak is here, not after: every grant is created and most of them are still being
        # handled (each waits for its repositories' shared write, at the AWS rate limit).
        burst_snapshot = self._snapshot(pid) if self.trace_frames else None
        converged = self._wait_ready(sandbox, started)
        at_ready = status_kib(pid)
        time.sleep(self.settle)
        after = status_kib(pid)
        result: dict[str, Any] = {
            "n": self.scenario.grants, "repositories": self.scenario.repositories, "roles": self.scenario.roles,
            "traced_frames": self.trace_frames, "resync_interval_s": self.resync, "settle_s": self.settle,
            "aws_rate_limit": self.aws_rate_limit, "create_s": round(created, 1), "converge_s": round(converged, 1),
            "idle_rss_mib": mib(idle["VmRSS"]), "rss_at_created_mib": mib(at_created["VmRSS"]),
            "rss_at_ready_mib": mib(at_ready["VmRSS"]),
            "rss_after_mib": mib(after["VmRSS"]), "peak_rss_mib": mib(after["VmHWM"]),
            "kib_per_grant_above_idle": round((after["VmRSS"] - idle["VmRSS"]) / self.scenario.grants, 2),
            "peak_kib_per_grant_above_idle": round((after["VmHWM"] - idle["VmRSS"]) / self.scenario.grants, 2),
            "operator_restarts": sandbox.operator_restarts,
        }
        if not self.trace_frames:
            # The probe, untraced: only a signal handler. A full collection, then RSS again: what of
            # the RSS above idle was garbage in reference cycles waiting for the collector.
            info, _ = self._snapshot(pid, load=False)
            result["after_gc"] = {"rss_before_gc_mib": mib(info["vmrss_before_gc_kib"]),
                                  "rss_after_gc_mib": mib(info["vmrss_kib"]), "gc_collected": info["gc_collected"]}
            if "vmrss_after_trim_kib" in info:
                result["after_gc"]["rss_after_trim_mib"] = mib(info["vmrss_after_trim_kib"])
            # Whether the RSS above idle is live (Python blocks, glibc bytes in use) or freed and kept.
            assert idle_info is not None
            result["allocators"] = {"idle": idle_info.get("allocators"), "after": info.get("allocators"),
                                    "held": info.get("census", {}).get("held")}
            result["objects_grown"] = grown(idle_info.get("census", {}).get("by_type", {}),
                                            info.get("census", {}).get("by_type", {}), self.scenario.grants)
        if idle_snapshot is not None:
            assert burst_snapshot is not None
            info, final = self._snapshot(pid)
            result["tracemalloc"] = breakdown(idle_snapshot[1], final, self.scenario.grants)
            # What the in-flight handling holds on top (at `kubectl create`'s end), by the same rules.
            result["tracemalloc_in_flight"] = breakdown(idle_snapshot[1], burst_snapshot[1], self.scenario.grants)
            result["tracemalloc_in_flight"]["traced_bytes"] = burst_snapshot[0]["traced_bytes"]
            result["tracemalloc"]["traced_idle_bytes"] = idle_snapshot[0]["traced_bytes"]
            result["tracemalloc"]["traced_after_bytes"] = info["traced_bytes"]
            result["tracemalloc"]["traced_peak_bytes"] = info["traced_peak_bytes"]
        return result

    def _snapshot(self, pid: int, load: bool = True) -> tuple[dict[str, Any], tracemalloc.Snapshot]:
        number = len(list(self.snapshots.glob("snapshot-*.json")))
        done = self.snapshots / f"snapshot-{number}.json"
        os.kill(pid, signal.SIGUSR2)
        wait_for(done.exists, 600.0, f"the operator's snapshot {done}")
        info = json.loads(done.read_text())
        if not load:
            return info, tracemalloc.Snapshot([], 1)
        snapshot = tracemalloc.Snapshot.load(str(self.snapshots / f"snapshot-{number}.pickle"))
        return info, snapshot

    def _wait_ready(self, sandbox: Sandbox, started: float, timeout: float = 3600.0) -> float:
        last = -1
        while time.monotonic() - started < timeout:
            items = arrivals.kube_get(sandbox, "/apis/ecraccess.io/v1alpha1/ecraccessgrants").get("items", [])
            ready = sum(1 for item in items if harness._is_ready(item))
            if ready != last:
                print(f"\r  N={self.scenario.grants}: {ready}/{self.scenario.grants} Ready after "
                      f"{time.monotonic() - started:.0f}s", end="", file=sys.stderr, flush=True)
                last = ready
            if ready == self.scenario.grants:
                print(file=sys.stderr)
                return time.monotonic() - started
            time.sleep(self.poll)
        raise TimeoutError(f"only {last}/{self.scenario.grants} grants Ready after {timeout}s")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def breakdown(idle: tracemalloc.Snapshot, after: tracemalloc.Snapshot, grants: int, top: int = 25) -> dict[str, Any]:
    """What was allocated since `idle` and is still held at `after`, by package and by line."""
    owners: collections.Counter[str] = collections.Counter()
    allocated_in: collections.Counter[str] = collections.Counter()
    blocks: collections.Counter[str] = collections.Counter()
    for diff in after.compare_to(idle, "traceback"):
        if diff.size_diff == 0:
            continue
        # A Traceback runs from the oldest frame to the allocating one.
        frames = [frame.filename for frame in reversed(diff.traceback)]  # innermost first
        owner = owner_of(frames)
        owners[owner] += diff.size_diff
        blocks[owner] += diff.count_diff
        allocated_in[group(package_of(frames[0]) if frames else None)] += diff.size_diff
    lines = []
    for diff in after.compare_to(idle, "lineno")[:top]:
        frame = diff.traceback[0]
        lines.append({"where": f"{short(frame.filename)}:{frame.lineno}", "bytes": diff.size_diff,
                      "blocks": diff.count_diff, "bytes_per_grant": round(diff.size_diff / grants, 1)})
    total = sum(owners.values())
    return {
        "retained_bytes": total,
        "retained_bytes_per_grant": round(total / grants, 1),
        "by_package": {name: {"bytes": owners[name], "bytes_per_grant": round(owners[name] / grants, 1),
                              "blocks": blocks[name]} for name in GROUPS},
        "allocated_in": {name: {"bytes": allocated_in[name], "bytes_per_grant": round(allocated_in[name] / grants, 1)}
                         for name in GROUPS},
        "top_lines": lines,
        "top_owned_lines": owned_lines(idle, after, grants, top),
    }


def owned_lines(idle: tracemalloc.Snapshot, after: tracemalloc.Snapshot, grants: int, top: int) -> list[dict[str, Any]]:
    """The lines of ecr_access and kopf that retained blocks were allocated under (the innermost
    frame of either in each traceback), largest first: where each of the two keeps its memory."""
    sizes: collections.Counter[tuple[str, str]] = collections.Counter()
    for diff in after.compare_to(idle, "traceback"):
        for frame in reversed(diff.traceback):
            if package_of(frame.filename) in OWNERS:
                sizes[(f"{short(frame.filename)}:{frame.lineno}", str(package_of(frame.filename)))] += diff.size_diff
                break
    return [{"where": where, "package": package, "bytes": size, "bytes_per_grant": round(size / grants, 1)}
            for (where, package), size in sizes.most_common(top)]


def short(filename: str) -> str:
    for marker in ("site-packages/", "/operator/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so that the sandbox's context manager stops its processes


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--repositories", type=int, default=500)
    parser.add_argument("--roles", type=int, default=1_000)
    parser.add_argument("--resync", type=float, default=300.0, help="operator resync interval (seconds)")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds to wait before the idle reading and after the last grant is Ready")
    parser.add_argument("--frames", type=int, default=12, help="tracemalloc traceback depth of the traced run")
    parser.add_argument("--runs", default="rss,trace", help="which runs: rss (untraced), trace, or both")
    parser.add_argument("--aws-rate-limit", type=float, default=None,
                        help="the operator's AWS rate limit (default: the operator's own)")
    parser.add_argument("--operator-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the operator (repeatable), to compare allocator "
                             "settings: PYTHONMALLOC=malloc, MALLOC_ARENA_MAX=1, or ECR_MEMHOOK_TRIM=1 (the probe "
                             "calls glibc's malloc_trim before each reading and reports the RSS after it)")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="results JSON (default bench/results/<date>-memory.json)")
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.operator_env)
    scenario = harness.Scenario(grants=args.grants, repositories=args.repositories, roles=args.roles)
    results: dict[str, Any] = {}
    for kind in [item for item in args.runs.split(",") if item]:
        if kind not in ("rss", "trace"):
            parser.error(f"unknown run {kind!r}")
        with tempfile.TemporaryDirectory(prefix=f"bench-memory-{kind}-") as workdir:
            run = Run(scenario, pathlib.Path(workdir), resync=args.resync, settle=args.settle,
                      trace_frames=args.frames if kind == "trace" else 0, aws_rate_limit=args.aws_rate_limit,
                      operator_env=extra_env)
            results[kind] = {**run.run(), "operator_env": extra_env}
        summary = {key: value for key, value in results[kind].items() if not key.startswith("tracemalloc")}
        print(json.dumps({"run": kind, **summary}), flush=True)
        if "after_gc" in results[kind]:
            print(json.dumps(results[kind]["after_gc"]), flush=True)
        for name in ("tracemalloc_in_flight", "tracemalloc"):
            if name not in results[kind]:
                continue
            traced = results[kind][name]
            print(json.dumps({name: traced["by_package"],
                              "retained_bytes_per_grant": traced["retained_bytes_per_grant"]}), flush=True)
            for line in traced["top_lines"]:
                print(f"  {line['bytes_per_grant']:>8} B/grant  {line['where']}", flush=True)
            for line in traced["top_owned_lines"][:15]:
                print(f"  {line['bytes_per_grant']:>8} B/grant  under {line['where']}", flush=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    out = args.out or RESULTS / f"{stamp}-memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    out.write_text(json.dumps({"date": stamp, "machine": machine, "runs": results}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
