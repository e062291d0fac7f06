"""The built-in kinds of an install (ServiceAccount, ConfigMap, Secret, Service, Deployment, RBAC): discovery,
CRUD, `kubectl get`/`apply`, and strategic merge patches that keep what another writer added."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kubesim_helpers import Client, Kubectl

from kubesim import patches

SMP = "application/strategic-merge-patch+json"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
RBAC = "rbac.authorization.k8s.io"

# (URL of the collection, a valid object): one of each kind, in the namespace `default` where namespaced.
OBJECTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ServiceAccount": ("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "sa1"}}),
    "ConfigMap": ("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "cm1"}, "data": {"a": "1"}}),
    "Secret": ("/api/v1/namespaces/default/secrets",
               {"metadata": {"name": "s1"}, "type": "Opaque", "data": {"a": "MQ=="}}),
    "Service": ("/api/v1/namespaces/default/services",
                {"metadata": {"name": "svc1"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}),
    "Deployment": (DEPLOYMENTS, {"metadata": {"name": "d1"}, "spec": {"replicas": 1}}),
    "ClusterRole": (f"/apis/{RBAC}/v1/clusterroles",
                    {"metadata": {"name": "cr1"}, "rules": [{"apiGroups": [""], "resources": ["pods"],
                                                             "verbs": ["get"]}]}),
    "ClusterRoleBinding": (f"/apis/{RBAC}/v1/clusterrolebindings",
                           {"metadata": {"name": "crb1"},
                            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cr1"},
                            "subjects": [{"kind": "ServiceAccount", "name": "sa1", "namespace": "default"}]}),
    "Role": (f"/apis/{RBAC}/v1/namespaces/default/roles", {"metadata": {"name": "r1"}, "rules": []}),
    "RoleBinding": (f"/apis/{RBAC}/v1/namespaces/default/rolebindings",
                    {"metadata": {"name": "rb1"}, "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "r1"}}),
}

DEPLOYMENT_YAML = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: example/app:1
          env:
            - {name: A, value: "1"}
            - {name: B, value: "2"}
          ports:
            - {containerPort: 8080, name: http}
"""

ENV_B = '            - {name: B, value: "2"}\n'

INSTALL_YAML = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: op, namespace: default}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: op-settings, namespace: default}}
data: {{level: info}}
---
apiVersion: v1
kind: Secret
metadata: {{name: op-token, namespace: default}}
type: Opaque
data: {{token: {base64.b64encode(b"t0k3n").decode()}}}
---
apiVersion: v1
kind: Service
metadata: {{name: op-metrics, namespace: default}}
spec:
  selector: {{app: web}}
  ports: [{{name: metrics, port: 8080, targetPort: 8080}}]
