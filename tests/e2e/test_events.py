"""Events end to end: `kubectl get events` on a grant shows one Event per change, never one per pass."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.e2e.conftest import RESYNC, Driver, eventually, grant


def events(driver: Driver, name: str) -> list[dict[str, Any]]:
    listed = json.loads(driver.kubectl("get", "events", "-n", "default", "--field-selector",
                                       f"involvedObject.name={name}", "-o", "json").stdout)
    return sorted(listed["items"], key=lambda item: item.get("metadata", {}).get("creationTimestamp", ""))


def reasons(driver: Driver, name: str) -> list[tuple[str, str]]:
    return [(item["type"], item["reason"]) for item in events(driver, name)]


def test_applied_then_drift_repaired_and_a_quiet_pass_posts_nothing(driver: Driver) -> None:
    driver.create_repository("e2e/events-a")
    driver.apply(grant("events-a", "e2e/events-a", managedPolicy="None"))
    driver.wait_ready("events-a")
    eventually(lambda: ("Normal", "Applied") in reasons(driver, "events-a"), timeout=15, what="Applied")

    # Quiet passes: no Event, and the grant itself is not written (its resourceVersion stays).
    seen = reasons(driver, "events-a")
    version = driver.get("events-a")["metadata"]["resourceVersion"]  # type: ignore[index]
    time.sleep(RESYNC * 2.5)
    assert reasons(driver, "events-a") == seen
    assert driver.get("events-a")["metadata"]["resourceVersion"] == version  # type: ignore[index]

    # Tampered with: the drift check repairs it and says what it repaired, once.
    driver.ecr.delete_repository_policy(repositoryName="e2e/events-a")
    eventually(lambda: ("Normal", "DriftRepaired") in reasons(driver, "events-a"), timeout=30,
               what="DriftRepaired")
    [repaired] = [item for item in events(driver, "events-a") if item["reason"] == "DriftRepaired"]
    assert "e2e/events-a" in repaired["message"]
    time.sleep(RESYNC * 2.5)
    assert [reason for _, reason in reasons(driver, "events-a")].count("DriftRepaired") == 1
    assert all(kind != "Error" for kind, _ in reasons(driver, "events-a"))

    driver.kubectl("delete", "ecraccessgrant", "events-a", "--timeout=60s")
    eventually(lambda: ("Normal", "AccessRemoved") in reasons(driver, "events-a"), timeout=15,
               what="AccessRemoved")


def test_stalled_is_posted_once_for_a_missing_repository(driver: Driver) -> None:
    driver.apply(grant("events-b", "e2e/events-missing", managedPolicy="None"))
    eventually(lambda: ("Warning", "Stalled") in reasons(driver, "events-b"), timeout=30, what="Stalled")
    [stalled] = [item for item in events(driver, "events-b") if item["reason"] == "Stalled"]
    assert stalled["message"].startswith("RepositoryNotFound:") and "e2e/events-missing" in stalled["message"]
    time.sleep(RESYNC * 2.5)  # passes that find it still stalled post nothing more
    [again] = [item for item in events(driver, "events-b") if item["reason"] == "Stalled"]
    assert again.get("count", 1) == stalled.get("count", 1)
    driver.kubectl("delete", "ecraccessgrant", "events-b", "--timeout=60s")
