"""Every install path applies cleanly to an API server: `kubectl apply -k` of deploy/base and of each overlay, and
`kubectl apply` of the Helm chart's CRD and templates, against kubesim, with kubectl's default (strict) validation.

What an installing user would notice is checked: the apply succeeds, every rendered object is then in the cluster as
rendered, the CRD is Established (grants can be created), and applying again changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecr_sandbox.kubectl import run_kubectl
from ecr_sandbox.seed import ALLOW_ALL_POLICY
from kubesim import server
from tests.deploy.manifests import (
    CENTRAL_REGISTRY_EXAMPLE,
    CRD_PATHS,
    DEPLOY,
    NAME,
    NAMESPACE,
    ROOT,
    helm_crds,
    helm_render,
    kubectl,
    kustomize,
)
from tests.deploy.monitoring import HELM_MONITORING, is_monitoring, monitoring_crds
from tests.deploy.test_helm import NON_DEFAULT

Obj = dict[str, Any]

# Every kustomization a user may apply: the base and whatever overlays exist (a new overlay is covered at once).
KUSTOMIZATIONS = ("base", *sorted(f"overlays/{path.parent.name}"
                                  for path in (DEPLOY / "overlays").glob("*/kustomization.yaml")))


@dataclasses.dataclass
class Cluster:
    """One kubesim and the real kubectl pointed at it."""

    handle: server.ThreadHandle
    kubeconfig: Path
    cache: Path

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return run_kubectl(*args, kubeconfig=self.kubeconfig, cache_dir=self.cache, stdin=stdin, executable=kubectl(),
                           failure=AssertionError).stdout

    def get(self, *source: str, stdin: str | None = None) -> list[Obj]:
        """The live objects named by `-k DIR` or `-f -`, in the order they were rendered."""
        listed = json.loads(self.kubectl("get", *source, "-o", "json", stdin=stdin))
        return list(listed.get("items", [listed]))

    def established(self, crd_name: str) -> None:
        self.kubectl("wait", "--for=condition=Established", f"crd/{crd_name}", "--timeout=10s")

    def prometheus_operator(self, rendered: list[Obj]) -> None:
        """If `rendered` has ServiceMonitors or PrometheusRules, install the stand-ins for their CRDs first (in a
        cluster, the Prometheus Operator's: tests/deploy/monitoring.py)."""
        if any(is_monitoring(obj) for obj in rendered):
            self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(monitoring_crds()))
            for crd in monitoring_crds():
                self.established(crd["metadata"]["name"])

    def refused(self, manifest: Obj) -> str:
        """kubectl's error when the API server refuses `manifest` (the test fails if it is accepted)."""
        done = run_kubectl("apply", "-f", "-", kubeconfig=self.kubeconfig, cache_dir=self.cache,
                           stdin=yaml.safe_dump(manifest), executable=kubectl(), check=False)
        assert done.returncode != 0, f"accepted: {manifest}"
        return done.stderr


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    handle = server.run_in_thread(port=0)
    try:
        config = tmp_path / "kubeconfig"
        server.write_kubeconfig(config, handle.url)
        yield Cluster(handle, config, tmp_path / "cache")
    finally:
        handle.stop()


