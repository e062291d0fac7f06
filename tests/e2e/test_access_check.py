"""The access check end to end (issue 16): a foreign Deny makes the grant DeniedByPolicy while its
statement stays written; removing the Deny makes it Ready at the next pass, or at once on request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ecr_sandbox.sandbox import Sandbox
from tests.e2e.conftest import CLUSTER_ID, Driver, eventually, grant, running
from tests.e2e.test_events import reasons

DENY = {"Sid": "QuarantineEveryone", "Effect": "Deny", "Principal": "*", "Action": "ecr:*"}


def ready(driver: Driver, name: str) -> tuple[str, str, str]:
    body = driver.get(name) or {}
    found = next((item for item in (body.get("status") or {}).get("conditions") or [] if item["type"] == "Ready"),
                 {})
    return found.get("status", ""), found.get("reason", ""), found.get("message", "")


def without_deny(driver: Driver, repo: str) -> None:
    document: dict[str, Any] = driver.policy(repo) or {}
    document["Statement"] = [item for item in document["Statement"] if item.get("Sid") != DENY["Sid"]]
    driver.ecr.set_repository_policy(repositoryName=repo, policyText=json.dumps(document))


def test_a_foreign_deny_is_denied_by_policy_until_it_goes(driver: Driver) -> None:
    repo = "e2e/access-denied"
    driver.create_repository(repo, policy={"Version": "2012-10-17", "Statement": [DENY]})
    driver.apply(grant("access-denied", repo, managedPolicy="None"))

    eventually(lambda: ready(driver, "access-denied")[1] == "DeniedByPolicy", what="DeniedByPolicy")
    status, _, message = ready(driver, "access-denied")
    assert status == "False" and "'QuarantineEveryone'" in message
    assert driver.ours(repo), "the grant's statement is written regardless"
    assert ("Warning", "Stalled") in reasons(driver, "access-denied")

    without_deny(driver, repo)  # the next drift pass (every 3 s here) reads it and says Ready
    driver.wait_ready("access-denied", timeout=30)


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    """A sandbox whose drift check waits 10 minutes: only the reconcile-now request can say Ready."""
    with running(Sandbox(tmp_path_factory.mktemp("slow"), seed=True, apply_examples=False, resync_interval=600,
                         cluster_id=CLUSTER_ID)) as sb:
        yield Driver(sb)


def test_a_reconcile_request_says_ready_at_once_when_the_deny_goes(slow: Driver) -> None:
    repo = "e2e/access-now"
    slow.create_repository(repo, policy={"Version": "2012-10-17", "Statement": [DENY]})
    slow.apply(grant("access-now", repo, managedPolicy="None"))
    eventually(lambda: ready(slow, "access-now")[1] == "DeniedByPolicy", what="DeniedByPolicy")

    without_deny(slow, repo)
    slow.kubectl("annotate", "--overwrite", "ecraccessgrant", "access-now",
                 "ecraccess.io/reconcile-requested-at=2026-12-02T14:00:00Z")

    slow.wait_ready("access-now", timeout=30)
    assert "ecr:GetAuthorizationToken from an identity policy" in ready(slow, "access-now")[2]
