"""The monitoring objects of the install (deploy/components/monitoring, the chart's metrics.* templates): where to
find them, what the Prometheus Operator accepts of them, and the operator's metrics as Prometheus would scrape them.

The Prometheus Operator's CRDs are not part of this repository. `SERVICE_MONITOR` and `PROMETHEUS_RULE` are written
here: the fields of monitoring.coreos.com/v1 that these manifests use, typed as that API types them, every other
field unknown (so that a misspelt one is an error, as with `kubectl apply --validate=strict`). They validate the
objects (`monitoring_errors`) and make stand-in CRDs that kubesim serves (`monitoring_crds`), so that the monitoring
overlay and chart apply to an API server in the tests as they would to a cluster running the Prometheus Operator.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import jsonschema
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ecr_access.metrics import Metrics
from tests.deploy.manifests import Obj, helm_render, kustomize
from tests.unit.test_crd import to_json_schema

GROUP = "monitoring.coreos.com"
OVERLAY = "overlays/monitoring"
# The chart's values that render every monitoring object, thresholds at their defaults.
HELM_MONITORING: dict[str, Any] = {"metrics": {"serviceMonitor": {"enabled": True},
                                               "prometheusRule": {"enabled": True}}}
ALERTS = ("EcrAccessGrantStalled", "EcrAccessDriftPassMissing", "EcrAccessPolicyNearSizeLimit", "EcrAccessAwsErrors")

# A Prometheus duration as the Prometheus Operator's API accepts it (e.g. 30s, 15m, 1h30m).
_DURATION = {"type": "string", "pattern": "^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_LABEL_SELECTOR = {"type": "object", "properties": {
    "matchLabels": _STRINGS,
    "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"], "properties": {
        "key": {"type": "string"}, "operator": {"type": "string"}, "values": {"type": "array",
                                                                              "items": {"type": "string"}}}}},
}}

SERVICE_MONITOR: Obj = {"type": "object", "required": ["spec"], "properties": {
    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _METADATA,
    "spec": {"type": "object", "required": ["selector", "endpoints"], "properties": {
        "selector": _LABEL_SELECTOR,
        "namespaceSelector": {"type": "object", "properties": {
            "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
        "jobLabel": {"type": "string"},
        "endpoints": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {
            "port": {"type": "string"},
            "path": {"type": "string"},
            "scheme": {"type": "string", "enum": ["http", "https"]},
            "interval": _DURATION,
            "scrapeTimeout": _DURATION,
            "honorLabels": {"type": "boolean"},
        }}},
    }},
}}

PROMETHEUS_RULE: Obj = {"type": "object", "required": ["spec"], "properties": {
    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _METADATA,
    "spec": {"type": "object", "properties": {
        "groups": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1},
            "interval": _DURATION,
            "rules": {"type": "array", "items": {"type": "object", "required": ["expr"], "properties": {
                "alert": {"type": "string"},
                "record": {"type": "string"},
                "expr": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "for": _DURATION,
                "keep_firing_for": _DURATION,
                "labels": _STRINGS,
                "annotations": _STRINGS,
            }}},
        }}},
    }},
}}

SCHEMAS = {"ServiceMonitor": (SERVICE_MONITOR, "servicemonitors"), "PrometheusRule": (PROMETHEUS_RULE,
                                                                                      "prometheusrules")}


def is_monitoring(obj: Obj) -> bool:
    return str(obj.get("apiVersion", "")).startswith(f"{GROUP}/")


def monitoring_errors(obj: Obj) -> list[str]:
    """What a strict apply would refuse in a ServiceMonitor or PrometheusRule (see the module's docstring)."""
    assert obj["apiVersion"] == f"{GROUP}/v1", obj["apiVersion"]
    schema = to_json_schema(SCHEMAS[obj["kind"]][0], strict=True)
    found = jsonschema.Draft4Validator(schema).iter_errors(obj)
    return sorted(f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in found)


def monitoring_crds() -> list[Obj]:
    """Stand-ins for the Prometheus Operator's two CRDs, with the schemas above, for kubesim."""
    crds = []
    for kind, (schema, plural) in SCHEMAS.items():
        crds.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {
                "group": GROUP,
                "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                "versions": [{"name": "v1", "served": True, "storage": True,
                              "schema": {"openAPIV3Schema": copy.deepcopy(schema)}}],
            },
        })
    return crds


def component_objects() -> list[Obj]:
    """What deploy/components/monitoring adds to the overlay it is in (overlays/monitoring minus pod-identity)."""
    base = {(obj["kind"], obj["metadata"]["name"]) for obj in kustomize("overlays/pod-identity")}
    return [obj for obj in kustomize(OVERLAY) if (obj["kind"], obj["metadata"]["name"]) not in base]


def alert_rules(objects: Iterable[Obj]) -> dict[str, Obj]:
    """Every alerting rule of the PrometheusRules among `objects`, by alert name (each name once)."""
    rules: dict[str, Obj] = {}
    for obj in objects:
        if obj["kind"] != "PrometheusRule":
            continue
        for group in obj["spec"]["groups"]:
            for rule in group["rules"]:
                assert rule["alert"] not in rules, f"alert {rule['alert']} twice"
                rules[rule["alert"]] = rule
    return rules


def kustomize_rules() -> dict[str, Obj]:
    return alert_rules(kustomize(OVERLAY))


def helm_rules(values: dict[str, Any] | None = None) -> dict[str, Obj]:
    return alert_rules(helm_render(values or HELM_MONITORING))


Series = dict[str, dict[str, set[str]]]  # sample name -> label name -> the values seen


def series(exposition: str) -> Series:
    """A scrape (Prometheus text format) as: each sample name, the labels its series have, and their values."""
    found: Series = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = found.setdefault(sample.name, {})
            for name, value in sample.labels.items():
                labels.setdefault(name, set()).add(value)
    return found


def in_process_scrape() -> str:
    """The operator's registry (ecr_access.metrics), as /metrics would serve it, after one of each thing it counts:
    every labelled series the rules may use exists (a labelled family has no series until it is first counted)."""
    metrics = Metrics()
    metrics.drift_interval.set(300)
    metrics.aws_call("ecr", "GetRepositoryPolicy", "RepositoryPolicyNotFoundException", 0.05)
    metrics.aws_call("ecr", "SetRepositoryPolicy", "OK", 0.05)
    metrics.grant_state(("default", "stalled"), "False", "RepositoryNotFound", stalled=True)
    metrics.grant_state(("default", "ready"), "True", "Reconciled")
    metrics.policy_size.observe(0.5)
    metrics.drift_pass(1.0, 1_700_000_000.0)
    metrics.reconciled("success", 0.1)
    metrics.queued(1)
    metrics.dequeued(0, [0.1])
    return generate_latest(metrics.registry).decode()