def _identity(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def _missing(rendered: Any, live: Any, path: str = "") -> list[str]:
    """Where the live object lacks or differs from what was applied (the server may add fields, never drop them)."""
    if isinstance(rendered, dict) and isinstance(live, dict):
        return [where for key, value in rendered.items()
                for where in _missing(value, live.get(key), f"{path}.{key}")]
    if isinstance(rendered, list) and isinstance(live, list) and len(rendered) == len(live):
        return [where for index, (a, b) in enumerate(zip(rendered, live, strict=True))
                for where in _missing(a, b, f"{path}[{index}]")]
    return [] if rendered == live else [path]


def _verbs(output: str) -> dict[str, str]:
    """`kubectl apply` output lines ("deployment.apps/x created") as {object: verb}."""
    verbs = {}
    for line in output.splitlines():
        name, verb = line.rsplit(" ", 1)
        verbs[name] = verb
    return verbs


def _check_installed(rendered: list[Obj], live: list[Obj]) -> None:
    assert sorted(map(_identity, live)) == sorted(map(_identity, rendered))
    by_identity = {_identity(obj): obj for obj in live}
    for obj in rendered:
        differences = _missing(obj, by_identity[_identity(obj)])
        assert differences == [], f"{obj['kind']}/{obj['metadata']['name']} differs from the manifest at {differences}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomization_applies_cleanly_and_reapplies_unchanged(cluster: Cluster, directory: str) -> None:
    path = str(DEPLOY / directory)
    rendered = kustomize(directory)
    cluster.prometheus_operator(rendered)  # overlays/monitoring
    created = _verbs(cluster.kubectl("apply", "-k", path))
    assert len(created) == len(rendered) and set(created.values()) == {"created"}, created
    crds = [obj for obj in rendered if obj["kind"] == "CustomResourceDefinition"]
    assert len(crds) == len(CRD_PATHS)  # grants, policies and accounts
    for crd in crds:
        cluster.established(crd["metadata"]["name"])
    live = cluster.get("-k", path)
    _check_installed(rendered, live)

    again = _verbs(cluster.kubectl("apply", "-k", path))
    assert len(again) == len(rendered) and set(again.values()) == {"unchanged"}, again
    versions = {_identity(obj): obj["metadata"]["resourceVersion"] for obj in live}
    assert {_identity(obj): obj["metadata"]["resourceVersion"] for obj in cluster.get("-k", path)} == versions


def test_switching_from_pod_identity_to_irsa_only_annotates_the_service_account(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-k", str(DEPLOY / "overlays/pod-identity"))
    switched = _verbs(cluster.kubectl("apply", "-k", str(DEPLOY / "overlays/irsa")))
    changed = {name for name, verb in switched.items() if verb != "unchanged"}
    assert changed == {f"serviceaccount/{NAME}"}, switched
    _check_installed(kustomize("overlays/irsa"), cluster.get("-k", str(DEPLOY / "overlays/irsa")))


def test_upgrading_the_image_tag_changes_only_the_deployment(cluster: Cluster, tmp_path: Path) -> None:
    cluster.kubectl("apply", "-k", str(DEPLOY / "base"))
    upgrade = tmp_path / "upgrade"
    upgrade.mkdir()
    (upgrade / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY / "base", upgrade)],  # kustomize refuses absolute paths
        "images": [{"name": "ecr-access-operator", "newTag": "9.9.9"}],
    }))
    upgraded = _verbs(cluster.kubectl("apply", "-k", str(upgrade)))
    assert {name for name, verb in upgraded.items() if verb != "unchanged"} == {f"deployment.apps/{NAME}"}, upgraded
    deployment = cluster.get("deployment", NAME, "-n", NAMESPACE)[0]
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert len(images) == 1 and images[0].endswith(":9.9.9")
    assert deployment["metadata"]["generation"] == 2


@pytest.mark.parametrize("values", [None, NON_DEFAULT, HELM_MONITORING], ids=["defaults", "non-default", "monitoring"])
def test_helm_chart_applies_cleanly_and_reapplies_unchanged(cluster: Cluster, values: dict[str, Any] | None) -> None:
    # What `helm install --create-namespace` does: the crds/ directory first, then the namespace, then the templates.
    crds = helm_crds()
    crd_yaml = yaml.safe_dump_all(crds)
    assert set(_verbs(cluster.kubectl("apply", "-f", "-", stdin=crd_yaml)).values()) == {"created"}
    for crd in crds:
        cluster.established(crd["metadata"]["name"])
    cluster.kubectl("create", "namespace", NAMESPACE)
    rendered = helm_render(values)
    cluster.prometheus_operator(rendered)
    manifest = yaml.safe_dump_all(rendered)
    created = _verbs(cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=manifest))
    assert len(created) == len(rendered) and set(created.values()) == {"created"}, created
    live = cluster.get("-n", NAMESPACE, "-f", "-", stdin=manifest)
    _check_installed(rendered, live)

    again = _verbs(cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=manifest))
    assert len(again) == len(rendered) and set(again.values()) == {"unchanged"}, again
    versions = [obj["metadata"]["resourceVersion"] for obj in live]
    assert [obj["metadata"]["resourceVersion"] for obj in cluster.get("-n", NAMESPACE, "-f", "-", stdin=manifest)] \
        == versions


