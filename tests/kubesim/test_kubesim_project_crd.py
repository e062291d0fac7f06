"""The project's own CRDs and examples, applied with kubectl to kubesim as a user would.

kubesim knows nothing of ecr_access; this test only proves that the CRDs the operator ships (their schemas,
CEL rules and printer columns) are served faithfully, so that the operator's end-to-end tests can rely on them.
"""

from __future__ import annotations

import pathlib

import yaml
from kubesim_helpers import Client, Kubectl

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"  # a kustomization: the grant, policy and account CRDs
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_project_crds_and_examples_apply_with_kubectl(kubectl: Kubectl, client: Client) -> None:
    assert (CRDS / "kustomization.yaml").exists() and EXAMPLES, "crds/ and examples/*.yaml are part of the project"
    kubectl("apply", "-k", str(CRDS))
    for crd in ("ecraccessgrants.ecraccess.io", "ecrgrantpolicies.ecraccess.io", "ecraccessaccounts.ecraccess.io"):
        kubectl("wait", "--for", "condition=established", f"crd/{crd}", "--timeout=10s")
    grants, policies, accounts = [], [], []
    for example in EXAMPLES:
        for document in yaml.safe_load_all(example.read_text()):
            if not document:
                continue
            if document.get("kind") == "EcrGrantPolicy":
                policies.append(document["metadata"]["name"])
                continue
            if document.get("kind") == "EcrAccessAccount":
                accounts.append(document["metadata"]["name"])
                continue
            assert document.get("kind") == "EcrAccessGrant", example.name
            namespace = document["metadata"].get("namespace", "default")
            if client.get(f"/api/v1/namespaces/{namespace}")[0] == 404:
                kubectl("create", "namespace", namespace)
            grants.append((namespace, document["metadata"]["name"]))
        assert "created" in kubectl("apply", "-f", str(example)).stdout
    listed = client.get("/apis/ecraccess.io/v1alpha1/ecraccessgrants")[1]["items"]
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed) == sorted(grants)
    table = kubectl("get", "ecraccessgrants", "-A").stdout.splitlines()
    assert table[0].split()[:2] == ["NAMESPACE", "NAME"] and len(table) == len(grants) + 1
    assert "FIELD: role <Object>" in kubectl("explain", "ecraccessgrants.spec.role").stdout
    # The policies: cluster-scoped (no namespace in their path), listed with their short name.
    assert policies, "examples/ holds an EcrGrantPolicy (policy-team.yaml)"
    listed = client.get("/apis/ecraccess.io/v1alpha1/ecrgrantpolicies")[1]["items"]
    assert sorted(i["metadata"]["name"] for i in listed) == sorted(policies)
    assert all("namespace" not in i["metadata"] for i in listed)
    assert len(kubectl("get", "egp").stdout.splitlines()) == len(policies) + 1
    assert "FIELD: roles <[]string>" in kubectl("explain", "ecrgrantpolicies.spec.roles").stdout
    # The accounts: cluster-scoped too (examples/central-registry.yaml).
    assert accounts, "examples/ holds an EcrAccessAccount (central-registry.yaml)"
    listed = client.get("/apis/ecraccess.io/v1alpha1/ecraccessaccounts")[1]["items"]
    assert sorted(i["metadata"]["name"] for i in listed) == sorted(accounts)
    assert len(kubectl("get", "eaa").stdout.splitlines()) == len(accounts) + 1
