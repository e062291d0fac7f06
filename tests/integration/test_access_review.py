"""Review of issue 16's wiring against moto and the handlers: the readiness probe and the access check."""

from __future__ import annotations

from ecr_access import handlers
from tests.integration.cluster import Cluster, spec
from tests.integration.conftest import World


def test_ready_when_kopf_calls_only_the_event_handler(world: World, cluster: Cluster) -> None:
    # The only grant is being deleted and holds someone else's finalizer, ours already gone: kopf
    # calls none of its changing handlers for it (no create, resume nor delete), only the event
    # handler, on its first listing. count_grants() is 1, so start-up did not say ready either: the
    # probe must not answer 503 for as long as that grant lives. The same holds while every grant's
    # handler waits out a kopf delay from before a restart (a Stalled grant: stalled_retry_delay).
    readiness = cluster.memo.runtime.readiness
    readiness.aws_answered = True
    body = cluster.put("g", spec("ml/trainer"))
    body["metadata"]["finalizers"] = ["example.com/someone-else"]
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"

    cluster.call(handlers.on_grant_event, "g")

    assert readiness.ready
    assert world.calls.made == [], "the event handler still does no AWS work for it"