def _policy(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrGrantPolicy", "metadata": {"name": name}, "spec": spec}


def test_the_policy_crd_serves_the_example_and_the_sandbox_policy_and_refuses_bad_ones(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-k", str(DEPLOY / "base"))
    cluster.established("ecrgrantpolicies.ecraccess.io")
    example = ROOT / "examples" / "policy-team.yaml"
    assert _verbs(cluster.kubectl("apply", "-f", str(example))) == {"ecrgrantpolicy.ecraccess.io/team-ml": "created"}
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(ALLOW_ALL_POLICY))
    (live,) = cluster.get("-f", str(example))
    assert "namespace" not in live["metadata"], "cluster-scoped"
    assert live["spec"] == yaml.safe_load(example.read_text())["spec"]
    allow_all = cluster.get("egp", "sandbox-allow-all")[0]
    assert allow_all["spec"]["managedPolicies"] == ["ReadOnly", "PullOnly", "None"]

    # The status the operator writes is accepted through the status subresource (and leaves the spec alone).
    status = {"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Valid", "message": "The policy is valid.",
         "observedGeneration": 1, "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    cluster.kubectl("patch", "egp", "team-ml", "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": status}))
    assert cluster.get("egp", "team-ml")[0]["status"] == status

    # What a cluster admin sees: the short name, the category shared with grants, the columns (Ready is empty
    # until the operator has written a status).
    table = [line.split() for line in cluster.kubectl("get", "egp").splitlines()]
    assert table[0] == ["NAME", "READY", "NAMESPACES", "AGE"]
    assert [row[:-1] for row in table[1:]] == [["sandbox-allow-all", "{}"],
                                               ["team-ml", "True", '{"matchLabels":{"team":"ml"}}']]
    assert "ecrgrantpolicy.ecraccess.io/team-ml" in cluster.kubectl("get", "ecraccess", "-o", "name")
    explained = cluster.kubectl("explain", "ecrgrantpolicy.spec.roles")
    assert "FIELD: roles <[]string>" in explained
    assert "Globs over the role ARN a grant resolves to" in explained
    assert "namespaceSelector" in cluster.kubectl("explain", "egp.spec")

    # The schema and the CEL rules, as the API server applies them.
    selector = {"matchLabels": {"team": "ml"}}
    assert "values must not be empty when operator is In or NotIn" in cluster.refused(_policy(
        "in-without-values", namespaceSelector={"matchExpressions": [{"key": "team", "operator": "In"}]},
        roles=["*"], repositories=["*"]))
    assert "values must be empty when operator is Exists or DoesNotExist" in cluster.refused(_policy(
        "exists-with-values", namespaceSelector={"matchExpressions": [{"key": "t", "operator": "Exists",
                                                                        "values": ["x"]}]},
        roles=["*"], repositories=["*"]))
    assert "spec.roles[0]" in cluster.refused(_policy("space", namespaceSelector=selector,
                                                      roles=["arn:aws:iam::1:role/a b"], repositories=["*"]))
    assert "spec.roles" in cluster.refused(_policy("no-roles", namespaceSelector=selector, roles=[],
                                                   repositories=["*"]))
    assert "spec.managedPolicies[0]" in cluster.refused(_policy(
        "full-access", namespaceSelector=selector, roles=["*"], repositories=["*"], managedPolicies=["FullAccess"]))
    assert "start it with arn:" in cluster.refused(_policy("no-arn", namespaceSelector=selector,
                                                           roles=["cld_*-cluster_node_role"], repositories=["*"]))
    assert [obj["metadata"]["name"] for obj in cluster.get("egp")] == ["sandbox-allow-all", "team-ml"]


def _account(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": name},
            "spec": spec}


def test_the_account_crd_serves_the_example_and_refuses_bad_ones(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-k", str(DEPLOY / "base"))
    cluster.established("ecraccessaccounts.ecraccess.io")
    example = CENTRAL_REGISTRY_EXAMPLE
    documents = [doc for doc in yaml.safe_load_all(example.read_text()) if doc]
    assert _verbs(cluster.kubectl("apply", "-f", str(example))) == {
        "ecraccessaccount.ecraccess.io/central-registry": "created",
        "ecraccessgrant.ecraccess.io/base-images": "created",
    }
    live = cluster.get("eaa", "central-registry")[0]
    assert "namespace" not in live["metadata"], "cluster-scoped"
    assert live["spec"] == next(doc for doc in documents if doc["kind"] == "EcrAccessAccount")["spec"]

    # The status the operator writes is accepted through the status subresource (and leaves the spec alone).
    identity = "arn:aws:sts::210987654321:assumed-role/ecr-access-operator/ecr-access-0a1b2c3d"
    status = {"observedGeneration": 1, "identityArn": identity, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Assumed",
         "message": f"The operator acts in account 210987654321 as {identity}.", "observedGeneration": 1,
         "lastTransitionTime": "2026-01-10T09:00:02Z"}]}
    cluster.kubectl("patch", "eaa", "central-registry", "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": status}))
    patched = cluster.get("eaa", "central-registry")[0]
    assert (patched["status"], patched["spec"]) == (status, live["spec"])
    # A merge patch with identityArn null removes it, as the operator's patch does when the account stops working.
    cluster.kubectl("patch", "eaa", "central-registry", "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": {"identityArn": None}}))
    assert "identityArn" not in cluster.get("eaa", "central-registry")[0]["status"]

    # What a cluster admin sees: the short name, the category shared with grants and policies, the columns.
    table = [line.split() for line in cluster.kubectl("get", "eaa").splitlines()]
    assert table[0] == ["NAME", "ACCOUNT", "READY", "REASON", "AGE"]
    assert [row[:-1] for row in table[1:]] == [["central-registry", "210987654321", "True", "Assumed"]]
    assert "ecraccessaccount.ecraccess.io/central-registry" in cluster.kubectl("get", "ecraccess", "-A", "-o", "name")
    explained = cluster.kubectl("explain", "eaa.spec.assumeRole.roleArn")
    assert "FIELD: roleArn <string>" in explained and "CloudTrail" in explained

    # The schema and the CEL rule, as the API server applies them.
    role = "arn:aws:iam::210987654321:role/ecr-access-operator"
    assert "assumeRole.roleArn must be a role in spec.accountId" in cluster.refused(_account(
        "elsewhere", accountId="210987654321", assumeRole={"roleArn": "arn:aws:iam::123456789012:role/admin"}))
    assert "spec.accountId" in cluster.refused(_account("short", accountId="2109876543", assumeRole={"roleArn": role}))
    assert "spec.assumeRole.externalId" in cluster.refused(_account(
        "one-char", accountId="210987654321", assumeRole={"roleArn": role, "externalId": "x"}))
    assert "spec.assumeRole.roleArn" in cluster.refused(_account(
        "user", accountId="210987654321", assumeRole={"roleArn": "arn:aws:iam::210987654321:user/ops"}))
    assert "roleArn" in cluster.refused(_account("no-role", accountId="210987654321", assumeRole={}))
    assert [obj["metadata"]["name"] for obj in cluster.get("eaa")] == ["central-registry"]
    # accountId is immutable: an older object edited to another account would outrank the newer one there.
    moved = _account("central-registry", accountId="333333333333",
                     assumeRole={"roleArn": "arn:aws:iam::333333333333:role/ecr-access-operator"})
    assert "accountId is immutable" in cluster.refused(moved)
    assert cluster.get("eaa", "central-registry")[0]["spec"]["accountId"] == "210987654321"
