"""Accounts end to end (DESIGN §6): the real operator, kubesim and a moto server with a second
account, the sandbox's central registry (`seed.CENTRAL_ACCOUNT`), reached by an EcrAccessAccount.

moto routes calls made with assumed-role credentials to the role's account: the operator reaches
the central account only by assuming the role the EcrAccessAccount names, as in AWS, and the test
reads that account as an administrator there (`seed.aws_client(..., account=...)`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecr_sandbox.seed import CENTRAL_ACCOUNT, CENTRAL_ROLE, NODE_TRUST_POLICY, aws_client, repository_policy
from tests.e2e.conftest import CLUSTER_ID, NODE_ROLE, READ_ONLY, REGION, Driver, eventually, grant

ACCOUNT_NAME = "central-e2e"
UNCONFIGURED = "444444444444"
FOREIGN = {"Sid": "CentralMirror", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{CENTRAL_ACCOUNT}:root"},
           "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"], "Condition": {
               "StringEquals": {"aws:PrincipalAccount": CENTRAL_ACCOUNT}}}


class Central:
    def __init__(self, driver: Driver) -> None:
        self.ecr = aws_client(driver.sandbox.aws_env, "ecr", account=CENTRAL_ACCOUNT)
        self.iam = aws_client(driver.sandbox.aws_env, "iam", account=CENTRAL_ACCOUNT)

    def policy(self, repo: str) -> dict[str, Any] | None:
        return repository_policy(self.ecr, repo)

    def ours(self, repo: str) -> list[dict[str, Any]]:
        document = self.policy(repo) or {"Statement": []}
        return [item for item in document["Statement"] if str(item.get("Sid", "")).startswith("EcrAccessGrant")]


@pytest.fixture(scope="module")
def account(sandbox: Any) -> dict[str, Any]:
    driver = Driver(sandbox)
    driver.apply({"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": ACCOUNT_NAME},
                  "spec": {"accountId": CENTRAL_ACCOUNT,
                           "assumeRole": {"roleArn": f"arn:aws:iam::{CENTRAL_ACCOUNT}:role/{CENTRAL_ROLE}"}}})
    driver.kubectl("wait", "--for=condition=Ready", f"ecraccessaccount/{ACCOUNT_NAME}", "--timeout=60s")
    body: dict[str, Any] = json.loads(driver.kubectl("get", "eaa", ACCOUNT_NAME, "-o", "json").stdout)
    return body


def principals(statement: dict[str, Any]) -> list[str]:
    found = statement["Principal"]["AWS"]
    return [found] if isinstance(found, str) else list(found)


def in_central(name: str) -> dict[str, str]:
    return {"name": name, "registryId": CENTRAL_ACCOUNT}


def test_the_account_is_ready_as_the_assumed_role_with_the_clusters_session_name(account: dict[str, Any]) -> None:
    from ecr_access import accounts  # noqa: PLC0415

    status = account["status"]
    assert status["identityArn"] == (f"arn:aws:sts::{CENTRAL_ACCOUNT}:assumed-role/{CENTRAL_ROLE}/"
                                     f"{accounts.session_name(CLUSTER_ID)}")
    assert status["observedGeneration"] == account["metadata"]["generation"]


def test_a_grant_with_its_role_in_a_and_repositories_in_b(driver: Driver, account: dict[str, Any]) -> None:
    central = Central(driver)
    central.ecr.create_repository(repositoryName="e2e/central-a")
    before = {"Version": "2012-10-17", "Statement": [FOREIGN]}
    central.ecr.set_repository_policy(repositoryName="e2e/central-a", policyText=json.dumps(before))
    role_arn = f"arn:aws:iam::123456789012:role/{NODE_ROLE}"
    manifest = grant("central-a", role={"anyscaleCloudId": "cld_sandbox123"}, managedPolicy="None")
    manifest["spec"]["repositories"] = [in_central("e2e/central-a")]
    driver.apply(manifest)

    body = driver.wait_ready("central-a")
    [repo] = body["status"]["repositories"]
    assert repo["arn"] == f"arn:aws:ecr:{REGION}:{CENTRAL_ACCOUNT}:repository/e2e/central-a" and repo["ready"]
    [ours] = central.ours("e2e/central-a")
    assert principals(ours) == [role_arn]
    assert [item for item in central.policy("e2e/central-a")["Statement"] if item != ours] == [FOREIGN]  # type: ignore[index]

    # Drift in B: someone puts the policy back as it was; the drift check repairs it.
    central.ecr.set_repository_policy(repositoryName="e2e/central-a", policyText=json.dumps(before))
    eventually(lambda: central.ours("e2e/central-a"), timeout=30, what="the statement in B restored")

    driver.kubectl("delete", "ecraccessgrant", "central-a", "--timeout=60s")
    assert central.policy("e2e/central-a") == before  # exactly as it was


def test_a_role_in_b_gets_its_managed_policy_attached_and_detached_in_b(
        driver: Driver, account: dict[str, Any]) -> None:
    central = Central(driver)
    role_arn = central.iam.create_role(RoleName="central-e2e-node", AssumeRolePolicyDocument=json.dumps(
        NODE_TRUST_POLICY))["Role"]["Arn"]
    central.ecr.create_repository(repositoryName="e2e/central-b")
    manifest = grant("central-b", role={"arn": role_arn}, managedPolicy="ReadOnly")
    manifest["spec"]["repositories"] = [in_central("e2e/central-b")]
    driver.apply(manifest)

    body = driver.wait_ready("central-b")
    assert body["status"]["managedPolicyArn"] == READ_ONLY and body["status"]["managedPolicyOwned"] is True

    def attached() -> set[str]:
        return {item["PolicyArn"] for item in central.iam.list_attached_role_policies(
            RoleName="central-e2e-node")["AttachedPolicies"]}

    def tags() -> dict[str, str]:
        found = central.iam.get_role(RoleName="central-e2e-node")["Role"].get("Tags", [])
        return {item["Key"]: item["Value"] for item in found if item["Key"].startswith("ecraccess.io/")}

    assert attached() == {READ_ONLY}
    assert tags().get("ecraccess.io/attached") == "ReadOnly"
    driver.kubectl("delete", "ecraccessgrant", "central-b", "--timeout=60s")
    assert attached() == set() and tags() == {}


def test_a_repository_in_an_unconfigured_account_is_not_configured_and_the_others_are_applied(
        driver: Driver, account: dict[str, Any]) -> None:
    central = Central(driver)
    central.ecr.create_repository(repositoryName="e2e/central-c")
    manifest = grant("central-c", managedPolicy="None")
    manifest["spec"]["repositories"] = [in_central("e2e/central-c"), {"name": "x/y", "registryId": UNCONFIGURED}]
    driver.apply(manifest)

    def stalled() -> dict[str, Any] | None:
        body = driver.get("central-c")
        conditions = {item["type"]: item for item in (body or {}).get("status", {}).get("conditions", [])}
        return body if conditions.get("Stalled", {}).get("status") == "True" else None

    body = eventually(stalled, timeout=30, what="the grant Stalled")
    by_arn = {item["arn"]: item for item in body["status"]["repositories"]}
    unconfigured = by_arn[f"arn:aws:ecr:{REGION}:{UNCONFIGURED}:repository/x/y"]
    assert unconfigured["reason"] == "AccountNotConfigured" and not unconfigured["ready"]
    assert by_arn[f"arn:aws:ecr:{REGION}:{CENTRAL_ACCOUNT}:repository/e2e/central-c"]["ready"]
    assert len(central.ours("e2e/central-c")) == 1
    driver.kubectl("delete", "ecraccessgrant", "central-c", "--timeout=60s")
    assert central.policy("e2e/central-c") is None


def account_manifest(name: str) -> dict[str, Any]:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": name},
            "spec": {"accountId": CENTRAL_ACCOUNT,
                     "assumeRole": {"roleArn": f"arn:aws:iam::{CENTRAL_ACCOUNT}:role/{CENTRAL_ROLE}"}}}


def test_a_second_object_for_the_account_waits_its_turn_and_a_deleted_account_is_not_configured(
        driver: Driver, account: dict[str, Any]) -> None:
    """Runs last: it deletes the module's account, and leaves one of its own in its place."""
    central = Central(driver)
    central.ecr.create_repository(repositoryName="e2e/central-d")
    manifest = grant("central-d", managedPolicy="None")
    manifest["spec"]["repositories"] = [in_central("e2e/central-d")]
    driver.apply(manifest)
    driver.wait_ready("central-d")

    def ready_of(name: str) -> tuple[str, str] | None:
        done = driver.kubectl("get", "eaa", name, "-o", "json", check=False)
        if done.returncode != 0:
            return None
        conditions = json.loads(done.stdout).get("status", {}).get("conditions", [])
        ready = next((item for item in conditions if item["type"] == "Ready"), None)
        return (ready["status"], ready["reason"]) if ready else None

    driver.apply(account_manifest("central-e2e-second"))
    eventually(lambda: ready_of("central-e2e-second") == ("False", "DuplicateAccount"), timeout=30,
               what="the newer object refused")
    driver.kubectl("delete", "eaa", ACCOUNT_NAME)
    eventually(lambda: ready_of("central-e2e-second") == ("True", "Assumed"), timeout=30,
               what="the remaining object in use")
    assert driver.wait_ready("central-d")

    driver.kubectl("delete", "eaa", "central-e2e-second")

    def not_configured() -> bool:
        body = driver.get("central-d") or {}
        return any(item.get("reason") == "AccountNotConfigured" for item in body.get("status", {}).get(
            "repositories", []))

    eventually(not_configured, timeout=30, what="the grant AccountNotConfigured once no object configures B")
    driver.apply(account_manifest(ACCOUNT_NAME))
    driver.wait_ready("central-d", timeout=30)  # checked again as soon as the account works
    driver.kubectl("delete", "ecraccessgrant", "central-d", "--timeout=60s")
    assert central.policy("e2e/central-d") is None