---
apiVersion: {RBAC}/v1
kind: ClusterRole
metadata: {{name: op}}
rules: [{{apiGroups: [""], resources: [namespaces], verbs: [get]}}]
---
apiVersion: {RBAC}/v1
kind: ClusterRoleBinding
metadata: {{name: op}}
roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: op}}
subjects: [{{kind: ServiceAccount, name: op, namespace: default}}]
---
apiVersion: {RBAC}/v1
kind: Role
metadata: {{name: op, namespace: default}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get, list]}}]
---
apiVersion: {RBAC}/v1
kind: RoleBinding
metadata: {{name: op, namespace: default}}
roleRef: {{apiGroup: {RBAC}, kind: Role, name: op}}
subjects: [{{kind: ServiceAccount, name: op, namespace: default}}]
---
{DEPLOYMENT_YAML}
"""


def _resources(client: Client, group_version_path: str) -> dict[str, dict[str, Any]]:
    status, body, _ = client.get(group_version_path)
    assert status == 200, body
    return {r["name"]: r for r in body["resources"]}


def test_discovery_lists_the_builtin_kinds_of_an_install(client: Client) -> None:
    core = _resources(client, "/api/v1")
    assert {name: core[name]["kind"] for name in ("serviceaccounts", "configmaps", "secrets", "services")} == {
        "serviceaccounts": "ServiceAccount", "configmaps": "ConfigMap", "secrets": "Secret", "services": "Service"}
    assert core["serviceaccounts"]["shortNames"] == ["sa"] and core["services"]["shortNames"] == ["svc"]
    apps = _resources(client, "/apis/apps/v1")
    assert apps["deployments"]["namespaced"] is True and apps["deployments"]["shortNames"] == ["deploy"]
    assert "deployments/status" in apps
    rbac = _resources(client, f"/apis/{RBAC}/v1")
    assert {name: r["namespaced"] for name, r in rbac.items()} == {
        "clusterroles": False, "clusterrolebindings": False, "roles": True, "rolebindings": True}
    groups = {g["name"] for g in client.get("/apis")[1]["groups"]}
    assert {"apps", RBAC} <= groups


def test_kubectl_api_resources_and_get_all(kubectl: Kubectl) -> None:
    listed = kubectl("api-resources", "-o", "name").stdout.split()
    assert {"deployments.apps", "clusterroles.rbac.authorization.k8s.io", "serviceaccounts", "secrets"} <= set(listed)
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT_YAML)
    assert kubectl("get", "all", "-o", "name").stdout.split() == ["deployment.apps/web"]


@pytest.mark.parametrize("kind", list(OBJECTS))
def test_crud_of_each_builtin_kind(client: Client, kind: str) -> None:
    collection, body = OBJECTS[kind]
    status, created, _ = client.post(collection, body)
    assert status == 201, created
    name = body["metadata"]["name"]
    assert created["kind"] == kind and created["metadata"]["uid"]
    assert ("namespace" in created["metadata"]) == ("/namespaces/" in collection)
    assert client.post(collection, body)[0] == 409
    status, listed, _ = client.get(collection)
    assert status == 200 and [item["metadata"]["name"] for item in listed["items"]] == [name]
    assert listed["kind"] == f"{kind}List"
    fetched = client.get(f"{collection}/{name}")[1]
    fetched["metadata"]["labels"] = {"edited": "yes"}
    status, updated, _ = client.put(f"{collection}/{name}", fetched)
    assert status == 200 and updated["metadata"]["labels"] == {"edited": "yes"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert client.delete(f"{collection}/{name}")[0] == 200
    assert client.get(f"{collection}/{name}")[0] == 404


def test_namespaced_builtins_need_their_namespace(client: Client) -> None:
    status, body, _ = client.post("/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "cm"}})
    assert status == 404 and body["details"]["kind"] == "namespaces"


def test_deployment_generation_counts_spec_changes_and_status_is_left_to_a_controller(client: Client) -> None:
    body = {"metadata": {"name": "d1"}, "spec": {"replicas": 1}, "status": {"observedGeneration": 7}}
    created = client.post(DEPLOYMENTS, body)[1]
    assert created["metadata"]["generation"] == 1
    assert "status" not in created  # written through /status only; no controller runs in kubesim
    labelled = client.patch(f"{DEPLOYMENTS}/d1", {"metadata": {"labels": {"a": "b"}}}, content_type=SMP)[1]
    assert labelled["metadata"]["generation"] == 1
    scaled = client.patch(f"{DEPLOYMENTS}/d1", {"spec": {"replicas": 2}}, content_type=SMP)[1]
    assert scaled["metadata"]["generation"] == 2
    status = client.patch(f"{DEPLOYMENTS}/d1/status", {"status": {"observedGeneration": 2}})[1]
    assert status["status"] == {"observedGeneration": 2} and status["spec"] == {"replicas": 2}


def test_secret_string_data_is_stored_as_base64_data(client: Client) -> None:
    secrets = "/api/v1/namespaces/default/secrets"
    body = {"metadata": {"name": "s1"}, "data": {"a": "MQ=="}, "stringData": {"b": "two"}}
    created = client.post(secrets, body)[1]
    assert created["data"] == {"a": "MQ==", "b": base64.b64encode(b"two").decode()}
    assert "stringData" not in created


def test_builtin_kinds_accept_any_field_under_strict_validation(client: Client) -> None:
    # kubesim has no schemas for built-ins: unknown fields are kept, never rejected (a real apiserver would reject).
    body = {"metadata": {"name": "cm1"}, "data": {"a": "1"}, "extra": {"kept": True}}
    status, created, _ = client.post("/api/v1/namespaces/default/configmaps?fieldValidation=Strict", body)
    assert status == 201 and created["extra"] == {"kept": True}


def test_kubectl_create_of_configmaps_secrets_and_service_accounts(kubectl: Kubectl, client: Client,
                                                                   tmp_path: Path) -> None:
    # These `kubectl create` commands post protobuf, which kubesim decodes for these kinds.
    binary = tmp_path / "blob"
    binary.write_bytes(b"\x00\xff")
    kubectl("create", "configmap", "settings", "--from-literal=level=debug", f"--from-file=blob={binary}")
    settings = client.get("/api/v1/namespaces/default/configmaps/settings")[1]
    assert settings["data"] == {"level": "debug"}
    assert base64.b64decode(settings["binaryData"]["blob"]) == b"\x00\xff"
    kubectl("create", "secret", "generic", "token", "--from-literal=token=t0k3n", "--type=example.com/token")
    token = client.get("/api/v1/namespaces/default/secrets/token")[1]
    assert (token["type"], base64.b64decode(token["data"]["token"])) == ("example.com/token", b"t0k3n")
    kubectl("create", "serviceaccount", "robot")
    assert client.get("/api/v1/namespaces/default/serviceaccounts/robot")[1]["metadata"]["namespace"] == "default"
    refused = kubectl("create", "deployment", "web", "--image=example/app:1", check=False)
    assert refused.returncode != 0 and "kubectl apply" in refused.stderr


def test_kubectl_apply_of_an_install_twice_is_unchanged(kubectl: Kubectl, client: Client) -> None:
    first = kubectl("apply", "-f", "-", stdin=INSTALL_YAML).stdout.splitlines()
    assert len(first) == 9 and all(line.endswith(" created") for line in first), first
    before = json.loads(kubectl("get", "-f", "-", "-o", "json", stdin=INSTALL_YAML).stdout)["items"]
    second = kubectl("apply", "-f", "-", stdin=INSTALL_YAML).stdout.splitlines()
    assert [line.rsplit(" ", 1)[0] for line in second] == [line.rsplit(" ", 1)[0] for line in first]
    assert all(line.endswith(" unchanged") for line in second), second
    after = json.loads(kubectl("get", "-f", "-", "-o", "json", stdin=INSTALL_YAML).stdout)["items"]
    assert [o["metadata"]["resourceVersion"] for o in after] == [o["metadata"]["resourceVersion"] for o in before]
    secret = client.get("/api/v1/namespaces/default/secrets/op-token")[1]
    assert base64.b64decode(secret["data"]["token"]) == b"t0k3n"


def test_kubectl_get_of_a_builtin_shows_name_and_age(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT_YAML)
    lines = kubectl("get", "deploy").stdout.splitlines()
    assert lines[0].split() == ["NAME", "AGE"]
    assert lines[1].split()[0] == "web"


def _containers(client: Client, name: str = "web") -> list[dict[str, Any]]:
    return list(client.get(f"{DEPLOYMENTS}/{name}")[1]["spec"]["template"]["spec"]["containers"])


def test_reapply_merges_containers_and_keeps_a_sidecar_someone_else_added(kubectl: Kubectl, client: Client) -> None:
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT_YAML)
    # Another writer (a mesh injector, say) adds a sidecar and an env var with a strategic merge patch.
    sidecar = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "INJECTED", "value": "yes"}]},
        {"name": "proxy", "image": "example/proxy:1"},
    ]}}}}
    kubectl("patch", "deployment", "web", "--type=strategic", "-p", json.dumps(sidecar))
    containers = _containers(client)
    assert [c["name"] for c in containers] == ["app", "proxy"]
    assert [e["name"] for e in containers[0]["env"]] == ["A", "B", "INJECTED"]
    assert containers[0]["image"] == "example/app:1"  # merged by name, not replaced
    # The user changes the image and drops env B: the sidecar and the injected env var stay.
    changed = DEPLOYMENT_YAML.replace("example/app:1", "example/app:2").replace(ENV_B, "")
    assert kubectl("apply", "-f", "-", stdin=changed).stdout.strip() == "deployment.apps/web configured"
    containers = _containers(client)
    assert [c["name"] for c in containers] == ["app", "proxy"]
    assert containers[0]["image"] == "example/app:2"
    assert [e["name"] for e in containers[0]["env"]] == ["A", "INJECTED"]
    assert containers[0]["ports"] == [{"containerPort": 8080, "name": "http"}]
    assert client.get(f"{DEPLOYMENTS}/web")[1]["metadata"]["generation"] == 3
    # Re-applying sends only ordering directives (the sidecar is not in the manifest), which change nothing.
    before = client.get(f"{DEPLOYMENTS}/web")[1]
    kubectl("apply", "-f", "-", stdin=changed)
    assert client.get(f"{DEPLOYMENTS}/web")[1] == before


def test_reapply_without_a_container_removes_only_that_container(kubectl: Kubectl, client: Client) -> None:
    two = DEPLOYMENT_YAML + "        - {name: helper, image: example/helper:1}\n"
    kubectl("apply", "-f", "-", stdin=two)
    assert [c["name"] for c in _containers(client)] == ["app", "helper"]
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT_YAML)
    assert [c["name"] for c in _containers(client)] == ["app"]


DEPLOYMENT_PATH = ("spec", "template", "spec")


def _pod(containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": containers, **extra}}}}


@pytest.mark.parametrize(
    ("current", "patch", "expected"),
    [
        pytest.param(
            _pod([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]),
            _pod([{"name": "b", "image": "2"}]),
            _pod([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]),
            id="containers merge by name",
        ),
        pytest.param(
            _pod([{"name": "a"}, {"name": "b"}]),
            _pod([{"name": "a", "$patch": "delete"}]),
            _pod([{"name": "b"}]),
            id="$patch delete removes one item",
        ),
        pytest.param(
            _pod([{"name": "a"}, {"name": "b"}]),
            {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}},
            _pod([{"name": "b"}, {"name": "a"}]),
            id="$setElementOrder orders the list",
        ),
        pytest.param(
            _pod([{"name": "a"}, {"name": "b"}]),
            _pod([{"$patch": "replace"}, {"name": "c"}]),
            _pod([{"name": "c"}]),
            id="$patch replace replaces the list",
        ),
        pytest.param(
            _pod([{"name": "a", "volumeMounts": [{"mountPath": "/x", "name": "v"}],
                   "ports": [{"containerPort": 80, "name": "http"}]}]),
            _pod([{"name": "a", "volumeMounts": [{"mountPath": "/y", "name": "w"}],
                   "ports": [{"containerPort": 80, "name": "web"}]}]),
            _pod([{"name": "a", "volumeMounts": [{"mountPath": "/x", "name": "v"}, {"mountPath": "/y", "name": "w"}],
                   "ports": [{"containerPort": 80, "name": "web"}]}]),
            id="volumeMounts by mountPath, ports by containerPort",
        ),
        pytest.param(
            _pod([], volumes=[{"name": "v", "emptyDir": {}}]),
            _pod([], volumes=[{"name": "v", "configMap": {"name": "c"}, "$retainKeys": ["configMap", "name"]}]),
            _pod([], volumes=[{"name": "v", "configMap": {"name": "c"}}]),
            id="volumes by name with retainKeys",
        ),
        pytest.param(
            {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
            {"spec": {"strategy": {"type": "Recreate", "$retainKeys": ["type"], "rollingUpdate": None}}},
            {"spec": {"strategy": {"type": "Recreate"}}},
            id="strategy retainKeys",
        ),
        pytest.param(
            {"spec": {"template": {"spec": {"tolerations": [{"key": "a"}]}}}},
            {"spec": {"template": {"spec": {"tolerations": [{"key": "b"}]}}}},
            {"spec": {"template": {"spec": {"tolerations": [{"key": "b"}]}}}},
            id="lists without a merge key are replaced",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["a", "b"]}},
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}},
            {"metadata": {"finalizers": ["b", "c"]}},
            id="finalizers are a merged set",
        ),
    ],
)
def test_strategic_merge_patch_of_a_deployment(current: dict[str, Any], patch: dict[str, Any],
                                               expected: dict[str, Any]) -> None:
    assert patches.strategic_merge_patch(current, patch, patches.merge_keys("Deployment")) == expected


def test_rbac_rules_are_replaced_not_merged(client: Client) -> None:
    collection, body = OBJECTS["ClusterRole"]
    client.post(collection, body)
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]
    status, patched, _ = client.patch(f"{collection}/cr1", {"rules": rules}, content_type=SMP)
    assert status == 200 and patched["rules"] == rules


def test_openapi_of_builtins_accepts_any_field(client: Client) -> None:
    document = client.get("/openapi/v3/apis/apps/v1")[1]
    deployment = document["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-preserve-unknown-fields"] is True
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "version": "v1", "kind": "Deployment"}]
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])


def test_kubectl_explain_finds_builtin_kinds(kubectl: Kubectl) -> None:
    assert "KIND:       ClusterRole" in kubectl("explain", "clusterroles").stdout


def test_deleting_a_namespace_deletes_its_builtin_objects(client: Client) -> None:
    client.post("/api/v1/namespaces", {"metadata": {"name": "team"}})
    client.post("/api/v1/namespaces/team/configmaps", {"metadata": {"name": "cm"}})
    client.post("/apis/apps/v1/namespaces/team/deployments", {"metadata": {"name": "d"}})
    assert client.delete("/api/v1/namespaces/team")[0] == 200
    assert client.get("/api/v1/namespaces/team/configmaps/cm")[0] == 404
    assert client.get("/apis/apps/v1/namespaces/team/deployments/d")[0] == 404
    assert client.get("/api/v1/namespaces/team")[0] == 404

