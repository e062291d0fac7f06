"""`make bench`: what the operator costs to run, measured on this machine.

It starts kubesim, a moto server and the operator as separate processes (the sandbox), with the
operator's AWS traffic going through a counting proxy (awsproxy), which also reads the cause each
request names (`drift` for a drift pass's, `change` for what grant changes make). Then, for each
scenario (an arrival pattern at a size N), it:
1. seeds R repositories (every third one already holding someone else's statement) and K roles,
   and reads the idle operator's RSS;
2. creates N grants: a **burst** (all at once, one `kubectl create -f`) or a **trickle** (spread
   evenly over S seconds, each POSTed to the API server at its time), keeping each one's creation
   time, and polls the grants until all are Ready, keeping when each first was;
3. reports the change-driven AWS calls (every call not made by a drift pass) by operation, against
   the lower bound (`bench.scenarios`: a burst's, or a trickle's by the operator's coalescing and
   cache rules), the drift-pass calls of each pass against its floor, time to Ready from each
   grant's creation (p50, p99, last), and what a per-grant design would issue;
4. watches a steady state over several whole drift passes: AWS reads and writes, Kubernetes
   writes, and the reads of each pass by operation, against the floor of one read per role and
   repository;
5. tampers with policies and measures how long the drift takes to be repaired;
6. reads the operator's peak RSS (VmHWM).

Results go to bench/results/<date>.json and a PNG plot. Timing is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import itertools
import json
import pathlib
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

from awsproxy.proxy import ProxyThread, run_in_thread
from awsproxy.stats import Arrival
from bench import arrivals, plot
from bench.arrivals import PassLog, kube_get, status_kib
from bench.report import RESULTS, parse_runs, summary, write
from bench.scenarios import (
    COALESCE_LONGEST,
    READS,
    Run,
    Scenario,
    by_operation,
    per_pass,
    ratio,
    ready_times,
    split_by_cause,
    trickle_bound,
    trickle_schedule,
)
from ecr_sandbox.sandbox import Sandbox
from ecr_sandbox.seed import NODE_TRUST_POLICY, repository_policy, repository_statements

__all__ = ["RESULTS", "Bench", "Run", "Scenario", "main", "parse_runs", "summary", "write"]

FOREIGN = {"Sid": "TeamCiPush", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
           "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload"]}


class Bench:
    def __init__(self, run: Run | Scenario, resync: float, steady_intervals: int, drift_samples: int,
                 workdir: pathlib.Path, metrics: bool = True, timeline: pathlib.Path | None = None) -> None:
        """`metrics`: serve /metrics as the operator does by default (False: `--metrics-port 0`, to
        show that counting adds no AWS call). `steady_intervals` 0 skips the steady window.
        `timeline`: also write every request the proxy saw, one JSON line each (time, service,
        operation, cause, and the role or repository it names), to tell where calls over the bound
        come from: which role was read twice, and how long after its first read."""
        self.run_spec = run if isinstance(run, Run) else Run(run)
        self.scenario = self.run_spec.scenario
        self.metrics = metrics
        self.resync = resync
        self.steady_intervals = steady_intervals
        self.drift_samples = drift_samples
        self.workdir = workdir
        self.timeline = timeline
        self.proxy: ProxyThread | None = None

    def _route(self, moto_url: str) -> str:
        self.proxy = run_in_thread(moto_url, timeline=True)
        return self.proxy.url

    def run(self) -> dict[str, Any]:
        # The grants run under the sandbox's allow-all EcrGrantPolicy: policies are enforced, and judged
        # in every sync, as in production.
        sandbox = Sandbox(self.workdir, seed=False, seed_policy=True, apply_examples=False,
                          resync_interval=self.resync, cluster_id="bench",
                          operator_args=["--sweep-interval", "0", *(() if self.metrics else ("--metrics-port", "0"))],
                          route_operator_aws=self._route, log=sys.stderr)
        try:
            with sandbox:
                return self._measure(sandbox)
        finally:
            if self.proxy is not None:
                self.proxy.stop()

    def _measure(self, sandbox: Sandbox) -> dict[str, Any]:
        assert self.proxy is not None and sandbox.operator is not None
        pid = sandbox.operator.pid
        self._seed(sandbox)
        time.sleep(2.0)  # let the operator settle after the seeding before reading it at rest
        idle_kib = status_kib(pid, "VmRSS")
        self.proxy.reset()
        passes = PassLog(sandbox.dir / "operator.log", self.scenario.grants)
        spread = self.run_spec.spread
        schedule = trickle_schedule(self.scenario.grants, spread) if spread > 0 else None
        creator = arrivals.Creator(sandbox, self.scenario.manifests(), schedule, self.workdir)
        creator.start()
        ready = self._wait_all_ready(sandbox, creator)
        converged = time.time()
        converged_kib = status_kib(pid, "VmRSS")
        started = creator.started
        created = [creator.created[f"grant-{i}"] - started for i in range(self.scenario.grants)]
        # A trickle's floor: the coalescing rule's longest windows (no run waits longer); `quiet_bound`:
        # its quiet windows, what the operator would make if every run started as soon as its burst went quiet.
        bound = trickle_bound(self.scenario, created, quiet=COALESCE_LONGEST) if schedule is not None \
            else self.scenario.lower_bound()
        quiet_bound = trickle_bound(self.scenario, created)

        steady = self._steady(sandbox, passes, converged) if self.steady_intervals > 0 else None
        measured_until = time.time()
        calls = [call for call in self.proxy.calls() if call.at <= measured_until]
        if self.timeline is not None:
            write_timeline(self.timeline, calls)
        change, drift = split_by_cause(calls)
        change_ops = by_operation(change)
        change_total = sum(change_ops.values())
        passes.poll()
        pass_calls = per_pass(drift, [when for when, _ in passes.ended if when <= measured_until], since=started)
        floor = self.scenario.pass_floor()

        events = self._events(sandbox)
        repair = [self._drift_repair(sandbox, sample) for sample in range(self.drift_samples)]
        return {
            "scenario": self.run_spec.name,
            "n": self.scenario.grants,
            "repositories": self.scenario.repositories,
            "roles": self.scenario.roles,
            "spread_s": spread,
            "resync_interval_s": self.resync,
            "create_s": round(max(created), 3),
            "converge_s": round(converged - started, 3),
            "time_to_ready": ready_times(creator.created, ready),
            "change_calls": change_ops,
            "change_calls_total": change_total,
            "change_calls_before_ready": sum(1 for call in change if call.at <= converged),
            "change_calls_uncaused": sum(1 for call in change if not call.cause),
            "lower_bound": bound,
            "lower_bound_total": sum(bound.values()),
            "ratio_to_lower_bound": ratio(change_total, sum(bound.values())),
            "quiet_window_bound": quiet_bound,
            "quiet_window_bound_total": sum(quiet_bound.values()),
            "ratio_to_quiet_window_bound": ratio(change_total, sum(quiet_bound.values())),
            "burst_lower_bound_total": sum(self.scenario.lower_bound().values()),
            "per_grant_design_calls": self.scenario.per_grant_design(),
            "drift_passes": [{"ended_s": round(when - started, 1), "checked": checked, "calls": len(made),
                              "by_operation": by_operation(made)}
                             for (when, checked), made in zip(passes.ended, pass_calls, strict=False)],
            "drift_calls_total": len(drift),
            "pass_floor": sum(floor.values()),
            "pass_floor_by_operation": floor,
            "steady": steady,
            "drift_repair_s": [round(value, 3) for value in repair],
            "idle_rss_mib": round(idle_kib / 1024, 1),
            "converged_rss_mib": round(converged_kib / 1024, 1),
            "peak_rss_mib": round(status_kib(pid, "VmHWM") / 1024, 1),
            "rss_after_mib": round(status_kib(pid, "VmRSS") / 1024, 1),
            "operator_restarts": sandbox.operator_restarts,
            **events,
        }

    def _steady(self, sandbox: Sandbox, passes: PassLog, ready: float) -> dict[str, Any]:
        """The steady state over `steady_intervals` whole drift passes, after one interval to settle
        (kopf's last annotation patches land just after Ready), and after the burst's Kubernetes
        writes have drained (`_k8s_quiet`): from the end of one pass to the end of the last, so that
        the window holds whole passes only, whatever its phase. A pass's calls
        are those the proxy saw after the previous pass ended (the operator logs each end) and up to
        its own end; a check of only some grants meanwhile (a retry) is counted in `other_checks`.
        `drift_reads_per_pass` counts only the calls that named the drift cause; the window's
        writes and `change_calls` count every cause."""
        proxy = self.proxy
        assert proxy is not None
        settled = self._k8s_quiet(sandbox)
        timed_from = max(ready + self.resync, settled)
        deadline = timed_from + (self.steady_intervals + 4) * self.resync + 60
        steady_rv = None
        while True:
            passes.poll()
            ends = passes.full_ends(after=timed_from)
            if steady_rv is None and ends:
                steady_rv = self._resource_version(sandbox)
            if len(ends) > self.steady_intervals:
                break
            if time.time() > deadline:
                raise TimeoutError(f"{len(ends)} drift passes ended after settling; see {passes.path}")
            time.sleep(0.05)
        assert steady_rv is not None
        k8s_writes = self._resource_version(sandbox) - steady_rv
        written = self._written_since(sandbox, steady_rv) if k8s_writes else {}
        ends = ends[:self.steady_intervals + 1]
        calls = proxy.calls()
        in_window = [call for call in calls if ends[0] < call.at <= ends[-1]]
        window = by_operation(in_window)
        made = [[call for call in calls if begin < call.at <= end] for begin, end in itertools.pairwise(ends)]
        reads = [[call for call in each if call.operation.startswith(READS)] for each in made]
        return {
            "intervals": self.steady_intervals,
            "passes": len(made),
            "other_checks": passes.others(ends[0], ends[-1]),
            "window_s": round(ends[-1] - ends[0], 1),
            "aws_reads": sum(n for op, n in window.items() if op.startswith(READS)),
            "aws_writes": sum(n for op, n in window.items() if not op.startswith(READS)),
            "aws_calls": window,
            "change_calls": sum(1 for call in in_window if call.cause != "drift"),
            "k8s_writes": k8s_writes,
            "k8s_settled_after_ready_s": round(settled - ready, 1),
            "k8s_written": written,
            "reads_per_pass": [len(each) for each in reads],
            "drift_reads_per_pass": [sum(1 for call in each if call.cause == "drift") for each in reads],
            "reads_per_pass_by_operation": [by_operation(each) for each in reads],
            "pass_floor": sum(self.scenario.pass_floor().values()),
            "pass_floor_by_operation": self.scenario.pass_floor(),
            "pass_reads_span_s": [round(each[-1].at - each[0].at, 1) if each else 0.0 for each in reads],
        }

    def _seed(self, sandbox: Sandbox) -> None:
        iam, ecr = sandbox.aws("iam"), sandbox.aws("ecr")
        trust = json.dumps(NODE_TRUST_POLICY)
        for k in range(self.scenario.roles):
            iam.create_role(RoleName=f"bench-role-{k}", AssumeRolePolicyDocument=trust)
        for r in range(self.scenario.repositories):
            name = f"bench/repo-{r}"
            ecr.create_repository(repositoryName=name)
            if r % 3 == 0:
                ecr.set_repository_policy(repositoryName=name,
                                          policyText=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]}))

    def _wait_all_ready(self, sandbox: Sandbox, creator: arrivals.Creator, timeout: float = 3600.0) -> dict[str, float]:
        """Polls the grants until all N are Ready; when each first was (time.time())."""
        n = self.scenario.grants
        ready: dict[str, float] = {}
        started = time.time()
        while time.time() - started < timeout:
            asked = time.time()
            items = kube_get(sandbox, "/apis/ecraccess.io/v1alpha1/ecraccessgrants").get("items", [])
            seen = time.time()
            before = len(ready)
            for item in items:
                name = item["metadata"]["name"]
                if name not in ready and _is_ready(item):
                    ready[name] = seen
            if len(ready) != before:
                print(f"\r  {self.run_spec.name} N={n}: {len(creator.created)} created, {len(ready)} Ready after "
                      f"{seen - started:.1f}s", end="", file=sys.stderr, flush=True)
            if creator.error is not None:
                raise RuntimeError("creating the grants failed") from creator.error
            if len(ready) >= n:
                print(file=sys.stderr)
                return ready
            time.sleep(max(0.25, 2 * (seen - asked)))  # a list of 10,000 grants is not free for kubesim
        raise TimeoutError(f"only {len(ready)}/{n} grants Ready after {timeout}s")

    def _k8s_quiet(self, sandbox: Sandbox, quiet: float = 3.0) -> float:
        """When the burst's Kubernetes writes stopped: the first moment kubesim's resourceVersion had
        not moved for `quiet` seconds. At N=1,000 kopf posts the handlers' Events (one `Applied`
        per grant) from one queue, and the last of them landed over 20 s after the last grant was
        Ready, inside a window that began one 20 s interval after Ready. Waiting for a quiet moment
        hides no steady write: the window then holds whole drift passes, and whatever a pass writes
        lands inside it."""
        deadline = time.time() + (self.steady_intervals + 4) * self.resync + 60
        last, since = self._resource_version(sandbox), time.time()
        while time.time() - since < quiet:
            if time.time() > deadline:
                raise TimeoutError("Kubernetes writes did not stop after the burst")
            time.sleep(0.25)
            now = self._resource_version(sandbox)
            if now != last:
                last, since = now, time.time()
        return since

    def _events(self, sandbox: Sandbox) -> dict[str, Any]:
        """The Events on grants by reason, and how many grants got more than one `Applied`: one
        change, one Event (`status.transition_events`), however the drift passes fell in the burst."""
        items = kube_get(sandbox, "/api/v1/events").get("items", [])
        reasons = collections.Counter(str(item.get("reason")) for item in items)
        applied = collections.Counter(str((item.get("involvedObject") or {}).get("name")) for item in items
                                      if item.get("reason") == "Applied")
        return {"events_by_reason": dict(sorted(reasons.items())),
                "grants_with_repeated_applied": sum(1 for n in applied.values() if n > 1)}

    # What the steady window's Kubernetes writes could have touched (`_written_since`).
    WRITABLE = {"EcrAccessGrant": "/apis/ecraccess.io/v1alpha1/ecraccessgrants",
                "EcrGrantPolicy": "/apis/ecraccess.io/v1alpha1/ecrgrantpolicies",
                "EcrAccessAccount": "/apis/ecraccess.io/v1alpha1/ecraccessaccounts",
                "Event": "/api/v1/events"}

    def _written_since(self, sandbox: Sandbox, rv: int) -> dict[str, Any]:
        """Which objects the steady window wrote (their resourceVersion is past `rv`), by kind, with
        a few names and one whole object: a steady write says what it was, not only that it was."""
        found: dict[str, Any] = {}
        for kind, path in self.WRITABLE.items():
            items = [item for item in kube_get(sandbox, path).get("items", [])
                     if int(item["metadata"].get("resourceVersion", 0)) > rv]
            if items:
                found[kind] = {"objects": len(items),
                               "names": [f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}"
                                         for i in items[:3]],
                               "example": items[0]}
        return found

    def _resource_version(self, sandbox: Sandbox) -> int:
        """kubesim has one global resourceVersion: its growth counts every Kubernetes write."""
        body = kube_get(sandbox, "/api/v1/namespaces")
        return int(body["metadata"]["resourceVersion"])

    def _drift_repair(self, sandbox: Sandbox, sample: int) -> float:
        ecr = sandbox.aws("ecr")
        name = f"bench/repo-{sample % self.scenario.repositories}"
        doc = repository_policy(ecr, name)
        assert doc is not None, f"{name} has no policy to tamper with"
        kept = [item for item in doc["Statement"] if not _ours(item)]
        if kept:
            ecr.set_repository_policy(repositoryName=name, policyText=json.dumps({**doc, "Statement": kept}))
        else:
            ecr.delete_repository_policy(repositoryName=name)
        tampered = time.monotonic()
        deadline = tampered + self.resync * 4 + 30
        while time.monotonic() < deadline:
            if any(_ours(item) for item in repository_statements(ecr, name)):
                return time.monotonic() - tampered
            time.sleep(0.1)
        raise TimeoutError(f"{name} was not repaired within {deadline - tampered:.0f}s")


def _ours(statement: dict[str, Any]) -> bool:
    return str(statement.get("Sid", "")).startswith("EcrAccessGrant")


def _is_ready(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
    return bool(ready) and ready[0].get("status") == "True" and \
        status.get("observedGeneration") == item["metadata"].get("generation")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so that the sandbox's context manager stops its processes


def write_timeline(path: pathlib.Path, calls: Iterable[Arrival]) -> None:
    """One JSON line per request, in arrival order (`Bench.timeline`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for call in calls:
            out.write(json.dumps(dataclasses.asdict(call), separators=(",", ":")) + "\n")


@contextlib.contextmanager
def workdir(prefix: str, keep: pathlib.Path | None) -> Iterator[pathlib.Path]:
    """A run's sandbox directory: a temporary one, removed afterwards, or with `keep` a new one
    under `keep` that is left (its operator.log and the servers' logs), named on stdout."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
            yield pathlib.Path(temporary)
        return
    keep.mkdir(parents=True, exist_ok=True)
    kept = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=keep))
    print(f"keeping {kept}", flush=True)
    yield kept


def execute(runs: list[Run], resync: float, steady_intervals: int, drift_samples: int,
            metrics: bool = True, timeline: pathlib.Path | None = None,
            keep: pathlib.Path | None = None) -> list[dict[str, Any]]:
    """`timeline`: a directory for each run's request timeline (`Bench.timeline`), or None. `keep`: a
    directory under which each run's sandbox (operator.log, kubesim's and moto's logs) is left, or
    None for a temporary one removed after the run."""
    results = []
    for run in runs:
        with workdir(f"bench-{run.name}-{run.scenario.grants}-", keep) as where:
            bench = Bench(run, resync, steady_intervals, drift_samples, where, metrics=metrics,
                          timeline=timeline / f"{run.name}-{run.scenario.grants}.jsonl" if timeline else None)
            result = bench.run()
        results.append(result)
        print(summary(result), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="burst", help="comma-separated: burst, trickle, trickleS (S seconds)")
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated N values of the bursts")
    parser.add_argument("--trickle-sizes", default="1000", help="comma-separated N values of the trickles")
    parser.add_argument("--trickle-seconds", type=float, default=60.0, help="a bare `trickle`'s spread")
    parser.add_argument("--resync", type=float, default=10.0, help="operator resync interval (seconds)")
    parser.add_argument("--steady-intervals", type=int, default=3, help="0: no steady window")
    parser.add_argument("--drift-samples", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="results JSON (default bench/results/)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--no-metrics", action="store_true", help="run the operator with --metrics-port 0")
    parser.add_argument("--timeline", type=pathlib.Path, default=None,
                        help="a directory: write each run's requests there, one JSON line each")
    parser.add_argument("--keep", type=pathlib.Path, default=None,
                        help="a directory: leave each run's sandbox (operator.log and the servers' logs) under it")
    args = parser.parse_args(argv)
    runs = parse_runs(args.scenarios, args.sizes, args.trickle_sizes, args.trickle_seconds)
    results = execute(runs, args.resync, args.steady_intervals, args.drift_samples, metrics=not args.no_metrics,
                      timeline=args.timeline, keep=args.keep)
    out = write(results, args.out)
    if not args.no_plot:
        plot.plot(results, out.with_suffix(".png"))
    print(f"wrote {out}" + ("" if args.no_plot else f" and {out.with_suffix('.png')}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
