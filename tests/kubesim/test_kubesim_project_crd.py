"""The project's own CRD and examples, applied with kubectl to kubesim as a user would.

kubesim knows nothing of ecr_access; this test only proves that the CRD the operator ships (its schema,
CEL rules and printer columns) is served faithfully, so that the operator's end-to-end tests can rely on it.
"""

from __future__ import annotations

import pathlib

import yaml
from kubesim_helpers import Client, Kubectl

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "ecraccessgrants.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_project_crd_and_examples_apply_with_kubectl(kubectl: Kubectl, client: Client) -> None:
    assert CRD.exists() and EXAMPLES, "crds/ecraccessgrants.yaml and examples/*.yaml are part of the project"
    kubectl("apply", "-f", str(CRD))
    kubectl("wait", "--for", "condition=established", "crd/ecraccessgrants.ecraccess.io", "--timeout=10s")
    expected = []
    for example in EXAMPLES:
        for document in yaml.safe_load_all(example.read_text()):
            if not document or document.get("kind") != "EcrAccessGrant":
                continue
            namespace = document["metadata"].get("namespace", "default")
            if client.get(f"/api/v1/namespaces/{namespace}")[0] == 404:
                kubectl("create", "namespace", namespace)
            expected.append((namespace, document["metadata"]["name"]))
        assert "created" in kubectl("apply", "-f", str(example)).stdout
    listed = client.get("/apis/ecraccess.io/v1alpha1/ecraccessgrants")[1]["items"]
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed) == sorted(expected)
    table = kubectl("get", "ecraccessgrants", "-A").stdout.splitlines()
    assert table[0].split()[:2] == ["NAMESPACE", "NAME"] and len(table) == len(expected) + 1
    assert "FIELD: role <Object>" in kubectl("explain", "ecraccessgrants.spec.role").stdout
