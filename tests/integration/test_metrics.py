"""Metrics (issue 15) against moto: what the counters and gauges say after real syncs, and that
counting adds no AWS call. Values are read from the operator's own registry, as a scrape would."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from ecr_access import attachments, cycle
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.metrics import CONTROLLER, QUEUE, Metrics
from ecr_access.reconcile import ApplyMode, Reconciler
from tests.integration.conftest import (
    ACCOUNT,
    CLUSTER_ID,
    FOREIGN,
    NODE_ROLE,
    READ_ONLY,
    REGION,
    Grants,
    World,
    no_sleep,
    settings,
)


def value(metrics: Metrics, metric: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(metric, labels) or 0.0


def counted(world: World) -> tuple[Reconciler, Metrics]:
    metrics = Metrics()
    session = AwsSession.create(REGION, metrics=metrics)
    session.session.events.register("before-call.*.*", world.calls.before_call)
    reconciler = Reconciler(IamAdapter(session), EcrAdapter(session), cluster_id=CLUSTER_ID, account=ACCOUNT,
                            config=settings(), sleep=no_sleep, metrics=metrics)
    return reconciler, metrics


def report(world: World, reconciler: Reconciler, grants: Grants, key: Any, spec: Any, mode: ApplyMode) -> Any:
    return world.run(cycle.apply_and_report(
        reconciler, key, spec, grants, generation=1, previous={}, applied=spec, recorded=None, mode=mode,
        timing=cycle.Timing(15, 300), now=lambda: "T"))


def test_what_a_grant_did_is_counted_and_drift_repairs_are_told_apart(world: World, grants: Grants) -> None:
    reconciler, metrics = counted(world)
    world.create_role()
    world.create_repository("ml/a", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})

    report(world, reconciler, grants, key, spec, ApplyMode())

    assert value(metrics, "controller_runtime_reconcile_total", controller=CONTROLLER, result="success") == 1
    assert value(metrics, "ecr_access_grants", ready="True", reason="Reconciled") == 1
    assert value(metrics, "ecr_access_policy_writes_total", result="written") == 1
    assert value(metrics, "ecr_access_policy_writes_total", result="verified") == 1
    assert value(metrics, "ecr_access_aws_requests_total", service="ecr", operation="SetRepositoryPolicy",
                 code="OK", cause="change") == 1
    assert value(metrics, "ecr_access_aws_requests_total", service="iam", operation="AttachRolePolicy",
                 code="OK", cause="change") == 1
    assert value(metrics, "workqueue_adds_total", name=QUEUE) == 1
    assert value(metrics, "workqueue_depth", name=QUEUE) == 0
    assert value(metrics, "workqueue_queue_duration_seconds_count", name=QUEUE) == 1
    assert value(metrics, "ecr_access_policy_size_ratio_count") == 1
    assert 0 < value(metrics, "ecr_access_policy_size_ratio_sum") < 0.2
    assert value(metrics, "ecr_access_drift_repairs_total", kind="statement") == 0  # a change is no repair

    # Someone removes our statement, and detaches the managed policy: the drift check repairs both.
    world.ecr().set_repository_policy(repositoryName="ml/a", policyText=json.dumps(
        {"Version": "2012-10-17", "Statement": [FOREIGN]}))
    world.iam.detach_role_policy(RoleName=NODE_ROLE, PolicyArn=READ_ONLY)
    report(world, reconciler, grants, key, spec, ApplyMode.drift(since=reconciler.clock()))
    assert value(metrics, "ecr_access_drift_repairs_total", kind="statement") == 1
    assert value(metrics, "ecr_access_drift_repairs_total", kind="managed_policy") == 1
    assert value(metrics, "ecr_access_drift_repairs_total", kind="principal") == 0

    # A quiet pass: nothing written, nothing repaired.
    report(world, reconciler, grants, key, spec, ApplyMode.drift(since=reconciler.clock()))
    assert value(metrics, "ecr_access_policy_writes_total", result="written") == 2
    assert value(metrics, "ecr_access_drift_repairs_total", kind="statement") == 1

    # Deleted while the operator was down: the sweep's clean-up is an orphan repair.
    grants.remove(key)
    world.sweep(grants, reconciler=reconciler)
    assert value(metrics, "ecr_access_drift_repairs_total", kind="orphan") == 1


def test_a_stalled_grant_is_counted_by_its_reason_and_an_aws_error_by_its_code(world: World, grants: Grants) -> None:
    reconciler, metrics = counted(world)
    world.create_role()
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/missing"}]})

    report(world, reconciler, grants, key, spec, ApplyMode())

    assert value(metrics, "ecr_access_grants", ready="False", reason="RepositoryNotFound") == 1
    # The alert "a grant Stalled for 15 minutes" reads this one (Ready=False alone is also a retry).
    assert value(metrics, "ecr_access_grants_stalled", reason="RepositoryNotFound") == 1
    # Stalled is a finished reconcile (the verdict is in status; a person acts), as a Go operator that
    # sets a condition and returns no error: counted as success, with the state in ecr_access_grants.
    assert value(metrics, "controller_runtime_reconcile_total", controller=CONTROLLER, result="success") == 1
    assert value(metrics, "ecr_access_aws_requests_total", service="ecr", operation="GetRepositoryPolicy",
                 code="RepositoryNotFoundException", cause="change") == 1
    metrics.grant_gone(key)
    assert value(metrics, "ecr_access_grants", ready="False", reason="RepositoryNotFound") == 0
    assert value(metrics, "ecr_access_grants_stalled", reason="RepositoryNotFound") == 0


def test_a_ready_grant_is_not_counted_stalled_and_the_process_start_is_exposed(world: World, grants: Grants) -> None:
    reconciler, metrics = counted(world)
    world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})

    report(world, reconciler, grants, key, spec, ApplyMode())

    assert value(metrics, "ecr_access_grants", ready="True", reason="Reconciled") == 1
    assert not [sample for family in metrics.registry.collect() if family.name == "ecr_access_grants_stalled"
                for sample in family.samples]
    # The "no drift pass for 3 intervals" alert needs the process's age, so as not to fire at start-up.
    assert value(metrics, "process_start_time_seconds") > 0


def test_counting_adds_no_aws_call(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    world.calls.clear()
    report(world, world.reconciler, grants, key, spec, ApplyMode())  # no metrics on its session
    without = list(world.calls.made)
    grants.remove(key)
    world.release(key, spec, spec, grants)
    reconciler, _ = counted(world)
    grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    world.calls.clear()
    report(world, reconciler, grants, key, spec, ApplyMode())
    assert world.calls.made == without


def test_every_policy_write_has_an_audit_line_naming_the_grant_and_the_principals(
        world: World, grants: Grants, caplog: pytest.LogCaptureFixture) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]},
                           namespace="team-ml")
    caplog.set_level(logging.INFO, logger="ecr_access")

    world.apply(key, spec, None, grants)
    grants.remove(key)
    world.release(key, spec, spec, grants)

    audit = [record.getMessage() for record in caplog.records if record.getMessage().startswith("AUDIT")]
    repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/a"
    [granted] = [line for line in audit if line.startswith(f"AUDIT SetRepositoryPolicy {repo}")]
    assert f"added ['{role_arn}']" in granted and "team-ml/g" in granted
    [removed] = [line for line in audit if line.startswith(f"AUDIT DeleteRepositoryPolicy {repo}")]
    assert f"removed ['{role_arn}']" in removed and "requested by ['team-ml/g']" in removed
    [attached] = [line for line in audit if line.startswith("AUDIT AttachRolePolicy")]
    assert READ_ONLY in attached and role_arn in attached and "team-ml/g" in attached
    [detached] = [line for line in audit if line.startswith("AUDIT DetachRolePolicy")]
    assert READ_ONLY in detached and role_arn in detached


def test_the_role_ledger_writes_have_audit_lines_naming_the_role_and_the_grant_that_asked(
        world: World, grants: Grants, caplog: pytest.LogCaptureFixture) -> None:
    """The ledger's tags decide who may detach a policy, so their writes are audited like the
    attach itself; and a detach names the grant whose delete asked for it, not just "no grant"."""
    role_arn = world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]},
                           namespace="team-ml")
    caplog.set_level(logging.INFO, logger="ecr_access")
    mine, attached = attachments.cluster_tag(CLUSTER_ID), attachments.ATTACHED_TAG

    world.apply(key, spec, None, grants)
    grants.remove(key)
    world.release(key, spec, spec, grants)

    audit = [record.getMessage() for record in caplog.records if record.getMessage().startswith("AUDIT")]
    role_lines = [line for line in audit if "RepositoryPolicy" not in line]
    assert role_lines == [
        f"AUDIT TagRole {role_arn}: {attached}=ReadOnly, {mine}=ReadOnly; requested by ['team-ml/g']",
        f"AUDIT AttachRolePolicy {READ_ONLY} on {role_arn}; for grants ['team-ml/g']; requested by ['team-ml/g']",
        f"AUDIT UntagRole {role_arn}: {mine} (was ReadOnly); requested by ['team-ml/g']",
        f"AUDIT DetachRolePolicy {READ_ONLY} on {role_arn}; for grants none (no live grant wants it);"
        " requested by ['team-ml/g']",
        f"AUDIT UntagRole {role_arn}: {attached} (was ReadOnly); requested by ['team-ml/g']",
    ]


def test_a_drift_repair_is_audited_as_the_drift_checks_not_the_grants(
        world: World, grants: Grants, caplog: pytest.LogCaptureFixture) -> None:
    """"Who re-attached this policy?": the drift check did, not a change of the grant. The role's
    lines must say so as the repository's do, or a search for the drift check's repairs misses them."""
    reconciler, _ = counted(world)
    world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    report(world, reconciler, grants, key, spec, ApplyMode())
    world.ecr().delete_repository_policy(repositoryName="ml/a")
    world.iam.detach_role_policy(RoleName=NODE_ROLE, PolicyArn=READ_ONLY)
    caplog.set_level(logging.INFO, logger="ecr_access")

    report(world, reconciler, grants, key, spec, ApplyMode.drift(since=reconciler.clock()))

    audit = [record.getMessage() for record in caplog.records if record.getMessage().startswith("AUDIT")]
    assert any(line.startswith("AUDIT SetRepositoryPolicy") for line in audit)
    assert any(line.startswith("AUDIT AttachRolePolicy") for line in audit)
    assert all(line.endswith("requested by the drift check") for line in audit), audit


def test_the_grants_gauge_can_be_scraped_while_the_loop_changes_it() -> None:
    """prometheus_client scrapes on its own thread; the loop adds and drops grants meanwhile."""
    import sys  # noqa: PLC0415
    import threading  # noqa: PLC0415

    metrics = Metrics()
    stop = threading.Event()
    errors: list[BaseException] = []

    def scrape() -> None:
        while not stop.is_set():
            try:
                metrics.registry.get_sample_value("ecr_access_grants", {"ready": "True", "reason": "Reconciled"})
            except BaseException as error:  # what the scrape thread would die of
                errors.append(error)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        for round_ in range(200):
            if errors:
                break
            for index in range(500):
                metrics.grant_state((round_, index), "True", "Reconciled")
            for index in range(500):
                metrics.grant_gone((round_, index))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert errors == []


def _drift_report(world: World, reconciler: Reconciler, grants: Grants, key: Any, spec: Any,
                  previous: dict[str, Any]) -> Any:
    return world.run(cycle.apply_and_report(
        reconciler, key, spec, grants, generation=1, previous=previous, applied=spec, recorded=None,
        mode=ApplyMode.drift(since=reconciler.clock()), timing=cycle.Timing(15, 300), now=lambda: "T"))


def test_a_grant_the_policies_permit_again_is_granted_not_repaired(world: World) -> None:
    """A namespace relabelled (or a policy widened) lets a NotPermitted grant in: the drift check
    writes its principal and attaches its managed policy for the first time. Nobody removed
    anything: no DriftRepaired Event saying "someone had removed it", and no drift repair counted.
    Nor is the revocation that follows a repair."""
    from tests.integration.test_tenancy import enforcing, grant, team_policy  # noqa: PLC0415

    reconciler, metrics = counted(world)
    world.create_role()
    world.create_repository("ml/a")
    grants = enforcing(team_policy(), ml={})  # namespace ml is not labelled team=ml yet
    key, spec = grants.add("g", grant("ml/a"), namespace="ml")
    first = report(world, reconciler, grants, key, spec, ApplyMode())
    stalled = {"observedGeneration": 1, **first.status}
    assert [reason for _, reason, _ in first.events] == ["Stalled"]

    grants.labels["ml"] = {"team": "ml"}  # now permitted: re-judged by the drift loop (`revocation`)
    permitted = _drift_report(world, reconciler, grants, key, spec, stalled)

    assert len(world.ours("ml/a")) == 1 and READ_ONLY in world.attached()
    assert [reason for _, reason, _ in permitted.events] == ["Applied"]
    for kind in ("statement", "principal", "managed_policy", "orphan"):
        assert value(metrics, "ecr_access_drift_repairs_total", kind=kind) == 0, kind

    grants.labels["ml"] = {}  # revoked again
    ready = {**stalled, **permitted.status}
    _drift_report(world, reconciler, grants, key, spec, ready)
    assert world.ours("ml/a") == []
    for kind in ("statement", "principal", "managed_policy", "orphan"):
        assert value(metrics, "ecr_access_drift_repairs_total", kind=kind) == 0, kind


def test_drift_repaired_is_told_to_the_grant_whose_statement_was_put_back(world: World, grants: Grants) -> None:
    """Two grants give one role different actions on one repository (two statements). Someone
    removes one statement: only that grant's access was repaired, and it is told so, although the
    role is still in the other statement (the repair is per statement, not per principal)."""
    reconciler, metrics = counted(world)
    world.create_role()
    world.create_repository("ml/a")
    pull_key, pull = grants.add("pull", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    push_key, push = grants.add("push", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}],
                                         "actions": ["ecr:BatchGetImage", "ecr:PutImage"]})
    report(world, reconciler, grants, pull_key, pull, ApplyMode())
    report(world, reconciler, grants, push_key, push, ApplyMode())
    assert len(world.ours("ml/a")) == 2
    pull_sid = reconciler.sid_for(pull)
    world.ecr().set_repository_policy(repositoryName="ml/a", policyText=json.dumps(
        {"Version": "2012-10-17", "Statement": [s for s in world.statements("ml/a") if s["Sid"] != pull_sid]}))

    repaired = _drift_report(world, reconciler, grants, pull_key, pull, {})
    other = _drift_report(world, reconciler, grants, push_key, push, {})

    assert len(world.ours("ml/a")) == 2
    assert [reason for _, reason, _ in repaired.events if reason == "DriftRepaired"] == ["DriftRepaired"]
    assert [reason for _, reason, _ in other.events if reason == "DriftRepaired"] == []
    assert value(metrics, "ecr_access_drift_repairs_total", kind="statement") == 1


def test_a_sweep_that_could_not_clean_leaves_no_orphan_label_on_the_next_write(world: World, grants: Grants) -> None:
    """The sweep's sync fails (it is logged and tried again next sweep); the next write to that
    repository is a grant's own change: neither an orphan repair, nor "requested by the orphan sweep"."""
    reconciler, metrics = counted(world)
    world.create_role()
    world.create_repository("ml/a", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    report(world, reconciler, grants, key, spec, ApplyMode())
    grants.remove(key)  # deleted while the operator was down
    world.calls.inject("SetRepositoryPolicy", "ServerException", "try later", status=500, times=10)
    assert world.sweep(grants, reconciler=reconciler) == []
    world.calls.failures.clear()

    key, spec = grants.add("h", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}],
                                 "actions": ["ecr:BatchGetImage"]})
    report(world, reconciler, grants, key, spec, ApplyMode())

    assert value(metrics, "ecr_access_drift_repairs_total", kind="orphan") == 0


def test_a_suspended_grant_is_still_counted_after_a_restart(world: World, grants: Grants) -> None:
    # A restarted operator sees the suspended grant only through its resume handler: it is counted
    # as its status last said.
    reconciler, metrics = counted(world)
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}], "suspend": True})
    previous = {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled", "message": "m"}]}

    world.run(cycle.apply_and_report(
        reconciler, key, spec, grants, generation=2, previous=previous, applied=spec, recorded=None,
        mode=ApplyMode(), timing=cycle.Timing(15, 300), now=lambda: "T"))

    assert value(metrics, "ecr_access_grants", ready="True", reason="Reconciled") == 1
    assert world.calls.writes() == [] and world.calls.count("GetRole") == 0
