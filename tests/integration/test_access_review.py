"""Review of issue 16's wiring against moto and the handlers: the readiness probe and the access check."""

from __future__ import annotations

import pytest

from ecr_access import handlers
from ecr_access.ports import AwsFault, FaultKind
from tests.integration.cluster import Cluster, spec
from tests.integration.conftest import Grants, World
from tests.integration.test_identity_check import SimulatingIam, applied


def test_ready_when_kopf_calls_only_the_event_handler(world: World, cluster: Cluster) -> None:
    # The only grant is being deleted and holds someone else's finalizer, ours already gone: kopf
    # calls none of its changing handlers for it (no create, resume nor delete), only the event
    # handler, on its first listing. grants_at_start is 1, so start-up did not say ready either: the
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


@pytest.mark.parametrize("account", [None, "210987654321"])
def test_no_permission_to_simulate_names_the_file_that_grants_it(world: World, grants: Grants,
                                                                account: str | None) -> None:
    # The generic AccessDenied hint names operator-policy.json, or for another account the
    # registry- and cloud-account files: none of them holds iam:SimulatePrincipalPolicy.
    fault = AwsFault(FaultKind.ACCESS_DENIED, "SimulatePrincipalPolicy", "IAM role x",
                     "not authorized to perform: iam:SimulatePrincipalPolicy")
    fault.account = account
    ready = applied(world, grants, SimulatingIam(world.session, fault=fault))["conditions"][0]

    assert ready["reason"] == "AccessDenied"
    assert "verify-identity-policy.json" in ready["message"] and "ECR_ACCESS_VERIFY_IDENTITY" in ready["message"]
    assert "cloud-account-policy.json" not in ready["message"]
    assert (account or "") in ready["message"]
