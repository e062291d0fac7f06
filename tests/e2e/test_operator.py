"""The operator as users run it: kubectl against kubesim, the real operator process, AWS in moto."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.conftest import (
    ACCOUNT,
    NODE_ROLE,
    READ_ONLY,
    RESYNC,
    Driver,
    eventually,
    grant,
)

pytestmark = pytest.mark.e2e

FOREIGN = {"Sid": "SomeoneElse", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
           "Action": "ecr:PutImage"}


def kstatus_invariants(body: dict[str, Any]) -> None:
    """DESIGN §1's condition rules, checked on every snapshot a test takes."""
    status = body.get("status") or {}
    conditions = {item["type"]: item for item in status.get("conditions", [])}
    generation = body["metadata"]["generation"]
    if not conditions:
        return
    assert "Ready" in conditions, "Ready is always present once conditions are written"
    truthy = {kind for kind, item in conditions.items() if item["status"] == "True"}
    assert not {"Reconciling", "Stalled"} <= truthy, "never Reconciling and Stalled at once"
    if "Ready" in truthy:
        assert not truthy & {"Reconciling", "Stalled"}
        assert status["observedGeneration"] == generation
    assert status.get("observedGeneration", 0) <= generation
    for item in conditions.values():
        assert item["reason"] and item["reason"][0].isupper(), "reasons are CamelCase"
        assert item["lastTransitionTime"].endswith("Z")


def snapshot(driver: Driver, name: str) -> dict[str, Any]:
    body = driver.get(name)
    assert body is not None
    kstatus_invariants(body)
    return body


def test_the_crd_is_installed_and_explained(driver: Driver) -> None:
    crd = json.loads(driver.kubectl("get", "crd", "ecraccessgrants.ecraccess.io", "-o", "json").stdout)
    assert {item["type"]: item["status"] for item in crd["status"]["conditions"]}["Established"] == "True"
    explained = driver.kubectl("explain", "ecraccessgrants.spec.role").stdout
    assert "anyscaleCloudId" in explained and "cluster_node_role" in explained


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param({"role": {"name": "a", "anyscaleCloudId": "cld_x"}, "repositories": [{"name": "ml/x"}]},
                     "exactly one of role.name, role.arn or role.anyscaleCloudId", id="two-roles"),
        pytest.param({"role": {"arn": "arn:aws:iam::123:user/bob"}, "repositories": [{"name": "ml/x"}]},
                     "spec.role.arn", id="bad-role-arn"),
        pytest.param({"role": {"name": "a"}, "repositories": [{"name": "ML//Bad"}]},
                     "spec.repositories[0].name", id="bad-repository-name"),
        pytest.param({"role": {"name": "a"}, "repositories": []}, "spec.repositories", id="empty-repositories"),
    ],
)
def test_invalid_grants_are_rejected_by_kubectl_apply(driver: Driver, spec: dict[str, Any], message: str) -> None:
    manifest = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant",
                "metadata": {"name": "invalid", "namespace": "default"}, "spec": spec}
    done = driver.apply(manifest, check=False)
    assert done.returncode != 0
    assert "is invalid" in done.stderr
    assert message in done.stderr
    assert driver.get("invalid") is None


