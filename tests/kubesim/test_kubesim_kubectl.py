"""The real kubectl 1.32 against kubesim: what users of an operator type."""

from __future__ import annotations

import json
import pathlib
import threading
import time
from typing import Any

import yaml
from kubesim_helpers import GROUP, WIDGET_CRD, WIDGETS, Client, Kubectl

WIDGET_YAML = f"""
apiVersion: {GROUP}/v1
kind: Widget
metadata:
  name: w1
  namespace: default
  labels: {{app: demo}}
spec:
  size: 3
  color: red
  tags: [a, b]
"""


def _install_crd(kubectl: Kubectl) -> None:
    assert "created" in kubectl("apply", "-f", "-", stdin=yaml.safe_dump(WIDGET_CRD)).stdout
    kubectl("wait", "--for", "condition=established", f"crd/widgets.{GROUP}", "--timeout=10s")


def test_apply_get_wide_describe_patch_and_delete(kubectl: Kubectl, client: Client) -> None:
    _install_crd(kubectl)
    assert kubectl("apply", "-f", "-", stdin=WIDGET_YAML).stdout.strip() == f"widget.{GROUP}/w1 created"
    stored = client.get(f"{WIDGETS}/w1")[1]
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    # Re-applying a change goes through a merge patch.
    changed = WIDGET_YAML.replace("size: 3", "size: 4")
    assert kubectl("apply", "-f", "-", stdin=changed).stdout.strip() == f"widget.{GROUP}/w1 configured"
    assert client.get(f"{WIDGETS}/w1")[1]["metadata"]["generation"] == 2
    assert kubectl("apply", "-f", "-", stdin=changed).stdout.strip() == f"widget.{GROUP}/w1 unchanged"

    lines = kubectl("get", "widgets").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert lines[1].split()[:2] == ["w1", "4"]
    wide = kubectl("get", "wd", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "SIZE", "READY", "TAGS", "AGE"]
    assert wide[1].split()[:3] == ["w1", "4", "a,b"]  # an absent Ready condition prints as an empty cell
    assert kubectl("get", "kubesim", "-l", "app=demo", "-o", "name").stdout.strip() == f"widget.{GROUP}/w1"

    kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge",
            "-p", '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}')
    assert kubectl("get", "widget", "w1", "-o", "jsonpath={.status.conditions[0].status}").stdout == "True"
    kubectl("wait", "--for=condition=Ready", "widget/w1", "--timeout=10s")
    kubectl("patch", "widget", "w1", "--type=json", "-p", '[{"op":"replace","path":"/spec/size","value":5}]')
    described = kubectl("describe", "widget", "w1").stdout
    assert "Name:         w1" in described and "Size:" in described and "Events:" in described

    assert kubectl("delete", "widget", "w1").stdout.strip() == f'widget.{GROUP} "w1" deleted'
    assert kubectl("get", "widgets", "-o", "json").stdout and json.loads(
        kubectl("get", "widgets", "-o", "json").stdout)["items"] == []


def test_apply_of_an_invalid_object_prints_the_apiserver_message(kubectl: Kubectl) -> None:
    _install_crd(kubectl)
    bad = WIDGET_YAML.replace("size: 3", "size: 30").replace("color: red", "color: green")
    result = kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    assert 'The Widget "w1" is invalid:' in result.stderr
    assert '* spec.color: Unsupported value: "green": supported values: "red", "blue"' in result.stderr
    assert "* spec.size: Invalid value: 30: spec.size in body should be less than or equal to 10" in result.stderr
    cel = WIDGET_YAML.replace("color: red", "shade: dark\n  color: red")
    result = kubectl("apply", "-f", "-", stdin=cel, check=False)
    assert "exactly one of color or shade must be set" in result.stderr


def test_apply_rejects_unknown_fields_without_validate_false(kubectl: Kubectl) -> None:
    _install_crd(kubectl)
    result = kubectl("apply", "-f", "-", stdin=WIDGET_YAML + "  bogus: 1\n", check=False)
    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.bogus"' in result.stderr
    warned = kubectl("apply", "--validate=warn", "-f", "-", stdin=WIDGET_YAML + "  bogus: 1\n")
    assert 'unknown field "spec.bogus"' in warned.stderr


