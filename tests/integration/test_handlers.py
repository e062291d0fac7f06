"""kopf handlers called directly, with a real `kopf.Patch`, against moto: the status users will read."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
from typing import Any

import kopf
import pytest

from ecr_access import events, grants, handlers, watches
from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.grants import LiveGrant
from ecr_access.model import REFERENCE_ACTIONS, GrantKey
from ecr_access.sweep import Sweeper
from tests.integration.cluster import TRAINER_ARN, Cluster, spec
from tests.integration.conftest import HOME, NODE_ROLE, READ_ONLY, World


def test_create_writes_the_exact_status(world: World, cluster: Cluster) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))

    patch = cluster.call(handlers.on_grant_create, "g")

    sid = world.ours("ml/trainer")[0]["Sid"]
    assert patch.pop("metadata") == {"annotations": {grants.APPLIED_ANNOTATION: json.dumps(
        {"actions": list(REFERENCE_ACTIONS), "deletionPolicy": "Delete", "managedPolicy": "ReadOnly",
         "repositories": [{"arn": TRAINER_ARN}], "role": {"name": NODE_ROLE}}, separators=(",", ":"))}}
    assert patch == {"status": {
        "observedGeneration": 1,
        "roleArn": role_arn,
        "managedPolicyArn": READ_ONLY,
        "managedPolicyOwned": True,
        "readyRepositories": "1/1",
        "repositories": [{"arn": TRAINER_ARN, "sid": sid, "ready": True, "reason": "Applied", "message": ""}],
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Reconciled", "observedGeneration": 1,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "message": f"Role {role_arn} may pull from 1 repository"
                       " and has AmazonEC2ContainerRegistryReadOnly attached.",
        }],
    }}


def test_nothing_changed_means_no_patch_at_all(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "g")
    world.calls.clear()

    assert cluster.drift("g") == {}
    assert cluster.call(handlers.on_grant_resume, "g") == {}
    assert world.calls.writes() == []


def test_a_drift_check_reads_afresh_once_what_a_handler_read_moments_before(world: World, cluster: Cluster) -> None:
    """A drift check reuses only what it read itself: an answer from before it began, however young,
    could hide drift made since (`drift`)."""
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "g")
    world.calls.clear()

    cluster.drift("g", interval=300)

    assert sorted(world.calls.made) == ["GetRepositoryPolicy", "GetRole", "ListAttachedRolePolicies"]


def test_spec_change_moves_observed_generation_but_not_transition_time(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    world.create_repository("ml/serving")
    cluster.put("g", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "g")

    cluster.put("g", spec("ml/trainer", "ml/serving"), generation=2)
    patch = cluster.call(handlers.on_grant_update, "g")

    assert patch["status"]["observedGeneration"] == 2
    ready = cluster.conditions("g")["Ready"]
    assert ready["observedGeneration"] == 2
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z", "Ready stayed True: no transition"
    assert cluster.bodies["g"]["status"]["readyRepositories"] == "2/2"
    assert len(world.ours("ml/serving")) == 1


def test_condition_transitions_when_the_role_disappears_and_returns(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer", managedPolicy="None"))
    cluster.call(handlers.on_grant_create, "g")
    world.iam.delete_role(RoleName=NODE_ROLE)

    cluster.drift("g")
    broken = cluster.conditions("g")
    assert broken["Ready"]["status"] == "False"
    assert broken["Ready"]["reason"] == "RoleNotFound"
    assert broken["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:01Z"
    assert broken["Stalled"]["status"] == "True"
    assert "Reconciling" not in broken
    assert world.ours("ml/trainer") == [], "the role no longer resolves, so it is left out"

    world.create_role()
    cluster.drift("g")
    healed = cluster.conditions("g")
    assert healed["Ready"]["status"] == "True"
    assert healed["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:02Z"
    assert set(healed) == {"Ready"}


def test_throttling_raises_a_retry_and_reports_reconciling(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    world.calls.inject("GetRole", "Throttling", "Rate exceeded")

    with pytest.raises(kopf.TemporaryError):
        cluster.call(handlers.on_grant_create, "g")
    assert cluster.conditions("g")["Reconciling"]["reason"] == "Throttled"
    assert cluster.bodies["g"]["status"]["observedGeneration"] == 1

    cluster.call(handlers.on_grant_create, "g")  # kopf's retry
    assert set(cluster.conditions("g")) == {"Ready"}
    assert cluster.conditions("g")["Ready"]["status"] == "True"


def test_invalid_spec_is_stalled_without_calling_aws(world: World, cluster: Cluster) -> None:
    # The CRD cannot see that these two items are one repository: only the operator knows its region.
    cluster.put("g", {"role": {"name": "r"}, "repositories": [
        {"name": "ml/trainer"}, {"arn": TRAINER_ARN}]})

    cluster.call(handlers.on_grant_create, "g")

    stalled = cluster.conditions("g")["Stalled"]
    assert stalled["reason"] == "InvalidSpec"
    assert "spec.repositories[1]" in stalled["message"]
    assert world.calls.made == []


def test_suspend_changes_nothing_but_acknowledges_the_generation(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "g")
    before = copy.deepcopy(cluster.bodies["g"]["status"])
    world.calls.clear()

    cluster.put("g", spec("ml/trainer", "ml/other", suspend=True), generation=2)
    patch = cluster.call(handlers.on_grant_update, "g")

    assert patch == {"status": {"observedGeneration": 2}}
    assert world.calls.made == []
    assert {k: v for k, v in cluster.bodies["g"]["status"].items() if k != "observedGeneration"} == {
        k: v for k, v in before.items() if k != "observedGeneration"}


def test_suspended_grant_keeps_its_principal_when_others_recompute(world: World, cluster: Cluster) -> None:
    role_arn = world.create_role()
    other_arn = world.create_role("other")
    world.create_repository("ml/trainer")
    cluster.put("a", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "a")
    cluster.put("a", spec("ml/trainer", suspend=True), generation=2)
    cluster.call(handlers.on_grant_update, "a")
    cluster.put("b", {"role": {"name": "other"}, "repositories": [{"name": "ml/trainer"}]})

    cluster.call(handlers.on_grant_create, "b")

    assert world.ours("ml/trainer")[0]["Principal"] == {"AWS": sorted([role_arn, other_arn])}


def test_a_grant_created_suspended_contributes_nothing(world: World, cluster: Cluster) -> None:
    world.create_role()
    other_arn = world.create_role("other")
    world.create_repository("ml/trainer")
    cluster.put("a", spec("ml/trainer", suspend=True))
    cluster.put("b", {"role": {"name": "other"}, "repositories": [{"name": "ml/trainer"}]})

    cluster.call(handlers.on_grant_create, "a")
    cluster.call(handlers.on_grant_create, "b")

    assert world.ours("ml/trainer")[0]["Principal"] == {"AWS": [other_arn]}
    assert READ_ONLY not in world.attached(), "suspend: change nothing for me"


def test_delete_releases_and_lets_the_finalizer_go(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "g")
    cluster.bodies["g"]["metadata"]["deletionTimestamp"] = "2026-01-01T01:00:00Z"

    cluster.call(handlers.on_grant_delete, "g")  # no exception: kopf removes the finalizer

    assert world.policy("ml/trainer") is None
    assert READ_ONLY not in world.attached()


def test_delete_that_cannot_finish_keeps_the_finalizer(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "g")
    cluster.bodies["g"]["metadata"]["deletionTimestamp"] = "2026-01-01T01:00:00Z"
    world.calls.inject("SetRepositoryPolicy", "AccessDeniedException", "no", times=1)
    world.calls.inject("DeleteRepositoryPolicy", "AccessDeniedException", "no", times=1)

    with pytest.raises(kopf.TemporaryError):
        cluster.call(handlers.on_grant_delete, "g")
    assert cluster.conditions("g")["Stalled"]["reason"] == "AccessDenied"
    assert len(world.ours("ml/trainer")) == 1, "nothing was removed"

    cluster.call(handlers.on_grant_delete, "g")  # the retry succeeds
    assert world.policy("ml/trainer") is None


def test_indexes_leave_out_deleting_and_invalid_grants(world: World, cluster: Cluster) -> None:
    cluster.put("live", spec("ml/trainer"))
    cluster.put("deleting", spec("ml/trainer"))
    cluster.bodies["deleting"]["metadata"]["deletionTimestamp"] = "2026-01-01T01:00:00Z"
    cluster.put("invalid", {"role": {}, "repositories": [{"name": "ml/trainer"}]})

    [(repo, grants)] = cluster.indexes()[watches.BY_REPOSITORY].items()

    assert repo.arn == TRAINER_ARN
    assert [grant.key.name for grant in grants] == ["live"]


def test_register_uses_our_fixed_ids_and_finalizer() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, Config(resync_interval=42), lambda config: None)
    ids = {handler.id for handler in registry._spawning.get_all_handlers()}
    ids |= {handler.id for handler in registry._changing.get_all_handlers()}
    ids |= {handler.id for handler in registry._indexing.get_all_handlers()}
    ids |= {handler.id for handler in registry._watching.get_all_handlers()}
    assert {"apply-on-create", "apply-on-update", "apply-on-resume", "release", "reconcile-request",
            watches.BY_REPOSITORY, watches.BY_ROLE} <= ids
    assert registry._spawning.get_all_handlers() == [], "no per-grant timers: one drift loop checks them all"
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    assert settings.persistence.finalizer == "ecraccess.io/finalizer"


def test_an_index_entry_changes_when_only_the_status_does(cluster: Cluster) -> None:
    """kopf replaces an index entry only if the new one compares unequal, and the drift check reads a
    grant's status from its entry: a status-only change must make a different entry, or the drift
    check would keep "repairing" a status that is already right (a Kubernetes write every pass)."""
    before = cluster.put("g", spec("ml/trainer"))
    after = copy.deepcopy(before)
    after["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}

    [(_, old)] = watches.index_by_role(kopf.Body(before), cluster.memo).items()
    [(_, new)] = watches.index_by_role(kopf.Body(after), cluster.memo).items()

    assert old != new
    assert new.status["observedGeneration"] == 1 and new.generation == 1 and new.uid == "uid-g"
    assert hash(old) == hash(new), "still hashable, the status left out of the hash"


def test_slow_work_on_a_new_generation_says_reconciling_at_once(world: World, cluster: Cluster) -> None:
    """While AWS is slow, a new grant must not go without status: Reconciling as soon as work starts."""
    import time  # noqa: PLC0415

    world.create_role()
    world.create_repository("ml/trainer")
    world.session.session.events.register("before-call.ecr.*", lambda **_: time.sleep(0.2))
    cluster.runtime_config(progress_after=0.05)
    cluster.put("g", spec("ml/trainer"))

    cluster.call(handlers.on_grant_create, "g")

    [(name, early)] = cluster.direct
    assert name == "g"
    by_type = {item["type"]: item for item in early["conditions"]}
    assert (by_type["Ready"]["status"], by_type["Reconciling"]["status"]) == ("False", "True")
    assert by_type["Reconciling"]["reason"] == "Progressing" and by_type["Reconciling"]["observedGeneration"] == 1
    final = cluster.conditions("g")
    assert final["Ready"]["status"] == "True" and "Reconciling" not in final


def test_quick_work_writes_status_once(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))

    cluster.call(handlers.on_grant_create, "g")

    assert cluster.direct == [], "no progress report when the work is done within progress_after"


def test_a_reconcile_request_rechecks_at_once_with_fresh_reads_and_is_echoed(world: World, cluster: Cluster) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "g")
    world.ecr().delete_repository_policy(repositoryName="ml/trainer")  # drift, within every cache's age
    written: list[dict[str, Any]] = []
    checker = DriftChecker(world.reconciler, interval=300, retry_delay=15, now=handlers.now,
                           write_status=lambda grant, status: written.append(dict(status)),
                           warn=lambda grant, reason, message: None)
    checker.indexes_ready(watches.live(cluster.indexes(), cluster.config))
    runtime = dataclasses.replace(cluster.memo.runtime, drift=checker)
    body = cluster.bodies["g"]
    body["metadata"]["annotations"][handlers.RECONCILE_REQUESTED] = "2026-12-01T10:00:00Z"
    world.calls.clear()

    cluster.loop.run_until_complete(handlers.on_grant_event(body=kopf.Body(body), memo=kopf.Memo(runtime=runtime)))
    cluster.loop.run_until_complete(checker.check_requested())

    assert world.calls.count("GetRole") == 1 and world.calls.count("GetRepositoryPolicy") >= 1, "fresh reads"
    assert len(world.ours("ml/trainer")) == 1, "the drift is repaired at once, not at the next pass"
    [status] = written
    assert status["lastHandledReconcileAt"] == "2026-12-01T10:00:00Z"

    body["status"].update(status)
    cluster.loop.run_until_complete(handlers.on_grant_event(body=kopf.Body(body), memo=kopf.Memo(runtime=runtime)))
    assert checker._requested == {}, "a value already handled is not checked again"


def test_a_resume_while_aws_is_slow_reports_no_progress(world: World, cluster: Cluster) -> None:
    """An operator restart re-applies every grant: a generation already observed must not flip to
    Ready=False (Progressing) and back, nor move lastTransitionTime."""
    import time  # noqa: PLC0415

    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    cluster.call(handlers.on_grant_create, "g")
    before = cluster.conditions("g")["Ready"]
    world.session.session.events.register("before-call.*.*", lambda **_: time.sleep(0.2))
    cluster.runtime_config(progress_after=0.01, cache_ttl=0.0)

    assert cluster.call(handlers.on_grant_resume, "g") == {}

    assert cluster.direct == []
    assert cluster.conditions("g")["Ready"] == before


@pytest.mark.parametrize("edit", [
    pytest.param({"suspend": True}, id="suspended"),
    pytest.param({"repositories": [{"name": "ml/trainer"}, {"arn": TRAINER_ARN}]}, id="invalid"),
])
def test_a_reconcile_request_on_a_grant_with_nothing_to_check_is_acknowledged(
    world: World, cluster: Cluster, edit: dict[str, Any]
) -> None:
    cluster.put("g", {**spec("ml/trainer"), **edit})
    checker = DriftChecker(world.reconciler, interval=300, retry_delay=15, now=handlers.now,
                           write_status=lambda grant, status: None, warn=lambda grant, reason, message: None)
    runtime = dataclasses.replace(cluster.memo.runtime, drift=checker)
    body = cluster.bodies["g"]
    body["metadata"]["annotations"][handlers.RECONCILE_REQUESTED] = "t1"

    cluster.loop.run_until_complete(handlers.on_grant_event(body=kopf.Body(body), memo=kopf.Memo(runtime=runtime)))

    assert cluster.direct == [("g", {"lastHandledReconcileAt": "t1"})]
    assert checker._requested == {} and world.calls.made == []


def test_the_operator_is_ready_once_kopf_calls_a_resource_handler(world: World, cluster: Cluster) -> None:
    # kopf calls no resource handler before every index is listed: the first call is the signal.
    readiness = cluster.memo.runtime.readiness
    readiness.aws_answered = True  # cli.build_runtime's doing: GetCallerIdentity answered
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    assert not readiness.ready

    cluster.call(handlers.on_grant_resume, "g")

    assert readiness.ready


def _startup(build_runtime: Any, config: Config) -> Any:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, config, build_runtime)
    [startup] = [handler for handler in registry._activities.get_all_handlers() if handler.id == "startup"]
    return startup.fn


@pytest.mark.parametrize("grants_at_start", [0, 1])
def test_startup_asks_the_api_nothing_and_is_ready_at_once_only_with_no_grants(
        cluster: Cluster, grants_at_start: int) -> None:
    # cli.build_runtime counted the grants before kopf started (a refusal exits there, with the reason).
    runtime = dataclasses.replace(cluster.memo.runtime, grants_at_start=grants_at_start)
    memo = kopf.Memo()
    startup = _startup(lambda config: runtime, cluster.config)

    cluster.loop.run_until_complete(startup(settings=kopf.OperatorSettings(), memo=memo, **cluster.indexes()))

    assert memo.runtime is runtime
    assert runtime.readiness.indexes_complete is (grants_at_start == 0)


def test_startup_run_again_builds_nothing_and_starts_each_loop_once(world: World, cluster: Cluster) -> None:
    # kopf runs a start-up handler again after it failed: what the first run started must not start twice.
    built: list[handlers.Runtime] = []

    def build(config: Config) -> handlers.Runtime:
        checker = DriftChecker(world.reconciler, interval=300, retry_delay=15, now=handlers.now,
                               write_status=lambda grant, status: None, warn=lambda grant, reason, message: None)
        built.append(dataclasses.replace(cluster.memo.runtime, drift=checker,
                                         sweeper=Sweeper(world.reconciler.repositories, HOME, interval=3600)))
        return built[-1]

    startup = _startup(build, cluster.config)
    memo = kopf.Memo()

    async def twice() -> list[str]:
        for _ in range(2):
            await startup(settings=kopf.OperatorSettings(), memo=memo, **cluster.indexes())
        names = [task.get_name() for task in asyncio.all_tasks()]
        await memo.runtime.drift.stop()
        await memo.runtime.sweeper.stop()
        return names

    names = cluster.loop.run_until_complete(twice())

    assert len(built) == 1
    assert (names.count("drift-check"), names.count("orphan-sweep")) == (1, 1)


def test_an_event_posted_outside_the_operator_is_logged_naming_its_grant(caplog: pytest.LogCaptureFixture) -> None:
    grant = LiveGrant(GrantKey("team-ml", "trainer"), None, uid="uid-1")  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="ecr_access.events"):
        events.warn(grant, "Stalled", "the repository is gone")
    [record] = caplog.records
    assert "team-ml/trainer" in record.getMessage() and "Stalled" in record.getMessage()
    assert record.grant["name"] == "trainer"  # type: ignore[attr-defined]