def test_grant_becomes_ready_and_aws_holds_exactly_the_expected_state(driver: Driver) -> None:
    driver.create_repository("e2e/ready-a")
    driver.create_repository("e2e/ready-b", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    role_arn = driver.iam.get_role(RoleName=NODE_ROLE)["Role"]["Arn"]
    driver.apply(grant("ready", "e2e/ready-a", "e2e/ready-b"))

    body = driver.wait_ready("ready")

    kstatus_invariants(body)
    status = body["status"]
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["roleArn"] == role_arn
    assert status["readyRepositories"] == "2/2"
    assert "ecraccess.io/finalizer" in body["metadata"]["finalizers"]
    [ours_a] = driver.ours("e2e/ready-a")
    [ours_b] = driver.ours("e2e/ready-b")
    assert ours_a == ours_b
    assert ours_a["Principal"] == {"AWS": [role_arn]} and ours_a["Effect"] == "Allow" and len(ours_a["Action"]) == 12
    assert ours_a["Sid"] == status["repositories"][0]["sid"]
    assert FOREIGN in driver.statements("e2e/ready-b")
    assert len(driver.statements("e2e/ready-b")) == 2
    assert READ_ONLY in driver.attached(NODE_ROLE)


def test_kubectl_get_shows_the_printer_columns(driver: Driver) -> None:
    driver.create_repository("e2e/columns")
    driver.apply(grant("columns", "e2e/columns"))
    driver.wait_ready("columns")

    table = driver.kubectl("get", "ecrgrants", "columns").stdout.splitlines()

    assert table[0].split() == ["NAME", "READY", "REASON", "ROLE", "REPOSITORIES", "AGE"]
    row = table[1].split()
    assert row[:3] == ["columns", "True", "Reconciled"]
    assert row[3].endswith(f":role/{NODE_ROLE}")
    assert row[4] == "1/1"


def test_spec_edits_are_followed_and_generation_is_observed(driver: Driver) -> None:
    for repo in ("e2e/edit-a", "e2e/edit-b"):
        driver.create_repository(repo)
    driver.apply(grant("edit", "e2e/edit-a"))
    first = driver.wait_ready("edit")

    driver.apply(grant("edit", "e2e/edit-a", "e2e/edit-b"))
    second = eventually(lambda: (b := snapshot(driver, "edit"))["status"]["observedGeneration"]
                        == b["metadata"]["generation"] > first["metadata"]["generation"] and b, what="to add a repo")
    assert second["status"]["readyRepositories"] == "2/2"
    assert len(driver.ours("e2e/edit-b")) == 1

    driver.apply(grant("edit", "e2e/edit-b"))
    third = eventually(lambda: (b := snapshot(driver, "edit"))["status"]["observedGeneration"]
                       == b["metadata"]["generation"] > second["metadata"]["generation"] and b, what="to drop a repo")
    assert third["status"]["readyRepositories"] == "1/1"
    assert driver.policy("e2e/edit-a") is None, "the dropped repository lost our statement (and its empty policy)"
    assert len(driver.ours("e2e/edit-b")) == 1


def test_tampering_in_aws_is_repaired_within_the_resync_interval(driver: Driver) -> None:
    driver.create_repository("e2e/tamper", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    driver.apply(grant("tamper", "e2e/tamper"))
    driver.wait_ready("tamper")
    expected = driver.ours("e2e/tamper")
    driver.ecr.set_repository_policy(repositoryName="e2e/tamper",
                                     policyText=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]}))
    driver.iam.detach_role_policy(RoleName=NODE_ROLE, PolicyArn=READ_ONLY)
    tampered = time.monotonic()

    eventually(lambda: driver.ours("e2e/tamper") == expected, timeout=RESYNC * 4, what="to repair the policy")
    eventually(lambda: READ_ONLY in driver.attached(NODE_ROLE), timeout=RESYNC * 4, what="to re-attach")
    assert time.monotonic() - tampered < RESYNC * 4
    assert FOREIGN in driver.statements("e2e/tamper")


def test_kubectl_delete_cleans_up_and_the_object_goes(driver: Driver) -> None:
    driver.create_repository("e2e/delete-a")
    driver.create_repository("e2e/delete-b", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    driver.apply(grant("delete-me", "e2e/delete-a", "e2e/delete-b", managedPolicy="None"))
    driver.wait_ready("delete-me")

    driver.kubectl("delete", "ecraccessgrant", "delete-me", "--timeout=20s")

    assert driver.get("delete-me") is None
    assert driver.policy("e2e/delete-a") is None
    assert driver.statements("e2e/delete-b") == [FOREIGN]


def test_status_stays_quiet_after_ready(driver: Driver) -> None:
    # A role of its own: the operator attaches the managed policy, so the status is written twice
    # (the ownership record at once, then the whole status), and the drift check must see the last.
    driver.create_role("e2e-quiet")
    driver.create_repository("e2e/quiet")
    driver.apply(grant("quiet", "e2e/quiet", role={"name": "e2e-quiet"}))
    driver.wait_ready("quiet")
    time.sleep(RESYNC)  # let any in-flight first drift check land
    before = snapshot(driver, "quiet")["metadata"]["resourceVersion"]

    time.sleep(RESYNC * 3)

    assert snapshot(driver, "quiet")["metadata"]["resourceVersion"] == before


def test_operator_killed_mid_burst_converges_without_duplicates(driver: Driver) -> None:
    roles = [driver.create_role(f"e2e-crash-{i}") for i in range(6)]
    driver.create_repository("e2e/crash", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    for i in range(6):
        driver.apply(grant(f"crash-{i}", "e2e/crash", role={"name": f"e2e-crash-{i}"}, managedPolicy="None"))
    first_pid = driver.kill_operator()
    eventually(lambda: driver.sandbox.operator is not None and driver.sandbox.operator.pid != first_pid
               and driver.sandbox.operator.poll() is None, what="for the operator to be restarted")
    driver.kubectl("delete", "ecraccessgrant", "crash-5", "--wait=false")

    for i in range(5):
        driver.wait_ready(f"crash-{i}", timeout=90)
    eventually(lambda: driver.get("crash-5") is None, timeout=60, what="for crash-5 to go")

    [ours] = driver.ours("e2e/crash")
    assert sorted(ours["Principal"]["AWS"]) == sorted(roles[:5])
    assert FOREIGN in driver.statements("e2e/crash")
    assert len(driver.statements("e2e/crash")) == 2
    assert driver.sandbox.operator_restarts >= 1