def test_explain_prints_crd_descriptions(kubectl: Kubectl) -> None:
    _install_crd(kubectl)
    out = kubectl("explain", "widgets.spec.size").stdout
    assert "FIELD: size <integer>" in out
    assert "How big the widget is, from 1 to 10." in out
    spec = kubectl("explain", "widgets.spec").stdout
    assert "What the widget should be." in spec and "size\t<integer> -required-" in spec


def test_namespaces_apply_uses_strategic_merge(kubectl: Kubectl, client: Client) -> None:
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n  labels: {a: '1'}\n"
    kubectl("apply", "-f", "-", stdin=namespace)
    kubectl("apply", "-f", "-", stdin=namespace.replace("a: '1'", "a: '2'"))
    assert client.get("/api/v1/namespaces/team")[1]["metadata"]["labels"] == {"a": "2"}
    lines = kubectl("get", "ns").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["kube-system", "Active"] for line in lines)
    kubectl("delete", "ns", "team")
    assert client.get("/api/v1/namespaces/team")[0] == 404


def test_delete_waits_for_finalizers(kubectl: Kubectl, client: Client) -> None:
    _install_crd(kubectl)
    kubectl("apply", "-f", "-", stdin=WIDGET_YAML.replace("  labels:", "  finalizers: [example.com/hold]\n  labels:"))
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(kubectl("delete", "widget", "w1", "--timeout=20s")))
    thread.start()
    time.sleep(1.0)
    assert not done  # kubectl is still waiting for the finalizer
    assert client.get(f"{WIDGETS}/w1")[1]["metadata"]["deletionTimestamp"]
    client.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": None}})
    thread.join(timeout=20)
    assert done and done[0].returncode == 0 and "deleted" in done[0].stdout


def test_api_resources_and_get_raw(kubectl: Kubectl) -> None:
    _install_crd(kubectl)
    resources = kubectl("api-resources").stdout
    assert any(line.split()[:2] == ["widgets", "wd"] for line in resources.splitlines())
    assert "customresourcedefinitions" in resources
    assert json.loads(kubectl("get", "--raw", "/version").stdout)["minor"] == "32"
    assert kubectl("version", "-o", "json").returncode == 0


def test_create_replace_and_label(kubectl: Kubectl, client: Client, tmp_path: pathlib.Path) -> None:
    _install_crd(kubectl)
    kubectl("create", "-f", "-", stdin=WIDGET_YAML)
    kubectl("label", "widget", "w1", "tier=web")
    assert client.get(f"{WIDGETS}/w1")[1]["metadata"]["labels"]["tier"] == "web"
    current = yaml.safe_load(kubectl("get", "widget", "w1", "-o", "yaml").stdout)
    current["spec"]["size"] = 7
    kubectl("replace", "-f", "-", stdin=yaml.safe_dump(current))
    assert client.get(f"{WIDGETS}/w1")[1]["spec"]["size"] == 7
    result = kubectl("create", "-f", "-", stdin=WIDGET_YAML, check=False)
    assert "AlreadyExists" in result.stderr and "already exists" in result.stderr


def test_create_namespace_uses_protobuf_and_works(kubectl: Kubectl, client: Client) -> None:
    assert kubectl("create", "namespace", "team-ml").stdout.strip() == "namespace/team-ml created"
    body = client.get("/api/v1/namespaces/team-ml")[1]
    assert body["metadata"]["uid"] and body["status"]["phase"] == "Active"
    result = kubectl("create", "namespace", "team-ml", check=False)
    assert 'namespaces "team-ml" already exists' in result.stderr


def test_get_watch_prints_changes(kubectl: Kubectl, client: Client) -> None:
    _install_crd(kubectl)
    kubectl("apply", "-f", "-", stdin=WIDGET_YAML)
    output: list[str] = []
    thread = threading.Thread(target=lambda: output.append(
        kubectl("get", "widgets", "--watch", "--request-timeout=3s", check=False).stdout))
    thread.start()
    time.sleep(1.0)
    client.patch(f"{WIDGETS}/w1", {"spec": {"size": 8}})
    thread.join(timeout=10)
    rows = [line.split()[:2] for line in output[0].splitlines()]
    assert ["w1", "3"] in rows and ["w1", "8"] in rows
