"""Metrics end to end: scrape /metrics of the operator the sandbox runs (its URL is in DIR/metrics-url)
while grants go Ready, are tampered with and repaired, and one goes Stalled."""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Driver, eventually, grant


def scrape(driver: Driver) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = (driver.sandbox.dir / "metrics-url").read_text().strip()
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_counters_and_gauges_say_what_happened(driver: Driver) -> None:
    before = scrape(driver)
    driver.create_repository("e2e/metrics-a")
    driver.apply(grant("metrics-a", "e2e/metrics-a", managedPolicy="None"))
    driver.wait_ready("metrics-a")
    after = scrape(driver)
    assert sample(after, "ecr_access_grants", ready="True", reason="Reconciled") >= 1
    assert (sample(after, "ecr_access_policy_writes_total", result="written")
            > sample(before, "ecr_access_policy_writes_total", result="written"))
    assert sample(after, "ecr_access_aws_requests_total", service="ecr", operation="SetRepositoryPolicy",
                  code="OK", cause="change") >= 1
    assert sample(after, "controller_runtime_reconcile_total", controller="ecraccessgrant", result="success") >= 1

    # Tampered with: our statement removed. The drift check (every 3 s here) repairs it, and says so.
    repairs = sample(after, "ecr_access_drift_repairs_total", kind="statement")
    driver.ecr.delete_repository_policy(repositoryName="e2e/metrics-a")
    eventually(lambda: sample(scrape(driver), "ecr_access_drift_repairs_total", kind="statement") > repairs,
               timeout=30, what="a statement repair counted")
    assert driver.ours("e2e/metrics-a")
    assert sample(scrape(driver), "ecr_access_last_drift_pass_timestamp_seconds") > 0

    # Stalled: a repository that does not exist.
    driver.apply(grant("metrics-b", "e2e/metrics-missing", managedPolicy="None"))
    stalled = sample(before, "ecr_access_grants", ready="False", reason="RepositoryNotFound")  # other tests'
    eventually(lambda: sample(scrape(driver), "ecr_access_grants", ready="False", reason="RepositoryNotFound")
               == stalled + 1, timeout=30, what="the stalled grant counted")
    for name in ("metrics-a", "metrics-b"):
        driver.kubectl("delete", "ecraccessgrant", name, "--timeout=60s")
    final = scrape(driver)
    assert sample(final, "ecr_access_grants", ready="False", reason="RepositoryNotFound") == stalled  # gone


def test_the_readiness_probe_says_ready_once_the_operator_runs(driver: Driver) -> None:
    # The sandbox waits for it as a rollout would; a restarted operator answers on the same URL.
    url = (driver.sandbox.dir / "readiness-url").read_text().strip()
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
        assert answer.read() == b'{"ready": true}'
