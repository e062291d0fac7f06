"""The alerting rules (deploy/components/monitoring and the chart's) against a running operator: every metric,
label and label value a rule uses is in what the operator's /metrics serves (the sandbox writes its URL to
DIR/metrics-url). tests/deploy/test_monitoring.py does the same against the operator's registry in-process; this is
the check that the process, as started, exposes them (the process collector included)."""

from __future__ import annotations

import re
import urllib.request

from tests.deploy import promql
from tests.deploy.monitoring import ALERTS, HELM_MONITORING, helm_rules, kustomize_rules, series
from tests.e2e.conftest import Driver, eventually, grant


def scrape(driver: Driver) -> promql.Series:
    url = (driver.sandbox.dir / "metrics-url").read_text().strip()
    with urllib.request.urlopen(url, timeout=5) as answer:
        return series(answer.read().decode())


def test_every_rule_uses_only_what_the_running_operator_exposes(driver: Driver) -> None:
    # A labelled family has no series until it is first counted: a Ready grant on a repository without a policy
    # (AWS calls, a policy sync, its not-found answer) and a Stalled one give the rules' series theirs.
    driver.create_repository("e2e/rules-ready")
    driver.apply(grant("rules-ready", "e2e/rules-ready", managedPolicy="None"))
    driver.apply(grant("rules-stalled", "e2e/rules-missing", managedPolicy="None"))
    try:
        driver.wait_ready("rules-ready")

        def stalled_counted() -> promql.Series | None:
            found = scrape(driver)
            reasons = found.get("ecr_access_grants_stalled", {}).get("reason", set())
            return found if "RepositoryNotFound" in reasons else None

        scraped = eventually(stalled_counted, timeout=30, what="the Stalled grant counted in ecr_access_grants_stalled")
        every = {"kustomize": kustomize_rules(), "helm": helm_rules()}
        for bucket in ("0.1", "0.25", "0.5", "0.75", "0.95"):  # every threshold the chart's schema allows
            every[f"helm-{bucket}"] = helm_rules({"metrics": {**HELM_MONITORING["metrics"], "prometheusRule": {
                "enabled": True, "policySizeRatio": float(bucket)}}})
        for where, rules in every.items():
            assert tuple(rules) == ALERTS, where
            for name, rule in rules.items():
                assert promql.problems(rule["expr"], scraped) == [], f"{where} {name}"
        # The AWS errors rule leaves out not-found answers, which a repository without a policy really gives.
        codes = scraped["ecr_access_aws_requests_total"]["code"]
        assert "RepositoryPolicyNotFoundException" in codes, codes
        (numerator, *_) = promql.parse(kustomize_rules()["EcrAccessAwsErrors"]["expr"]).selectors
        assert re.fullmatch(numerator.matchers[0].value, "RepositoryPolicyNotFoundException")
        # The drift rule's series have no labels of their own, so those of one target match one to one.
        for metric in ("ecr_access_last_drift_pass_timestamp_seconds", "ecr_access_drift_interval_seconds",
                       "process_start_time_seconds"):
            assert scraped[metric] == {}, metric
    finally:
        for name in ("rules-ready", "rules-stalled"):
            driver.kubectl("delete", "ecraccessgrant", name, "--timeout=60s", "--ignore-not-found")
