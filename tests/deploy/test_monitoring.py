"""Monitoring: the kustomize component (deploy/components/monitoring, overlays/monitoring) and the chart's metrics.*
values render a metrics Service, a ServiceMonitor and the alerts; the three fit together and fit the Deployment; the
chart's rules are the component's; and every rule uses only metrics, labels and label values the operator exposes.

The operator's metrics come from its own registry here (tests.deploy.monitoring.in_process_scrape);
tests/e2e/test_monitoring_rules.py checks the same rules against a running operator's /metrics.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import helm_python
import pytest
import yaml

from ecr_access import config
from ecr_access.metrics import SIZE_BUCKETS
from tests.deploy import promql
from tests.deploy.manifests import (
    CHART,
    DEPLOY,
    KUBE_VERSIONS,
    NAME,
    NAMESPACE,
    Obj,
    container,
    deployment,
    helm_crds,
    helm_render,
    kustomize,
    one,
    validate,
)
from tests.deploy.monitoring import (
    ALERTS,
    HELM_MONITORING,
    OVERLAY,
    alert_rules,
    component_objects,
    helm_rules,
    in_process_scrape,
    is_monitoring,
    kustomize_rules,
    monitoring_errors,
    series,
)

KINDS = {"Service", "ServiceMonitor", "PrometheusRule"}
# What each alert is made of (deploy/README.md, "Monitoring", explains each).
METRICS = {
    "EcrAccessGrantStalled": {"ecr_access_grants_stalled"},
    "EcrAccessDriftPassMissing": {"ecr_access_last_drift_pass_timestamp_seconds", "ecr_access_drift_interval_seconds",
                                  "process_start_time_seconds"},
    "EcrAccessPolicyNearSizeLimit": {"ecr_access_policy_size_ratio_count", "ecr_access_policy_size_ratio_bucket"},
    "EcrAccessAwsErrors": {"ecr_access_aws_requests_total"},
}
# Non-default thresholds, and the rules they must give.
THRESHOLDS: dict[str, Any] = {"stalledFor": "30m", "awsErrorRatio": 0.1, "policySizeRatio": 0.95}
AWS_ERRORS = re.compile("OK|.*NotFound.*|NoSuchEntity")  # PromQL regexes are anchored: fullmatch


def _scrape() -> promql.Series:
    return series(in_process_scrape())


def _helm(values: dict[str, Any] | None = None, **metrics: Any) -> list[Obj]:
    merged = {**(values or {}), "metrics": {**HELM_MONITORING["metrics"], **metrics}}
    return helm_render(merged)


def _monitoring(objects: list[Obj]) -> dict[str, Obj]:
    found = {obj["kind"]: obj for obj in objects if obj["kind"] in KINDS}
    assert len(found) == len([obj for obj in objects if obj["kind"] in KINDS]), "one of each"
    return found


def _check_fits_together(objects: list[Obj]) -> None:
    """The Service selects the operator pod and targets its metrics port, the ServiceMonitor selects the Service and
    scrapes that port at /metrics, and the metrics port is the one the operator serves (ECR_ACCESS_METRICS_PORT)."""
    found = _monitoring(objects)
    service, monitor = found["Service"], found["ServiceMonitor"]
    operator = deployment(objects)
    main = container(objects)
    pod_labels = operator["spec"]["template"]["metadata"]["labels"]
    namespace = operator["metadata"]["namespace"]
    assert {obj["metadata"]["namespace"] for obj in found.values()} == {namespace}

    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == operator["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    named = {item["name"]: item["containerPort"] for item in main["ports"]}
    assert port["name"] == "metrics" and port["targetPort"] == "metrics", "by name: the pod's port may move"
    env = {item["name"]: item["value"] for item in main["env"]}
    assert int(env["ECR_ACCESS_METRICS_PORT"]) == named["metrics"] == port["port"]

    selector = monitor["spec"]["selector"]
    assert set(selector) == {"matchLabels"}
    assert selector["matchLabels"].items() <= service["metadata"]["labels"].items()
    # It must not select a Service in front of the operator's other ports, should one be added: the component label.
    assert selector["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    assert "namespaceSelector" not in monitor["spec"], "its own namespace, the Service's"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["path"] == "/metrics"


def _check_valid(objects: list[Obj]) -> None:
    for obj in objects:
        if is_monitoring(obj):
            assert monitoring_errors(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"
        elif obj["kind"] in KINDS:
            for version in KUBE_VERSIONS:
                validate(obj, version)


# --- The kustomize component ---------------------------------------------------------------------------------------


def test_the_component_is_a_kustomize_component_and_the_overlay_uses_it() -> None:
    component = yaml.safe_load((DEPLOY / "components" / "monitoring" / "kustomization.yaml").read_text())
    assert (component["apiVersion"], component["kind"]) == ("kustomize.config.k8s.io/v1alpha1", "Component")
    overlay = yaml.safe_load((DEPLOY / OVERLAY / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../pod-identity"]
    assert overlay["components"] == ["../../components/monitoring"]


def test_the_overlay_is_pod_identity_plus_the_monitoring_objects() -> None:
    added = component_objects()
    assert sorted(obj["kind"] for obj in added) == sorted(KINDS)
    kept = [obj for obj in kustomize(OVERLAY) if obj not in added]
    assert kept == kustomize("overlays/pod-identity"), "the component changes nothing of the install"
    assert {obj["metadata"]["namespace"] for obj in added} == {NAMESPACE}
    for obj in added:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ecr-access-operator"


def test_the_component_objects_validate() -> None:
    _check_valid(component_objects())


def test_the_component_objects_fit_together_and_fit_the_deployment() -> None:
    objects = kustomize(OVERLAY)
    _check_fits_together(objects)
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"


@pytest.mark.parametrize(("where", "change"), [
    ("spec.endpoints.0", lambda obj: obj["spec"]["endpoints"][0].update(intervall="30s")),
    ("spec.endpoints.0.interval", lambda obj: obj["spec"]["endpoints"][0].update(interval="30 seconds")),
    ("spec", lambda obj: obj["spec"].update(endpoint=obj["spec"].pop("endpoints"))),
], ids=["misspelt field", "bad duration", "misspelt list"])
def test_validation_catches_a_broken_service_monitor(where: str, change: Any) -> None:
    monitor = one(component_objects(), "ServiceMonitor")
    change(monitor)
    assert any(error.startswith(f"{where}:") for error in monitoring_errors(monitor)), monitoring_errors(monitor)


def test_validation_catches_a_broken_rule() -> None:
    rules = one(component_objects(), "PrometheusRule")
    rule = rules["spec"]["groups"][0]["rules"][0]
    rule["for"] = "15 minutes"
    rule["anotations"] = rule.pop("annotations")
    errors = monitoring_errors(rules)
    assert any(error.startswith("spec.groups.0.rules.0.for:") for error in errors), errors
    assert any("anotations" in error for error in errors), errors


# --- The rules ------------------------------------------------------------------------------------------------------


def test_the_alerts_are_the_documented_ones_each_with_for_a_severity_and_what_to_do() -> None:
    rules = kustomize_rules()
    assert tuple(rules) == ALERTS
    readme = (DEPLOY / "README.md").read_text()
    for name, rule in rules.items():
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), name
        assert rule["labels"] == {"severity": "warning"}, f"{name}: none is critical (deploy/README.md says why)"
        assert set(rule["annotations"]) == {"summary", "description"}, name
        assert "kubectl" in rule["annotations"]["description"], f"{name}: say what to run"
        assert f"`{name}`" in readme, f"{name} is explained in deploy/README.md"
    stalled = rules["EcrAccessGrantStalled"]
    assert "per reason" in stalled["annotations"]["description"]
    assert "kubectl get ecrgrants -A" in stalled["annotations"]["description"]
    assert "kubectl describe" in stalled["annotations"]["description"]


def test_the_rules_are_made_of_these_metrics() -> None:
    assert {name: promql.parse(rule["expr"]).metrics for name, rule in kustomize_rules().items()} == METRICS


@pytest.mark.parametrize("rules", [kustomize_rules, helm_rules, lambda: helm_rules({
    "resyncInterval": 1200, "metrics": {**HELM_MONITORING["metrics"], "prometheusRule": {
        "enabled": True, **THRESHOLDS}}})], ids=["kustomize", "helm", "helm-non-default"])
def test_every_rule_uses_only_what_the_operator_exposes(rules: Any) -> None:
    scrape = _scrape()
    for name, rule in rules().items():
        assert promql.problems(rule["expr"], scrape) == [], name


def test_the_annotations_name_real_metrics_and_settings() -> None:
    scrape = _scrape()
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in scrape} | set(scrape)
    settings = {config.env_name(field.name) for field in dataclasses.fields(config.Config)}
    queries = 0
    for name, rule in kustomize_rules().items():
        text = " ".join(rule["annotations"].values())
        for metric in re.findall(r"\b(?:ecr_access|process|controller_runtime|workqueue)_[a-z_]+\b", text):
            assert metric in families, f"{name} mentions {metric}, which the operator does not expose"
        for setting in re.findall(r"\bECR_ACCESS_[A-Z_]+\b", text):
            assert setting in settings, f"{name} mentions {setting}, which the operator does not read"
        for quoted in text.split("`")[1::2]:  # PromQL quoted in the text: the same check as the exprs
            if "(" in quoted and not quoted.startswith(("kubectl", "aws ")):
                assert promql.problems(quoted, scrape) == [], f"{name}: {quoted}"
                queries += 1
    assert queries, "the AWS errors alert quotes the query that shows which calls fail"


def test_the_drift_rule_can_match_its_series_one_to_one() -> None:
    # `>` and `and` between instant vectors match series by their whole label set: all three must have none of
    # their own, so that those of one target (job, instance, ...) pair up (see the comment in the rule).
    scrape = _scrape()
    for metric in METRICS["EcrAccessDriftPassMissing"]:
        assert scrape[metric] == {}, metric


def test_the_size_rule_counts_policies_over_a_real_bucket() -> None:
    (selector,) = [s for s in promql.parse(kustomize_rules()["EcrAccessPolicyNearSizeLimit"]["expr"]).selectors
                   if s.matchers]
    (matcher,) = selector.matchers
    assert (matcher.label, matcher.op) == ("le", "=")
    assert float(matcher.value) == 0.9 and float(matcher.value) in SIZE_BUCKETS
    # The chart's threshold may be any bucket below 1.0 (over 1.0 nothing is ever observed: ECR refuses the write).
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    enum = schema["properties"]["metrics"]["properties"]["prometheusRule"]["properties"]["policySizeRatio"]["enum"]
    assert enum == [bucket for bucket in SIZE_BUCKETS if bucket < 1.0]


@pytest.mark.parametrize(("code", "counted"), [
    ("OK", False),
    ("RepositoryPolicyNotFoundException", False),  # a repository without a policy: a normal answer
    ("RepositoryNotFoundException", False),  # a grant's RepositoryNotFound: the Stalled alert's
    ("NoSuchEntity", False),  # IAM: a role not created yet
    ("AccessDeniedException", True),
    ("AccessDenied", True),
    ("ThrottlingException", True),
    ("ConnectTimeoutError", True),
    ("EndpointConnectionError", True),
    ("500", True),
])
def test_the_aws_error_rule_counts_errors_but_not_not_found_answers(code: str, counted: bool) -> None:
    (numerator, _, _) = promql.parse(kustomize_rules()["EcrAccessAwsErrors"]["expr"]).selectors
    (matcher,) = numerator.matchers
    assert (matcher.label, matcher.op) == ("code", "!~")
    assert (re.fullmatch(matcher.value, code) is None) is counted
    assert matcher.value == AWS_ERRORS.pattern


def test_the_aws_error_rule_does_not_divide_by_zero() -> None:
    expr = kustomize_rules()["EcrAccessAwsErrors"]["expr"]
    assert re.search(r"\) > 0\.05 and sum\(rate\(ecr_access_aws_requests_total\[5m\]\)\) > 0$", expr), expr


def test_the_drift_rule_waits_for_the_process_to_be_up_three_intervals() -> None:
    expr = kustomize_rules()["EcrAccessDriftPassMissing"]["expr"]
    assert "time() - process_start_time_seconds > 3 * ecr_access_drift_interval_seconds" in expr
    assert "absent(" not in expr and "up{" not in expr, "the operator's own metrics only"


# --- The PromQL check itself ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "reported"), [
    ("sum by (reason) (ecr_access_grant_stalled) > 0", "ecr_access_grant_stalled is not exposed (did you mean "
                                                       "ecr_access_grants_stalled?)"),
    ("sum(increase(ecr_access_policy_size_ratio_bucket{lee=\"0.9\"}[15m]))", "has no label lee"),
    ("sum(increase(ecr_access_policy_size_ratio_bucket{le=\"0.90\"}[15m]))", "le='0.90'"),
    ("sum by (reasn) (ecr_access_grants_stalled)", "groups or matches on reasn"),
    ("sum(rat(ecr_access_aws_requests_total[5m]))", "unknown function rat()"),
    ("sum(rate(ecr_access_aws_requests_total[5m])", "unclosed"),
    ("ecr_access_aws_requests_total{code=~\"(OK\"}", "bad regex"),
    ("ecr_access_policy_size_ratio > 0.9", "ecr_access_policy_size_ratio is not exposed"),  # a histogram's series
], ids=["metric", "label", "bucket", "grouping", "function", "brackets", "regex", "histogram"])
def test_the_check_reports_a_misspelt_rule(expr: str, reported: str) -> None:
    found = promql.problems(expr, _scrape())
    assert any(reported in problem for problem in found), found


def test_a_misspelt_metric_in_a_rendered_rule_is_reported() -> None:
    rules = one(component_objects(), "PrometheusRule")
    rule = rules["spec"]["groups"][0]["rules"][1]
    rule["expr"] = rule["expr"].replace("ecr_access_drift_interval_seconds", "ecr_access_drift_interval", 1)
    found = promql.problems(alert_rules([rules])["EcrAccessDriftPassMissing"]["expr"], _scrape())
    assert found == ["ecr_access_drift_interval is not exposed (did you mean ecr_access_drift_interval_seconds?)"]


def test_the_walk_skips_strings_durations_keywords_and_functions() -> None:
    parsed = promql.parse('rate(a_total{code!~"x(y)"}[5m:30s]) > bool 0 and on (job) b offset 1h unless '
                          'sum without (le) (c_bucket @ start()) or {__name__="d", x="1"} or vector(1e3)')
    assert [s.metric for s in parsed.selectors] == ["a_total", "b", "c_bucket", "d"]
    assert parsed.selectors[0].matchers == (promql.Matcher("code", "!~", "x(y)"),)
    assert parsed.selectors[3].matchers == (promql.Matcher("x", "=", "1"),)
    assert parsed.grouping == {"job", "le"}
    assert parsed.functions == {"rate", "sum", "start", "vector"}
    assert parsed.errors == ()


# --- The chart ------------------------------------------------------------------------------------------------------


def test_by_default_the_chart_renders_the_metrics_service_only() -> None:
    objects = helm_render()
    assert {obj["kind"] for obj in objects} & KINDS == {"Service"}
    _check_valid(objects)
    with helm_python.Chart.load(CHART) as chart:
        metrics = chart.values["metrics"]
    assert metrics["port"] == 8000
    assert (metrics["service"]["enabled"], metrics["serviceMonitor"]["enabled"],
            metrics["prometheusRule"]["enabled"]) == (True, False, False)


def test_the_charts_rules_are_the_components_rules() -> None:
    # Thresholds at their defaults, release named as the kustomize install: the same groups, rule for rule (alert,
    # expr, for, labels, annotations), so that the two cannot drift apart.
    chart, component = one(helm_render(HELM_MONITORING), "PrometheusRule"), one(component_objects(), "PrometheusRule")
    assert chart["spec"] == component["spec"]
    assert chart["metadata"]["name"] == component["metadata"]["name"]


def test_the_charts_monitoring_objects_are_the_components() -> None:
    chart, component = _monitoring(helm_render(HELM_MONITORING)), _monitoring(component_objects())
    assert {kind: obj["metadata"]["name"] for kind, obj in chart.items()} == {
        kind: obj["metadata"]["name"] for kind, obj in component.items()}
    # The chart's selectors add app.kubernetes.io/instance (the release); nothing else differs.
    assert chart["Service"]["spec"]["selector"].pop("app.kubernetes.io/instance") == NAME
    assert chart["ServiceMonitor"]["spec"]["selector"]["matchLabels"].pop("app.kubernetes.io/instance") == NAME
    for kind in ("Service", "ServiceMonitor"):
        assert chart[kind]["spec"] == component[kind]["spec"], kind
    installed = {(obj["kind"], obj["metadata"]["name"]) for obj in helm_render(HELM_MONITORING) + helm_crds()}
    assert installed == {(obj["kind"], obj["metadata"]["name"]) for obj in kustomize(OVERLAY)
                         if obj["kind"] != "Namespace"}


@pytest.mark.parametrize(("name", "namespace", "port"), [(NAME, NAMESPACE, 8000), ("ops", "platform", 9090)])
def test_the_charts_monitoring_objects_fit_together_and_validate(name: str, namespace: str, port: int) -> None:
    values = {"metrics": {**HELM_MONITORING["metrics"], "port": port}}
    objects = helm_render(values, name=name, namespace=namespace)
    _check_fits_together(objects)
    _check_valid(objects)
    service = one(objects, "Service")
    assert service["metadata"]["name"] == f"{one(objects, 'Deployment')['metadata']['name']}-metrics"


def test_the_chart_lints_clean_with_monitoring() -> None:
    values = {"metrics": {**HELM_MONITORING["metrics"], "serviceMonitor": {"enabled": True, "labels": {
        "release": "kube-prometheus-stack"}}}}
    report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSIONS[0]}.0")
    assert [m for m in report["messages"] if m["severity"] >= 2] + list(report["errors"]) == []


def test_thresholds_interval_and_labels_reach_the_objects() -> None:
    objects = helm_render({"resyncInterval": 1200, "metrics": {
        "serviceMonitor": {"enabled": True, "interval": "1m", "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prom", "role": "alert-rules"}, **THRESHOLDS}}})
    monitor, rules = one(objects, "ServiceMonitor"), one(objects, "PrometheusRule")
    assert monitor["spec"]["endpoints"][0]["interval"] == "1m"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert {"release": "prom", "role": "alert-rules"}.items() <= rules["metadata"]["labels"].items()
    by_name = alert_rules([rules])
    assert by_name["EcrAccessGrantStalled"]["for"] == "30m"
    assert "for 30m" in by_name["EcrAccessGrantStalled"]["annotations"]["summary"]
    assert ") > 0.1 and" in by_name["EcrAccessAwsErrors"]["expr"]
    assert "Over 10% " in by_name["EcrAccessAwsErrors"]["annotations"]["description"]
    size = by_name["EcrAccessPolicyNearSizeLimit"]
    # 3 drift passes at 1200 s: the window grows from 15m to 60m.
    assert size["expr"] == ('sum(increase(ecr_access_policy_size_ratio_count[60m])) - '
                            'sum(increase(ecr_access_policy_size_ratio_bucket{le="0.95"}[60m])) > 0')
    assert "over 95%" in size["annotations"]["summary"]
    default = helm_rules()
    for name in ("EcrAccessDriftPassMissing",):  # no threshold of its own: the interval is a metric
        assert by_name[name] == default[name]


def test_another_release_names_its_own_objects_in_the_hints() -> None:
    rules = alert_rules(helm_render(HELM_MONITORING, name="ops", namespace="platform"))
    description = rules["EcrAccessDriftPassMissing"]["annotations"]["description"]
    assert "kubectl -n platform logs deploy/ops-ecr-access-operator" in description
    assert "kubectl -n platform rollout restart deploy/ops-ecr-access-operator" in description


def test_the_metrics_port_reaches_the_operator_the_pod_and_the_service() -> None:
    objects = _helm(port=9090)
    main = container(objects)
    assert {item["name"]: item["value"] for item in main["env"]}["ECR_ACCESS_METRICS_PORT"] == "9090"
    assert {item["name"]: item["containerPort"] for item in main["ports"]}["metrics"] == 9090
    assert one(objects, "Service")["spec"]["ports"][0]["port"] == 9090


def test_port_zero_serves_no_metrics_and_renders_no_monitoring_objects() -> None:
    objects = helm_render({"metrics": {"port": 0}})
    main = container(objects)
    assert {item["name"]: item["value"] for item in main["env"]}["ECR_ACCESS_METRICS_PORT"] == "0"
    assert "metrics" not in {item["name"] for item in main["ports"]}
    assert not {obj["kind"] for obj in objects} & KINDS
    for version in KUBE_VERSIONS:
        validate(deployment(objects), version)


@pytest.mark.parametrize(("metrics", "message"), [
    ({"port": 0, "serviceMonitor": {"enabled": True}},
     "metrics.serviceMonitor.enabled needs metrics: metrics.port is 0"),
    ({"port": 0, "prometheusRule": {"enabled": True}},
     "metrics.prometheusRule.enabled needs metrics: metrics.port is 0"),
    ({"service": {"enabled": False}, "serviceMonitor": {"enabled": True}},
     "metrics.serviceMonitor.enabled needs metrics.service.enabled"),
], ids=["monitor-without-metrics", "rules-without-metrics", "monitor-without-service"])
def test_monitoring_without_metrics_fails_the_render_saying_why(metrics: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        helm_render({"metrics": metrics})


@pytest.mark.parametrize(("metrics", "where"), [
    ({"prot": 8000}, "prot"),
    ({"port": 70000}, "/metrics/port"),
    ({"port": 8081}, "/metrics/port"),  # the readiness port
    ({"port": "8000"}, "/metrics/port"),
    ({"serviceMonitor": {"enabled": True, "intervall": "30s"}}, "intervall"),
    ({"serviceMonitor": {"interval": "30 seconds"}}, "/metrics/serviceMonitor/interval"),
    ({"serviceMonitor": {"labels": {"release": 1}}}, "/metrics/serviceMonitor/labels/release"),
    ({"prometheusRule": {"stalledFor": "15"}}, "/metrics/prometheusRule/stalledFor"),
    ({"prometheusRule": {"awsErrorRatio": 5}}, "/metrics/prometheusRule/awsErrorRatio"),
    ({"prometheusRule": {"awsErrorRatio": 0}}, "/metrics/prometheusRule/awsErrorRatio"),
    ({"prometheusRule": {"policySizeRatio": 0.8}}, "/metrics/prometheusRule/policySizeRatio"),  # not a bucket
    ({"prometheusRule": {"policySizeRatio": 1.0}}, "/metrics/prometheusRule/policySizeRatio"),
    ({"prometheusRule": {"policySizeRatio": "0.9"}}, "/metrics/prometheusRule/policySizeRatio"),
    ({"prometheusRule": {"awsErrorRate": 0.05}}, "awsErrorRate"),
], ids=str)
def test_values_schema_rejects_bad_metrics_values(metrics: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=where):
        helm_render({"metrics": metrics})


@pytest.mark.parametrize("bucket", [bucket for bucket in SIZE_BUCKETS if bucket < 1.0])
def test_every_bucket_threshold_renders_a_matcher_the_scrape_has(bucket: float) -> None:
    rules = helm_rules({"metrics": {**HELM_MONITORING["metrics"], "prometheusRule": {
        "enabled": True, "policySizeRatio": bucket}}})
    assert promql.problems(rules["EcrAccessPolicyNearSizeLimit"]["expr"], _scrape()) == []
