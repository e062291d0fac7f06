"""The Helm chart: it lints clean, its values are checked, and by default it installs what deploy/base installs.

Rendered with Helm's own Go SDK (helm-python-sdk), offline: what `helm template` / `helm install` would produce.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.deploy.manifests import (
    CHART,
    CRD_PATHS,
    KUBE_VERSIONS,
    NAME,
    NAMESPACE,
    ROOT,
    container,
    deployment,
    helm_crds,
    helm_render,
    kustomize,
    one,
    rbac_rules,
    validate,
    validate_policy,
)
from tests.deploy.monitoring import component_objects

TEAM_POLICY: dict[str, Any] = {  # examples/policy-team.yaml, as a values item
    "name": "team-ml",
    "namespaceSelector": {"matchLabels": {"team": "ml"}},
    "roles": ["arn:aws:iam::123456789012:role/cld_*-cluster_node_role"],
    "repositories": ["arn:aws:ecr:*:123456789012:repository/ml/*"],
    "managedPolicies": ["None"],
    "actions": [],
}
PUSH_POLICY: dict[str, Any] = {
    "name": "ci.push",
    "annotations": {"helm.sh/resource-policy": "keep"},
    "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                                 "values": ["ci"]}]},
    "roles": ["arn:aws:iam::123456789012:role/ci-*"],
    "repositories": ["*"],
    "actions": ["ecr:PutImage", "ecr:*LayerUpload", "ecr:UploadLayerPart"],
}

NON_DEFAULT: dict[str, Any] = {
    "image": {"repository": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecr-access-operator", "tag": "0.1.1"},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ecr-op"}},
    "region": "eu-west-1",
    "clusterId": "prod-eu",
    "resyncInterval": 120,
    "policyMode": "Open",
    "logFormat": "json",
    "watchNamespaces": ["team-ml", "team-data"],
    "extraEnv": [{"name": "ECR_ACCESS_RETRY_DELAY", "value": "30"}],
    "rbac": {"aggregateEditorToEdit": True},
    "grantPolicies": [TEAM_POLICY, PUSH_POLICY],
    "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"cpu": "1", "memory": "400Mi"}},
}
POLICY_KIND = ("ecraccess.io/v1alpha1", "EcrGrantPolicy")


def _policies(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if (obj["apiVersion"], obj["kind"]) == POLICY_KIND]


def _env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(objects)["env"]}


def _problems(report: dict[str, Any]) -> list[str]:
    # Severity: 1 info, 2 warning, 3 error. Info ("icon is recommended") is fine.
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + list(report["errors"])


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["defaults", "non-default"])
def test_chart_lints_clean(values: dict[str, Any] | None) -> None:
    report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSIONS[0]}.0")
    assert report["total_charts_linted"] == 1
    assert _problems(report) == []


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    # The lint check above is only worth something if lint sees template errors.
    broken = tmp_path / "chart"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.nope }}\n")
    assert _problems(helm_python.lint(broken, None, strict=True))


def test_chart_crds_are_byte_identical_to_the_repositorys() -> None:
    for path in CRD_PATHS:
        assert (CHART / "crds" / path.name).read_bytes() == path.read_bytes(), (
            f"copy crds/{path.name} to deploy/helm/ecr-access-operator/crds/")
    assert sorted(path.name for path in (CHART / "crds").iterdir()) == sorted(path.name for path in CRD_PATHS)
    by_name = {crd["metadata"]["name"]: crd for crd in helm_crds()}
    assert by_name == {crd["metadata"]["name"]: crd for crd in (yaml.safe_load(p.read_text()) for p in CRD_PATHS)}


def test_chart_version_follows_the_operator() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert container(helm_render())["image"] == f"ecr-access-operator:{project['version']}"
    assert container(kustomize("base"))["image"] == f"ecr-access-operator:{project['version']}"


def _identity(objects: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    return {(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")) for obj in objects}


def test_default_render_installs_the_same_objects_as_the_kustomize_base() -> None:
    # Helm does not create the release namespace (`helm install -n ecr-access-system --create-namespace` does), and
    # installs the CRD from crds/; everything else must be the same objects under the same names. The metrics Service
    # is on by default in the chart (metrics.service.enabled), and comes with components/monitoring in kustomize.
    base = [obj for obj in kustomize("base") if obj["kind"] != "Namespace"]
    service = one(component_objects(), "Service")
    assert _identity(helm_render() + helm_crds()) == _identity([*base, service])


def test_default_render_grants_the_same_rbac_as_the_kustomize_base() -> None:
    base, chart = kustomize("base"), helm_render()
    for role in (obj for obj in base if obj["kind"] == "ClusterRole"):
        name = role["metadata"]["name"]
        assert rbac_rules(one(chart, "ClusterRole", name)) == rbac_rules(role), name
        labels = {k: v for k, v in role["metadata"].get("labels", {}).items() if k.startswith("rbac.")}
        chart_labels = {k: v for k, v in one(chart, "ClusterRole", name)["metadata"]["labels"].items()
                        if k.startswith("rbac.")}
        assert chart_labels == labels, name
    base_binding, chart_binding = one(base, "ClusterRoleBinding"), one(chart, "ClusterRoleBinding")
    assert (chart_binding["roleRef"], chart_binding["subjects"]) == (base_binding["roleRef"], base_binding["subjects"])


def test_default_render_runs_the_pod_like_the_kustomize_base() -> None:
    base, chart = deployment(kustomize("base")), deployment(helm_render())
    for key in ("replicas", "strategy"):
        assert chart["spec"][key] == base["spec"][key], key
    base_pod, chart_pod = base["spec"]["template"]["spec"], chart["spec"]["template"]["spec"]
    for key in ("securityContext", "volumes", "serviceAccountName"):
        assert chart_pod[key] == base_pod[key], key
    base_main, chart_main = base_pod["containers"][0], chart_pod["containers"][0]
    for key in ("image", "args", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext",
                "volumeMounts"):
        assert chart_main[key] == base_main[key], key


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["defaults", "non-default"])
def test_rendered_objects_validate_against_kubernetes_schemas(values: dict[str, Any] | None, version: str) -> None:
    # Policies are our own kind: the Kubernetes schemas do not know it, its CRD does.
    for obj in helm_render(values) + helm_crds():
        if (obj["apiVersion"], obj["kind"]) == POLICY_KIND:
            validate_policy(obj)
        else:
            validate(obj, version)


def test_non_default_values_reach_the_objects() -> None:
    objects = helm_render(NON_DEFAULT)
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == NON_DEFAULT["serviceAccount"]["annotations"]
    main = container(objects)
    assert main["image"] == f"{NON_DEFAULT['image']['repository']}:0.1.1"
    assert main["resources"] == NON_DEFAULT["resources"]
    assert _env(objects) == {
        "AWS_REGION": "eu-west-1",
        "ECR_ACCESS_CLUSTER_ID": "prod-eu",
        "ECR_ACCESS_RESYNC_INTERVAL": "120",
        "ECR_ACCESS_POLICY_MODE": "Open",
        "ECR_ACCESS_METRICS_PORT": "8000",
        "ECR_ACCESS_LOG_FORMAT": "json",
        "ECR_ACCESS_NAMESPACES": "team-ml,team-data",
        "ECR_ACCESS_RETRY_DELAY": "30",
    }
    editor = one(objects, "ClusterRole", f"{NAME}-grants-editor")
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"


def test_watching_namespaces_adds_no_permission() -> None:
    # kopf follows watched namespaces with list/watch on namespaces, which the operator has anyway: namespace
    # labels decide which EcrGrantPolicies select a namespace.
    default = rbac_rules(one(helm_render(), "ClusterRole", NAME))
    scoped = rbac_rules(one(helm_render(NON_DEFAULT), "ClusterRole", NAME))
    assert scoped == default
    assert {("", "namespaces", "list", ()), ("", "namespaces", "watch", ())} <= default


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["defaults", "non-default"])
def test_no_role_in_the_chart_lets_anyone_write_policies(values: dict[str, Any] | None) -> None:
    # Not even the grants editor aggregated into `edit` (rbac.aggregateEditorToEdit, set in NON_DEFAULT).
    writes = {"create", "update", "patch", "delete", "deletecollection", "*"}
    for role in (obj for obj in helm_render(values) if obj["kind"] == "ClusterRole"):
        found = {(resource, verb) for group, resource, verb, _ in rbac_rules(role)
                 if resource.split("/")[0] in ("ecrgrantpolicies", "*") and verb in writes and group}
        allowed = {("ecrgrantpolicies/status", "patch")} if role["metadata"]["name"] == NAME else set()
        assert found == allowed, role["metadata"]["name"]
    viewer = one(helm_render(values), "ClusterRole", f"{NAME}-grants-viewer")
    assert {("ecraccess.io", "ecrgrantpolicies", verb, ()) for verb in ("get", "list", "watch")} <= rbac_rules(viewer)


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["defaults", "non-default"])
def test_no_role_in_the_chart_lets_anyone_but_the_operator_write_accounts(values: dict[str, Any] | None) -> None:
    # An EcrAccessAccount extends the operator's reach into another AWS account: a cluster admin's to write. The
    # operator patches it (kopf's annotations) and its status, nothing more; the viewer reads it.
    writes = {"create", "update", "patch", "delete", "deletecollection", "*"}
    for role in (obj for obj in helm_render(values) if obj["kind"] == "ClusterRole"):
        found = {(resource, verb) for group, resource, verb, _ in rbac_rules(role)
                 if resource.split("/")[0] in ("ecraccessaccounts", "*") and verb in writes and group}
        allowed = {("ecraccessaccounts", "patch"), ("ecraccessaccounts/status", "patch")}
        assert found == (allowed if role["metadata"]["name"] == NAME else set()), role["metadata"]["name"]
    viewer = one(helm_render(values), "ClusterRole", f"{NAME}-grants-viewer")
    assert {("ecraccess.io", "ecraccessaccounts", verb, ()) for verb in ("get", "list", "watch")} <= rbac_rules(viewer)


def test_the_chart_creates_no_policy_by_default() -> None:
    # Secure by default: until a cluster admin lists policies (or applies them), grants may grant nothing.
    assert _policies(helm_render()) == []
    with helm_python.Chart.load(CHART) as chart:
        assert chart.values["grantPolicies"] == []


def test_grant_policies_from_values_render_as_policies_the_crd_accepts() -> None:
    objects = helm_render({"grantPolicies": [TEAM_POLICY, PUSH_POLICY]})
    rendered = {obj["metadata"]["name"]: obj for obj in _policies(objects)}
    assert list(rendered) == ["team-ml", "ci.push"]
    for item in (TEAM_POLICY, PUSH_POLICY):
        obj = rendered[item["name"]]
        validate_policy(obj)
        assert obj["spec"] == {key: value for key, value in item.items() if key not in ("name", "annotations")}
        assert "namespace" not in obj["metadata"], "policies are cluster-scoped"
        assert obj["metadata"].get("annotations") == item.get("annotations")
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == NAME
    # Absent optional fields stay absent (the CRD's defaults apply), an explicit [] stays [] (pull actions only).
    assert "managedPolicies" not in rendered["ci.push"]["spec"]
    assert rendered["team-ml"]["spec"]["actions"] == []


def test_an_allow_all_policy_renders_its_empty_selector() -> None:
    (obj,) = _policies(helm_render({"grantPolicies": [
        {"name": "allow-all", "namespaceSelector": {}, "roles": ["*"], "repositories": ["*"]}]}))
    assert obj["spec"] == {"namespaceSelector": {}, "roles": ["*"], "repositories": ["*"]}
    validate_policy(obj)


def test_another_release_name_keeps_every_reference_consistent() -> None:
    objects = helm_render(name="ops", namespace="platform")
    account = one(objects, "ServiceAccount")
    assert account["metadata"] == {**account["metadata"], "name": "ops-ecr-access-operator", "namespace": "platform"}
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ops-ecr-access-operator",
                                    "namespace": "platform"}]
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole", "ops-ecr-access-operator")["metadata"]["name"]
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ops-ecr-access-operator"
    labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert deployment(objects)["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize(("values", "where"), [
    ({"regoin": "us-west-2"}, "regoin"),  # a typo is an error, not a silently ignored key
    ({"region": "Oregon"}, "/region"),
    ({"resyncInterval": 0}, "/resyncInterval"),
    ({"resyncInterval": "fast"}, "/resyncInterval"),
    ({"logFormat": "text"}, "/logFormat"),
    ({"image": {"repository": ""}}, "/image/repository"),
    ({"watchNamespaces": ["Team_ML"]}, "/watchNamespaces/0"),
    ({"rbac": {"aggregateEditorToEdit": "yes"}}, "/rbac/aggregateEditorToEdit"),
    ({"grantPolicies": [{**TEAM_POLICY, "roles": []}]}, "/grantPolicies/0/roles"),
    ({"grantPolicies": [{**TEAM_POLICY, "roles": ["arn:aws:iam::1:role/a b"]}]}, "/grantPolicies/0/roles/0"),
    ({"grantPolicies": [{**TEAM_POLICY, "roles": ["arn:aws:iam::1:role/cld_?"]}]}, "/grantPolicies/0/roles/0"),
    ({"grantPolicies": [{**TEAM_POLICY, "roles": ["cld_*-cluster_node_role"]}]}, "/grantPolicies/0/roles/0"),
    ({"grantPolicies": [{**TEAM_POLICY, "repositories": ["ml/*"]}]}, "/grantPolicies/0/repositories/0"),
    ({"grantPolicies": [{**TEAM_POLICY, "managedPolicies": ["FullAccess"]}]}, "/grantPolicies/0/managedPolicies/0"),
    ({"grantPolicies": [{key: value for key, value in TEAM_POLICY.items() if key != "namespaceSelector"}]},
     "/grantPolicies/0"),
    ({"grantPolicies": [{**TEAM_POLICY, "namespaceSelector": {"matchExpressions": [
        {"key": "team", "operator": "In"}]}}]}, "/grantPolicies/0/namespaceSelector/matchExpressions/0"),
    ({"grantPolicies": [{**TEAM_POLICY, "namespaceSelector": {"matchExpressions": [
        {"key": "team", "operator": "Exists", "values": ["ml"]}]}}]},
     "/grantPolicies/0/namespaceSelector/matchExpressions/0/values"),
    ({"grantPolicies": [{**TEAM_POLICY, "name": "Team_ML"}]}, "/grantPolicies/0/name"),
    ({"grantPolicies": [{**TEAM_POLICY, "roels": ["*"]}]}, "roels"),
], ids=str)
def test_values_schema_rejects_bad_values_naming_the_key(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=where):
        helm_render(values)


def test_values_schema_accepts_the_defaults_and_documented_settings() -> None:
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(chart.values)
        chart.validate_schema(chart.merge_values(NON_DEFAULT))


def test_policies_are_enforced_unless_the_values_say_open() -> None:
    assert _env(helm_render())["ECR_ACCESS_POLICY_MODE"] == "Enforce"
