"""The kustomize install (deploy/base and its overlays): it renders, it validates, and it runs the operator the way
the operator expects to be run, with no more cluster permissions than it uses."""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecr_access import cli, config, handlers, tenancy
from ecr_access.model import Defaults
from ecr_access.spec import parse_spec
from tests.deploy.manifests import (
    CRD_PATHS,
    DEPLOY,
    KUBE_VERSIONS,
    KUSTOMIZATIONS,
    NAMESPACE,
    ROOT,
    container,
    deployment,
    kustomize,
    one,
    rbac_rules,
    sync_wave,
    validate,
    validate_grant,
    validate_policy,
)

CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
POLICIES = "ecrgrantpolicies"  # the EcrGrantPolicy CRD's plural (crds/ecrgrantpolicies.yaml)
ACCOUNTS = "ecraccessaccounts"  # the EcrAccessAccount CRD's plural (crds/ecraccessaccounts.yaml)
CRD_NAMES = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in CRD_PATHS]
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}

# The operator's ClusterRole, rule by rule, with the call that needs each (also in deploy/README.md).
OPERATOR_RULES = {
    # kopf: the resource observer lists/watches CRDs to notice the CRD being (re)installed.
    ("apiextensions.k8s.io", "customresourcedefinitions", "list", ()),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch", ()),
    # kopf: POST /api/v1/namespaces/{ns}/events (warnings on grants).
    ("", "events", "create", ()),
    # kopf for the operator: list+watch grants (indexes, handlers), patch (finalizer, progress annotations).
    (handlers.GROUP, handlers.PLURAL, "list", ()),
    (handlers.GROUP, handlers.PLURAL, "watch", ()),
    (handlers.GROUP, handlers.PLURAL, "patch", ()),
    # kube.read_spec: GET .../ecraccessgrants/{name} (a stalled delete notices an edit of its grant).
    (handlers.GROUP, handlers.PLURAL, "get", ()),
    # kopf for the operator: PATCH .../ecraccessgrants/{name}/status.
    (handlers.GROUP, f"{handlers.PLURAL}/status", "patch", ()),
    # kube.cluster_id: GET /api/v1/namespaces/kube-system (the default cluster id).
    ("", "namespaces", "get", ("kube-system",)),
    # Tenancy (DESIGN §5). kopf for the operator: list+watch every EcrGrantPolicy (watches.index_policies, the
    # index every grant is judged against, and watches.on_policy_event, which re-judges the grants a change affects).
    (handlers.GROUP, POLICIES, "list", ()),
    (handlers.GROUP, POLICIES, "watch", ()),
    # GET .../ecrgrantpolicies/{name}: no call needs it today; it shows nothing list does not (read only).
    (handlers.GROUP, POLICIES, "get", ()),
    # kube.patch_policy_status: PATCH .../ecrgrantpolicies/{name}/status (Ready, or False/InvalidPolicy).
    (handlers.GROUP, f"{POLICIES}/status", "patch", ()),
    # kopf for the operator: list+watch namespaces (watches.index_namespaces: the labels policies select on, and
    # watches.on_namespace_event, which re-judges a relabelled namespace's grants).
    ("", "namespaces", "list", ()),
    ("", "namespaces", "watch", ()),
    # Accounts (DESIGN §6). kopf for the operator: list+watch every EcrAccessAccount (watches.index_accounts, which
    # every call into another account reads, and watches.on_account on create/update/resume), patch (kopf's
    # progress annotations and last-handled configuration on the object).
    (handlers.GROUP, ACCOUNTS, "list", ()),
    (handlers.GROUP, ACCOUNTS, "watch", ()),
    (handlers.GROUP, ACCOUNTS, "patch", ()),
    # GET .../ecraccessaccounts/{name}: no call needs it today; it shows nothing list does not.
    (handlers.GROUP, ACCOUNTS, "get", ()),
    # kopf and kube.patch_account_status: PATCH .../ecraccessaccounts/{name}/status (Ready, identityArn).
    (handlers.GROUP, f"{ACCOUNTS}/status", "patch", ()),
}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_every_kustomization_renders_the_whole_install(directory: str) -> None:
    objects = kustomize(directory)
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == sorted(["Namespace", *["CustomResourceDefinition"] * len(CRD_NAMES), "ServiceAccount",
                            *["ClusterRole"] * 4, "ClusterRoleBinding", "Deployment"])
    assert sorted(obj["metadata"]["name"] for obj in objects if obj["kind"] == "CustomResourceDefinition") == sorted(
        CRD_NAMES)
    # The install creates no policy: until a cluster admin writes one, grants may grant nothing (Enforce). Nor any
    # account: the operator acts in its own account only until a cluster admin adds one.
    assert not any(obj["kind"] in ("EcrGrantPolicy", "EcrAccessAccount") for obj in objects)
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    assert one(objects, "Namespace")["metadata"]["name"] == NAMESPACE


