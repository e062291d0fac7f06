"""The Flux example (deploy/flux): the operator Kustomization comes first and is healthy only when its CRD and
Deployment are, the grants Kustomization depends on it and waits for every grant. Every name and path it refers to
must exist, or Flux would wait for something that never comes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, ROOT, kustomize, one, validate_example

FLUX = DEPLOY / "flux" / "ecr-access-operator.yaml"


def _documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(FLUX.read_text()) if doc]


def _kustomization(name: str) -> dict[str, Any]:
    return one(_documents(), "Kustomization", name)


def test_every_flux_object_uses_the_v1_apis() -> None:
    versions = {doc["kind"]: doc["apiVersion"] for doc in _documents()}
    assert versions == {"GitRepository": "source.toolkit.fluxcd.io/v1",
                        "Kustomization": "kustomize.toolkit.fluxcd.io/v1"}
    for doc in _documents():
        if doc["kind"] == "Kustomization":
            spec = doc["spec"]
            assert {"interval", "sourceRef", "path", "prune"} <= set(spec), doc["metadata"]["name"]
            assert one(_documents(), spec["sourceRef"]["kind"], spec["sourceRef"]["name"])


def test_grants_depend_on_the_operator_and_wait_for_every_grant() -> None:
    grants = _kustomization("ecr-access-grants")
    assert grants["spec"]["dependsOn"] == [{"name": "ecr-access-operator"}]
    assert grants["spec"]["wait"] is True
    _kustomization("ecr-access-operator")


def test_operator_health_checks_name_objects_the_overlay_installs() -> None:
    operator = _kustomization("ecr-access-operator")["spec"]
    objects = kustomize(operator["path"].removeprefix("./deploy/"))
    checks = operator["healthChecks"]
    assert {check["kind"] for check in checks} == {"CustomResourceDefinition", "Deployment"}
    # Every CRD the overlay installs is checked: grants and policies can be applied only once both are served.
    crds = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "CustomResourceDefinition"}
    assert {check["name"] for check in checks if check["kind"] == "CustomResourceDefinition"} == crds
    assert crds == {"ecraccessgrants.ecraccess.io", "ecrgrantpolicies.ecraccess.io"}
    for check in checks:
        obj = one(objects, check["kind"], check["name"])
        assert obj["apiVersion"] == check["apiVersion"]
        assert obj["metadata"].get("namespace") == check.get("namespace")


def test_no_crd_is_ever_pruned() -> None:
    operator = _kustomization("ecr-access-operator")["spec"]
    objects = kustomize(operator["path"].removeprefix("./deploy/"))
    crds = [obj for obj in objects if obj["kind"] == "CustomResourceDefinition"]
    (patch,) = [p for p in operator["patches"] if p["target"]["kind"] == "CustomResourceDefinition"]
    # A target by kind alone selects every CRD of the overlay (kustomize selectors: each field narrows).
    assert set(patch["target"]) == {"kind"}
    assert {obj["metadata"]["name"] for obj in crds} == {"ecraccessgrants.ecraccess.io",
                                                         "ecrgrantpolicies.ecraccess.io"}
    (op,) = yaml.safe_load(patch["patch"])
    assert op["value"]["kustomize.toolkit.fluxcd.io/prune"] == "disabled"


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_grants_path_holds_grants_and_policies_their_crds_accept(path: str) -> None:
    grants_dir = Path(_kustomization("ecr-access-grants")["spec"]["path"])
    assert ROOT / grants_dir == ROOT / "examples"
    for doc in yaml.safe_load_all((ROOT / grants_dir / path).read_text()):
        if doc:
            assert doc["kind"] in {"EcrAccessGrant", "EcrGrantPolicy"}
            validate_example(doc)
