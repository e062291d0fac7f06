"""What the operator counts, for Prometheus (`prometheus_client`), served at /metrics (issue 15).

controller-runtime's names where there is one, so that the dashboards and alerts people already
have for Go operators apply: `controller_runtime_reconcile_total{controller,result}`,
`controller_runtime_reconcile_errors_total`, `controller_runtime_reconcile_time_seconds`, and
`workqueue_depth`, `workqueue_adds_total`, `workqueue_queue_duration_seconds` for the repository
sync queue. The rest is this operator's, under `ecr_access_`, with low-cardinality labels only:
per-grant and per-repository state belongs in conditions, not in a time series per object.

One `Metrics` per operator process, passed to the parts that count (no module-level registry:
tests make their own and read it back). Counting adds no AWS or Kubernetes call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTROLLER = "ecraccessgrant"  # controller-runtime's `controller` label: the kind, lower case
QUEUE = "repository_sync"  # the `name` label of the workqueue metrics
# Policy size as a share of ECR's 10,240 characters: the buckets an alert at 90% needs.
SIZE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)
RESULTS = ("success", "error", "requeue_after")  # controller-runtime's, minus `requeue` (we always say when)
WRITE_RESULTS = ("written", "verified", "concurrent_edit")
REPAIR_KINDS = ("statement", "principal", "managed_policy", "orphan")


class _Grants(Collector):
    """`ecr_access_grants{ready,reason}`: how many grants are in each state, from what each grant's
    last check reported (counted when scraped, so a deleted grant leaves no stale series).

    The loop sets and drops states while prometheus_client's server thread scrapes: both hold the
    lock, or the scrape's iteration fails ("dictionary changed size during iteration")."""

    def __init__(self) -> None:
        self.states: dict[Any, tuple[str, str, bool]] = {}
        self.lock = threading.Lock()

    def set(self, key: Any, state: tuple[str, str, bool]) -> None:
        with self.lock:
            self.states[key] = state

    def drop(self, key: Any) -> None:
        with self.lock:
            self.states.pop(key, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("ecr_access_grants", "Grants by their Ready condition's status and reason.",
                                   labels=["ready", "reason"])
        stalled = GaugeMetricFamily("ecr_access_grants_stalled",
                                    "Grants whose Stalled condition is True (a person must act), by reason.",
                                    labels=["reason"])
        counts: dict[tuple[str, str], int] = {}
        stalled_counts: dict[str, int] = {}
        with self.lock:
            states = list(self.states.values())
        for ready, reason, is_stalled in states:
            counts[ready, reason] = counts.get((ready, reason), 0) + 1
            if is_stalled:
                stalled_counts[reason] = stalled_counts.get(reason, 0) + 1
        for (ready, reason), count in sorted(counts.items()):
            family.add_metric([ready, reason], count)
        for reason, count in sorted(stalled_counts.items()):
            stalled.add_metric([reason], count)
        yield family
        yield stalled


class Metrics:
    """Every metric the operator exposes, in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series beside every counter: half the scrape, no use here
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reconcile_total = Counter("controller_runtime_reconcile_total", "Reconciliations of grants, by result.",
                                       ["controller", "result"], registry=r)
        self.reconcile_errors = Counter("controller_runtime_reconcile_errors_total",
                                        "Reconciliations that failed.", ["controller"], registry=r)
        self.reconcile_time = Histogram("controller_runtime_reconcile_time_seconds",
                                        "How long one reconciliation of a grant took.", ["controller"], registry=r)
        self.queue_depth = Gauge("workqueue_depth", "Repositories waiting for a policy sync.", ["name"], registry=r)
        self.queue_adds = Counter("workqueue_adds_total", "Requests for a repository policy sync.", ["name"],
                                  registry=r)
        self.queue_duration = Histogram("workqueue_queue_duration_seconds",
                                        "How long a repository waited from its first request to its sync.",
                                        ["name"], registry=r)
        self.aws_requests = Counter(
            "ecr_access_aws_requests_total",
            "AWS API calls, by answer (OK or the error code) and cause (change: a grant, policy or account "
            "changed; drift: a drift pass; sweep: the orphan sweep).",
            ["service", "operation", "code", "cause"], registry=r)
        self.aws_duration = Histogram("ecr_access_aws_request_duration_seconds",
                                      "How long an AWS API call took, retries included.", ["service", "operation"],
                                      registry=r)
        self.policy_writes = Counter("ecr_access_policy_writes_total",
                                     "Repository policy writes: written, verified by a re-read, or found changed "
                                     "by a concurrent writer.", ["result"], registry=r)
        self.drift_repairs = Counter("ecr_access_drift_repairs_total",
                                     "Drift repaired: a missing statement, a principal, a managed policy, or an "
                                     "orphaned statement.", ["kind"], registry=r)
        self.drift_pass_duration = Histogram("ecr_access_drift_pass_duration_seconds",
                                             "How long a drift pass over every grant took.", registry=r,
                                             buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800))
        self.last_drift_pass = Gauge("ecr_access_last_drift_pass_timestamp_seconds",
                                     "When the last drift pass over every grant ended (Unix time).", registry=r)
        self.policy_size = Histogram("ecr_access_policy_size_ratio",
                                     "Size of each synced repository policy as a share of ECR's 10,240 characters.",
                                     registry=r, buckets=SIZE_BUCKETS)
        self.drift_interval = Gauge("ecr_access_drift_interval_seconds",
                                    "The configured interval between drift passes (ECR_ACCESS_RESYNC_INTERVAL).",
                                    registry=r)
        self._grants = _Grants()
        r.register(self._grants)
        # process_start_time_seconds, process_resident_memory_bytes and the rest, read from /proc: an
        # alert on the drift pass needs to know how long the process has been up.
        ProcessCollector(registry=r)
        # Every label value known in advance starts at 0, so that rate() and absent() work from the start.
        for result in RESULTS:
            self.reconcile_total.labels(CONTROLLER, result)
        self.reconcile_errors.labels(CONTROLLER)
        for result in WRITE_RESULTS:
            self.policy_writes.labels(result)
        for kind in REPAIR_KINDS:
            self.drift_repairs.labels(kind)
        self.queue_depth.labels(QUEUE)
        self.queue_adds.labels(QUEUE)

    def serve(self, port: int, address: str) -> None:
        """Serve /metrics on a thread of its own (prometheus_client's server); raises if the port is taken."""
        start_http_server(port, address, registry=self.registry)

    def reconciled(self, result: str, seconds: float) -> None:
        self.reconcile_total.labels(CONTROLLER, result).inc()
        if result == "error":
            self.reconcile_errors.labels(CONTROLLER).inc()
        self.reconcile_time.labels(CONTROLLER).observe(seconds)

    def grant_state(self, key: Any, ready: str, reason: str, stalled: bool = False) -> None:
        self._grants.set(key, (ready, reason, stalled))

    def grant_gone(self, key: Any) -> None:
        self._grants.drop(key)

    def repaired(self, kind: str, count: int = 1) -> None:
        if count:
            self.drift_repairs.labels(kind).inc(count)

    def written(self, result: str) -> None:
        self.policy_writes.labels(result).inc()

    def aws_call(self, service: str, operation: str, code: str, seconds: float, cause: str = "change") -> None:
        self.aws_requests.labels(service, operation, code, cause).inc()
        self.aws_duration.labels(service, operation).observe(seconds)

    def drift_pass(self, seconds: float, ended: float) -> None:
        self.drift_pass_duration.observe(seconds)
        self.last_drift_pass.set(ended)

    def queued(self, depth: int, adds: int = 1) -> None:
        self.queue_adds.labels(QUEUE).inc(adds)
        self.queue_depth.labels(QUEUE).set(depth)

    def dequeued(self, depth: int, waited: Iterable[float]) -> None:
        self.queue_depth.labels(QUEUE).set(depth)
        for seconds in waited:
            self.queue_duration.labels(QUEUE).observe(seconds)