def test_crds_kustomization_lists_every_crd_the_tests_know() -> None:
    # crds/ is what the sandbox, deploy/base and `kubectl apply -k crds` install; CRD_PATHS is what the tests check.
    listed = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())["resources"]
    assert listed == [path.name for path in CRD_PATHS] == ["ecraccessgrants.yaml", "ecrgrantpolicies.yaml",
                                                           "ecraccessaccounts.yaml"]
    assert sorted(path.name for path in (ROOT / "crds").glob("*.yaml") if path.name != "kustomization.yaml") == sorted(
        listed)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_every_rendered_object_validates_against_kubernetes_schemas(directory: str, version: str) -> None:
    for obj in kustomize(directory):
        validate(obj, version)


def test_validation_catches_a_misspelt_field() -> None:
    # The schemas are strict: a typo in a security setting must fail, not be silently dropped by the API server.
    objects = kustomize("base")
    container(objects)["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(pytest.fail.Exception, match="readOnlyRootFileSystem"):
        validate(deployment(objects), KUBE_VERSIONS[0])


@pytest.mark.parametrize("name", CRD_NAMES)
def test_crd_validates_as_apiextensions_v1_and_a_broken_one_does_not(name: str) -> None:
    crd = one(kustomize("base"), "CustomResourceDefinition", name)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    validate(crd, KUBE_VERSIONS[-1])
    crd["spec"]["versions"][0]["served"] = "yes"
    with pytest.raises(pytest.fail.Exception, match="served"):
        validate(crd, KUBE_VERSIONS[-1])


@pytest.mark.parametrize("path", CRD_PATHS, ids=lambda path: path.name)
def test_the_installed_crds_are_the_repositorys_crds(path: Path) -> None:
    source = yaml.safe_load(path.read_text())
    installed = one(kustomize("base"), "CustomResourceDefinition", source["metadata"]["name"])
    assert installed["spec"] == source["spec"]


def test_operator_cluster_role_grants_exactly_what_kopf_and_the_operator_call() -> None:
    role = one(kustomize("base"), "ClusterRole", "ecr-access-operator")
    assert rbac_rules(role) == OPERATOR_RULES


def test_operator_role_is_bound_to_the_deployments_service_account() -> None:
    objects = kustomize("base")
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "ecr-access-operator"}
    account = one(objects, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]
    assert deployment(objects)["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_viewer_role_reads_grants_policies_and_accounts_and_is_aggregated_to_view() -> None:
    viewer = one(kustomize("base"), "ClusterRole", "ecr-access-operator-grants-viewer")
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert rbac_rules(viewer) == {(handlers.GROUP, resource, verb, ())
                                  for resource in (handlers.PLURAL, POLICIES, ACCOUNTS)
                                  for verb in ("get", "list", "watch")}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_no_shipped_role_lets_anyone_write_policies(directory: str) -> None:
    # Editing policies is a cluster admin's matter: whoever may write one decides what every namespace it selects
    # may grant with the operator's AWS permissions. Not the aggregated roles, not the editor, not the operator
    # (which writes only their status).
    for role in (obj for obj in kustomize(directory) if obj["kind"] == "ClusterRole"):
        writes = {(resource, verb) for group, resource, verb, _ in rbac_rules(role)
                  if group in (handlers.GROUP, "*") and resource.split("/")[0] in (POLICIES, "*")
                  and verb in WRITE_VERBS}
        allowed = {(f"{POLICIES}/status", "patch")} if role["metadata"]["name"] == "ecr-access-operator" else set()
        assert writes == allowed, role["metadata"]["name"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_no_shipped_role_lets_anyone_but_the_operator_write_accounts(directory: str) -> None:
    # An EcrAccessAccount points the operator at a role in another AWS account, for every namespace whose policies
    # name that account: only cluster admins write them. The operator patches the object (kopf's annotations, never
    # the spec) and its status; it never creates or deletes one.
    for role in (obj for obj in kustomize(directory) if obj["kind"] == "ClusterRole"):
        writes = {(resource, verb) for group, resource, verb, _ in rbac_rules(role)
                  if group in (handlers.GROUP, "*") and resource.split("/")[0] in (ACCOUNTS, "*")
                  and verb in WRITE_VERBS}
        operator = role["metadata"]["name"] == "ecr-access-operator"
        assert writes == ({(ACCOUNTS, "patch"), (f"{ACCOUNTS}/status", "patch")} if operator else set()), (
            role["metadata"]["name"])


def test_editor_role_can_manage_grants_but_is_not_aggregated_to_edit_or_admin() -> None:
    editor = one(kustomize("base"), "ClusterRole", "ecr-access-operator-grants-editor")
    labels = editor["metadata"].get("labels", {})
    assert not any(key.startswith("rbac.authorization.k8s.io/aggregate-to") for key in labels)
    rules = rbac_rules(editor)
    assert {(handlers.GROUP, handlers.PLURAL, verb, ()) for verb in ("create", "update", "patch", "delete")} <= rules
    assert not any(resource.endswith("/status") for _, resource, _, _ in rules), "only the operator writes status"
    assert {resource for _, resource, _, _ in rules} == {handlers.PLURAL}, "grants only, never policies or accounts"


def test_planner_role_reads_what_plan_lists_and_writes_nothing() -> None:
    # kube.list_objects (grants, policies, accounts, namespaces) and kube.cluster_id (GET kube-system).
    planner = one(kustomize("base"), "ClusterRole", "ecr-access-operator-planner")
    rules = rbac_rules(planner)
    needed = {(handlers.GROUP, plural, "list", ()) for plural in (handlers.PLURAL, POLICIES, ACCOUNTS)}
    assert needed | {("", "namespaces", "list", ()), ("", "namespaces", "get", ())} <= rules
    assert {verb for _, _, verb, _ in rules} == {"get", "list"}, "read only"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_no_role_uses_wildcards(directory: str) -> None:
    for obj in kustomize(directory):
        if obj["kind"] == "ClusterRole":
            for rule in rbac_rules(obj):
                assert "*" not in rule, (obj["metadata"]["name"], rule)


def test_one_replica_that_is_stopped_before_its_successor_starts() -> None:
    spec = deployment(kustomize("base"))["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    objects = kustomize("base")
    pod = deployment(objects)["spec"]["template"]["spec"]
    main = container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert one(objects, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_read_only_root_still_has_a_writable_tmp() -> None:
    objects = kustomize("base")
    volumes = {volume["name"]: volume for volume in deployment(objects)["spec"]["template"]["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container(objects)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not any(mount.get("readOnly") for mount in container(objects)["volumeMounts"])


def test_resources_have_requests_and_limits() -> None:
    resources = container(kustomize("base"))["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) >= {"memory"}


def _url(main: dict[str, Any], flag: str) -> urllib.parse.SplitResult:
    (arg,) = [str(arg) for arg in main["args"] if arg.startswith(f"{flag}=")]
    return urllib.parse.urlsplit(arg.split("=", 1)[1])


def _ports(main: dict[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in main["ports"]}


def test_liveness_probe_asks_kopfs_liveness_endpoint() -> None:
    main = container(kustomize("base"))
    url = _url(main, "--liveness")
    probe = main["livenessProbe"]["httpGet"]
    port = _ports(main).get(probe["port"], probe["port"])
    assert (probe["path"], port) == (url.path, url.port)
    # The kubelet probes the pod IP: an endpoint bound to localhost would fail every probe and restart the pod.
    assert url.hostname == "0.0.0.0"


def test_readiness_probe_asks_the_operators_readiness_endpoint() -> None:
    main = container(kustomize("base"))
    url = _url(main, "--readiness")
    probe = main["readinessProbe"]
    assert (probe["httpGet"]["path"], _ports(main)[probe["httpGet"]["port"]]) == (url.path, url.port) == (
        "/readyz", 8081)
    assert url.hostname == "0.0.0.0"  # the kubelet probes the pod IP
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (10, 3)
    # Its own port: kopf's liveness server answers only its own path, and the metrics server serves only metrics.
    assert len(set(_ports(main).values())) == len(main["ports"])
    assert _url(main, "--liveness").port != url.port


def test_container_args_and_env_start_the_operator_with_the_intended_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployment's args and env, given to the real CLI: every setting is one the operator reads, and parses."""
    main = container(kustomize("base"))
    env = {item["name"]: item["value"] for item in main["env"]}
    unknown = {name for name in env if name.startswith(config.ENV_PREFIX)} - {
        config.env_name(field.name) for field in dataclasses.fields(config.Config)}
    assert not unknown, f"settings the operator does not read (typos?): {unknown}"
    for name in list(os.environ):
        if name.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started: dict[str, Any] = {}
    monkeypatch.setattr(cli, "run_operator", lambda cfg, liveness=None, readiness=None: started.update(
        cfg=cfg, liveness=liveness, readiness=readiness))
    assert "command" not in main, "a command would replace the image's entry point `ecr-access-operator run`"
    cli.main(["run", *main["args"]])
    cfg = started["cfg"]
    assert started["liveness"] == "http://0.0.0.0:8080/healthz"
    assert started["readiness"] == "http://0.0.0.0:8081/readyz"
    assert cfg.metrics_port == int(env["ECR_ACCESS_METRICS_PORT"]) == _ports(main)["metrics"]
    assert cfg.resync_interval == float(env["ECR_ACCESS_RESYNC_INTERVAL"])
    assert cfg.log_format == env["ECR_ACCESS_LOG_FORMAT"] == "full"
    assert cfg.cluster_id is None  # empty: the default, the kube-system UID
    assert cfg.namespaces == ()  # cluster-wide, which the ClusterRole is made for
    assert env["AWS_REGION"]
    assert main["env"][0]["name"] == "AWS_REGION", "deploy/README.md's example patch sets env/0"


@pytest.mark.parametrize("name", CRD_NAMES)
def test_argocd_waves_put_the_crds_first_then_rbac_and_policies_then_the_operator_then_grants(name: str) -> None:
    objects = kustomize("overlays/argocd")
    crd = one(objects, "CustomResourceDefinition", name)
    grant = yaml.safe_load((DEPLOY / "argocd" / "example-grant.yaml").read_text())
    policy = yaml.safe_load((DEPLOY / "argocd" / "example-policy.yaml").read_text())
    rbac_waves = {sync_wave(obj) for obj in objects if obj["kind"] in {"Namespace", "ServiceAccount", "ClusterRole",
                                                                        "ClusterRoleBinding"}}
    assert len(rbac_waves) == 1
    rbac_wave = rbac_waves.pop()
    assert sync_wave(crd) < rbac_wave < sync_wave(deployment(objects)) < sync_wave(grant)
    # The policy exists before the operator starts, so that its first look at the grant already permits it.
    assert sync_wave(crd) < sync_wave(policy) == rbac_wave
    options = crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].split(",")
    assert {"Prune=false", "Delete=false"} <= set(options), "deleting a CRD would delete every object of its kind"
    for obj in (grant, policy):
        assert "SkipDryRunOnMissingResource=true" in obj["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
    validate_grant(grant)
    validate_policy(policy)


def test_argocd_example_policy_permits_the_example_grant() -> None:
    grant = yaml.safe_load((DEPLOY / "argocd" / "example-grant.yaml").read_text())
    policy = yaml.safe_load((DEPLOY / "argocd" / "example-policy.yaml").read_text())
    spec = parse_spec(grant["spec"], Defaults("aws", "us-west-2", "123456789012"))
    role = "arn:aws:iam::123456789012:role/cld_abc123-cluster_node_role"
    judged = tenancy.judge([tenancy.parse_policy(policy["metadata"]["name"], policy["spec"])],
                           grant["metadata"]["namespace"], {}, role, spec)
    assert judged.permitted and judged.repositories == set(spec.repositories)


def test_argocd_overlay_changes_nothing_but_annotations() -> None:
    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"].pop("annotations", None)
        return obj

    assert [strip(obj) for obj in kustomize("overlays/argocd")] == [strip(obj) for obj in kustomize("base")]
