"""`make bench`: what the operator costs to run, measured on this machine.

It starts kubesim, a moto server and the operator as separate processes (the sandbox), with the
operator's AWS traffic going through a counting proxy (awsproxy). Then, for each size N, it:
1. seeds R repositories (every third one already holding someone else's statement) and K roles;
2. creates N grants at once with `kubectl create -f` (grants share roles and repositories);
3. measures the time until every grant is Ready, and the AWS calls by operation, against the
   lower bound (one GetRole, ListAttachedRolePolicies, TagRole (the managed-policy ledger, written
   before the attach) and AttachRolePolicy per role; one read,
   one write and one verifying re-read per repository) and against what a per-grant design issues;
4. watches a steady state over several drift passes: AWS reads and writes, Kubernetes writes, and
   the AWS reads of each pass by operation, against the floor of one read per role and repository;
5. tampers with policies and measures how long the drift takes to be repaired;
6. reads the operator's peak RSS (VmHWM).

Results go to bench/results/<date>.json and a PNG plot. Timing is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import itertools
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from typing import Any

import yaml

from awsproxy.proxy import ProxyThread, run_in_thread
from awsproxy.stats import Arrival
from ecr_sandbox.sandbox import Sandbox
from ecr_sandbox.seed import NODE_TRUST_POLICY, repository_policy, repository_statements

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
# The line the operator logs as each drift pass ends (`drift.DriftChecker.run`), stamped as `cli`
# configures logging: local time, to the millisecond.
PASS_ENDED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Drift check: (\d+) grants checked")
READS = ("Get", "List", "Describe")
FOREIGN = {"Sid": "TeamCiPush", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
           "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload"]}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """N grants over R repositories and K roles, with realistic sharing."""

    grants: int
    repositories: int
    roles: int

    @classmethod
    def sized(cls, n: int) -> Scenario:
        return cls(grants=n, repositories=max(2, n // 20), roles=max(2, n // 10))

    def repos_of(self, i: int) -> list[str]:
        names = [f"bench/repo-{(i * 7 + j) % self.repositories}" for j in range(1 + i % 3)]
        return list(dict.fromkeys(names))

    def role_of(self, i: int) -> str:
        return f"bench-role-{i % self.roles}"

    def manifests(self) -> list[dict[str, Any]]:
        return [
            {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant",
             "metadata": {"name": f"grant-{i}", "namespace": "default"},
             "spec": {"role": {"name": self.role_of(i)}, "repositories": [{"name": r} for r in self.repos_of(i)]}}
            for i in range(self.grants)
        ]

    def lower_bound(self) -> dict[str, int]:
        roles = {self.role_of(i) for i in range(self.grants)}
        repos = {r for i in range(self.grants) for r in self.repos_of(i)}
        return {"GetRole": len(roles), "ListAttachedRolePolicies": len(roles), "TagRole": len(roles),
                "AttachRolePolicy": len(roles),
                "GetRepositoryPolicy": 2 * len(repos), "SetRepositoryPolicy": len(repos)}

    def pass_floor(self) -> dict[str, int]:
        """What one drift pass must read: each role (GetRole, ListAttachedRolePolicies) and each
        repository (GetRepositoryPolicy) once, and no fewer: a pass that reads less reused an answer
        from before it began, and would miss drift there."""
        floor = self.lower_bound()
        return {"GetRole": floor["GetRole"], "ListAttachedRolePolicies": floor["ListAttachedRolePolicies"],
                "GetRepositoryPolicy": floor["GetRepositoryPolicy"] // 2}

    def per_grant_design(self) -> int:
        """A design with one statement per grant: per grant, a role lookup and an attachment check,
        and a read and a write of every repository it names (plus one attach per role)."""
        pairs = sum(len(self.repos_of(i)) for i in range(self.grants))
        return 2 * self.grants + self.roles + 2 * pairs


class Bench:
    def __init__(self, scenario: Scenario, resync: float, steady_intervals: int, drift_samples: int,
                 workdir: pathlib.Path, metrics: bool = True) -> None:
        """`metrics`: serve /metrics as the operator does by default (False: `--metrics-port 0`, to
        show that counting adds no AWS call)."""
        self.scenario = scenario
        self.metrics = metrics
        self.resync = resync
        self.steady_intervals = steady_intervals
        self.drift_samples = drift_samples
        self.workdir = workdir
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
        assert self.proxy is not None
        self._seed(sandbox)
        self.proxy.reset()
        manifest = self.workdir / "grants.yaml"
        manifest.write_text(yaml.safe_dump_all(self.scenario.manifests()))

        passes = PassLog(sandbox.dir / "operator.log", self.scenario.grants)
        started = time.monotonic()
        sandbox.kubectl("create", "-f", str(manifest))
        created = time.monotonic() - started
        ready_after = self._wait_all_ready(sandbox, started)
        cold = self.proxy.stats()
        calls = cold.by_operation()
        floor = self.scenario.lower_bound()
        aws_total = sum(count for op, count in calls.items() if op in floor)

        steady = self._steady(sandbox, passes)

        repair = [self._drift_repair(sandbox, sample) for sample in range(self.drift_samples)]
        assert sandbox.operator is not None
        return {
            "n": self.scenario.grants,
            "repositories": self.scenario.repositories,
            "roles": self.scenario.roles,
            "resync_interval_s": self.resync,
            "create_s": round(created, 3),
            "converge_s": round(ready_after, 3),
            "aws_calls": calls,
            "aws_calls_total": aws_total,
            "lower_bound": floor,
            "lower_bound_total": sum(floor.values()),
            "ratio_to_lower_bound": round(aws_total / sum(floor.values()), 4),
            "per_grant_design_calls": self.scenario.per_grant_design(),
            "steady": steady,
            "drift_repair_s": [round(value, 3) for value in repair],
            "peak_rss_mib": round(_status_kib(sandbox.operator.pid, "VmHWM") / 1024, 1),
            "rss_after_mib": round(_status_kib(sandbox.operator.pid, "VmRSS") / 1024, 1),
            "operator_restarts": sandbox.operator_restarts,
        }

    def _steady(self, sandbox: Sandbox, passes: PassLog) -> dict[str, Any]:
        """The steady state over `steady_intervals` whole drift passes, after one interval to settle
        (kopf's last annotation patches land just after Ready): from the end of one pass to the end
        of the last, so that the window holds whole passes only, whatever its phase. A pass's calls
        are those the proxy saw after the previous pass ended (the operator logs each end) and up to
        its own end; a check of only some grants meanwhile (a retry) is counted in `other_checks`.

        `timed_window` is the figure earlier results gave: the reads in `steady_intervals` intervals
        from the end of the settling, whatever the phase of the passes in them (so it may count
        parts of passes), and how many passes ended in it. `passes_after_ready` (each pass that ended
        from Ready to the window's end: when, from Ready, and its reads) and each pass's span of
        reads explain that figure; the timings are noisy on a shared machine, the counts are not."""
        proxy = self.proxy
        assert proxy is not None
        ready = time.time()
        timed_from = ready + self.resync
        timed_until = timed_from + self.resync * self.steady_intervals
        deadline = timed_until + (self.steady_intervals + 3) * self.resync + 60
        steady_rv = None
        while True:
            passes.poll()
            ends = passes.full_ends(after=timed_from)
            if steady_rv is None and ends:
                steady_rv = self._resource_version(sandbox)
            if len(ends) > self.steady_intervals and time.time() >= timed_until:
                break
            if time.time() > deadline:
                raise TimeoutError(f"{len(ends)} drift passes ended after settling; see {passes.path}")
            time.sleep(0.05)
        assert steady_rv is not None
        k8s_writes = self._resource_version(sandbox) - steady_rv
        ends = ends[:self.steady_intervals + 1]
        calls = proxy.calls()
        per_pass = [[call for call in calls if begin < call.at <= end] for begin, end in itertools.pairwise(ends)]
        window = _by_operation(call for call in calls if ends[0] < call.at <= ends[-1])
        reads = [[call for call in made if call.operation.startswith(READS)] for made in per_pass]
        since_ready = [(end, [call for call in calls if begin < call.at <= end and call.operation.startswith(READS)])
                       for begin, end in itertools.pairwise(passes.full_ends(after=0.0)) if ready < end <= ends[-1]]
        return {
            "intervals": self.steady_intervals,
            "passes": len(per_pass),
            "other_checks": passes.others(ends[0], ends[-1]),
            "window_s": round(ends[-1] - ends[0], 1),
            "aws_reads": sum(n for op, n in window.items() if op.startswith(READS)),
            "aws_writes": sum(n for op, n in window.items() if not op.startswith(READS)),
            "aws_calls": window,
            "k8s_writes": k8s_writes,
            "reads_per_pass": [len(made) for made in reads],
            "reads_per_pass_by_operation": [_by_operation(made) for made in reads],
            "pass_floor": sum(self.scenario.pass_floor().values()),
            "pass_floor_by_operation": self.scenario.pass_floor(),
            "pass_reads_span_s": [round(made[-1].at - made[0].at, 1) if made else 0.0 for made in reads],
            "passes_after_ready": [{"ended_s": round(end - ready, 1), "reads": len(made)} for end, made in since_ready],
            "timed_window": {
                "from_ready_s": round(timed_from - ready, 1), "seconds": self.resync * self.steady_intervals,
                "aws_reads": sum(1 for call in calls
                                 if timed_from <= call.at < timed_until and call.operation.startswith(READS)),
                "passes_ended": sum(1 for when in ends if when < timed_until),
            },
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

    def _grants(self, sandbox: Sandbox) -> list[dict[str, Any]]:
        return list(_kube_get(sandbox, "/apis/ecraccess.io/v1alpha1/ecraccessgrants").get("items", []))

    def _wait_all_ready(self, sandbox: Sandbox, started: float, timeout: float = 1800.0) -> float:
        last = -1
        while time.monotonic() - started < timeout:
            ready = sum(1 for item in self._grants(sandbox) if _is_ready(item))
            if ready != last:
                print(f"\r  N={self.scenario.grants}: {ready}/{self.scenario.grants} Ready after "
                      f"{time.monotonic() - started:.1f}s", end="", file=sys.stderr, flush=True)
                last = ready
            if ready == self.scenario.grants:
                print(file=sys.stderr)
                return time.monotonic() - started
            time.sleep(0.25)
        raise TimeoutError(f"only {last}/{self.scenario.grants} grants Ready after {timeout}s")

    def _resource_version(self, sandbox: Sandbox) -> int:
        """kubesim has one global resourceVersion: its growth counts every Kubernetes write."""
        body = _kube_get(sandbox, "/api/v1/namespaces")
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


class PassLog:
    """The operator's drift checks as they end, read from its log as it grows."""

    def __init__(self, path: pathlib.Path, grants: int) -> None:
        self.path = path
        self.grants = grants  # a pass checks all of them; a check of fewer is a retry or a recheck
        self._offset = path.stat().st_size if path.exists() else 0
        self._tail = ""
        self.ended: list[tuple[float, int]] = []  # (when it ended, time.time(); grants checked), in order

    def poll(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        *lines, self._tail = (self._tail + data.decode(errors="replace")).split("\n")
        for line in lines:
            found = PASS_ENDED.search(line)
            if found:
                when = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                self.ended.append((when, int(found.group(2))))

    def full_ends(self, after: float) -> list[float]:
        """When each pass over all the grants ended, after `after`."""
        return [when for when, checked in self.ended if checked >= self.grants and when > after]

    def others(self, start: float, end: float) -> int:
        """How many checks of fewer grants ended from `start` to `end`."""
        return sum(1 for when, checked in self.ended if checked < self.grants and start < when <= end)


def _by_operation(calls: Iterable[Arrival]) -> dict[str, int]:
    return dict(sorted(collections.Counter(call.operation for call in calls).items()))


def _ours(statement: dict[str, Any]) -> bool:
    return str(statement.get("Sid", "")).startswith("EcrAccessGrant")


def _is_ready(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
    return bool(ready) and ready[0].get("status") == "True" and \
        status.get("observedGeneration") == item["metadata"].get("generation")


def _kube_get(sandbox: Sandbox, path: str) -> dict[str, Any]:
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    with urllib.request.urlopen(server + path, timeout=30) as answer:  # loopback kubesim
        return dict(json.loads(answer.read()))


def _status_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status: VmHWM is the peak resident set, VmRSS the current one."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def plot(results: list[dict[str, Any]], path: pathlib.Path) -> None:
    import matplotlib  # noqa: PLC0415 - only the plot needs it

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    sizes = [item["n"] for item in results]
    figure, (calls, converge) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    calls.plot(sizes, [item["aws_calls_total"] for item in results], "o-", label="operator (measured)")
    calls.plot(sizes, [item["lower_bound_total"] for item in results], "s--", label="lower bound")
    calls.plot(sizes, [item["per_grant_design_calls"] for item in results], "^:", label="per-grant design")
    calls.set(xscale="log", yscale="log", xlabel="grants (N)", ylabel="AWS calls to converge",
              title="AWS calls, cold start")
    calls.legend()
    converge.plot(sizes, [item["converge_s"] for item in results], "o-")
    converge.set(xscale="log", xlabel="grants (N)", ylabel="seconds", title="Time until every grant is Ready")
    for axis in (calls, converge):
        axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so that the sandbox's context manager stops its processes


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated N values")
    parser.add_argument("--resync", type=float, default=10.0, help="operator resync interval (seconds)")
    parser.add_argument("--steady-intervals", type=int, default=3)
    parser.add_argument("--drift-samples", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="results JSON (default bench/results/)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--no-metrics", action="store_true", help="run the operator with --metrics-port 0")
    args = parser.parse_args(argv)
    sizes = [int(item) for item in args.sizes.split(",") if item]
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"bench-{n}-") as workdir:
            bench = Bench(Scenario.sized(n), args.resync, args.steady_intervals, args.drift_samples,
                          pathlib.Path(workdir), metrics=not args.no_metrics)
            result = bench.run()
        results.append(result)
        print(json.dumps({key: result[key] for key in ("n", "converge_s", "aws_calls_total", "lower_bound_total",
                                                       "ratio_to_lower_bound", "peak_rss_mib")}), flush=True)
        steady = result["steady"]
        print(f"  steady: {steady['passes']} passes in {steady['window_s']:.0f}s (reads over "
              f"{steady['pass_reads_span_s']} s; passes since Ready {steady['passes_after_ready']}): "
              f"reads per pass "
              f"{steady['reads_per_pass']} (floor {steady['pass_floor']}), by operation "
              f"{steady['reads_per_pass_by_operation']}; window {steady['aws_reads']} reads / "
              f"{steady['aws_writes']} writes / {steady['k8s_writes']} k8s writes; "
              f"timed window {steady['timed_window']}; "
              f"drift repair: {result['drift_repair_s']}", flush=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    out = args.out or RESULTS / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
               "kubectl": subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True,
                                         text=True, check=False).stdout and "1.32"}
    out.write_text(json.dumps({"date": stamp, "machine": machine, "results": results}, indent=2) + "\n")
    if not args.no_plot:
        plot(results, out.with_suffix(".png"))
    print(f"wrote {out}" + ("" if args.no_plot else f" and {out.with_suffix('.png')}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
