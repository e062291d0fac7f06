"""The Flux example (deploy/flux): the operator Kustomization comes first and is healthy only when its CRD and
Deployment are, the grants Kustomization depends on it and waits for every grant. Every name and path it refers to
must exist, or Flux would wait for something that never comes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import (
    CRD_PATHS,
    DEPLOY,
    IMAGE,
    KUBE_VERSIONS,
    ROOT,
    VERSION,
    container,
    kustomize,
    kustomize_overlay,
    one,
    validate,
    validate_example,
)

FLUX = DEPLOY / "flux" / "ecr-access-operator.yaml"
CRD_NAMES = {yaml.safe_load(path.read_text())["metadata"]["name"] for path in CRD_PATHS}
# What the grants path may hold, each kind checked against its CRD. Flux generates a kustomization.yaml for a
# directory without one that takes every manifest of the directory tree, subdirectories included.
EXAMPLES = sorted(path.relative_to(ROOT / "examples").as_posix() for path in (ROOT / "examples").rglob("*.yaml"))


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
    # Every CRD the overlay installs is checked: grants, policies and accounts can be applied only once all are served.
    crds = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "CustomResourceDefinition"}
    assert {check["name"] for check in checks if check["kind"] == "CustomResourceDefinition"} == crds
    assert crds == CRD_NAMES
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
    assert {obj["metadata"]["name"] for obj in crds} == CRD_NAMES
    (op,) = yaml.safe_load(patch["patch"])
    assert op["value"]["kustomize.toolkit.fluxcd.io/prune"] == "disabled"


@pytest.mark.parametrize("path", EXAMPLES)
def test_grants_path_holds_grants_policies_and_accounts_their_crds_accept(path: str) -> None:
    grants_dir = Path(_kustomization("ecr-access-grants")["spec"]["path"])
    assert ROOT / grants_dir == ROOT / "examples"
    for doc in yaml.safe_load_all((ROOT / grants_dir / path).read_text()):
        if doc:
            assert doc["kind"] in {"EcrAccessGrant", "EcrGrantPolicy", "EcrAccessAccount"}
            validate_example(doc)


def test_operator_kustomization_overrides_the_image_and_the_overlay_renders_with_it(tmp_path: Path) -> None:
    operator = _kustomization("ecr-access-operator")["spec"]
    (image,) = operator["images"]
    assert set(image) == {"name", "newName", "newTag"} and all(isinstance(value, str) for value in image.values())
    assert image["name"] == IMAGE, "the name the base's Deployment uses (deploy/base/kustomization.yaml)"
    assert image["newTag"] == VERSION, "the example installs this release's image"
    # What kustomize-controller renders: spec.images is an `images:` entry on top of the overlay at spec.path.
    overridden = kustomize_overlay(tmp_path / "flux", operator["path"].removeprefix("./deploy/"), images=[image])
    assert container(overridden)["image"] == f"{image['newName']}:{image['newTag']}"
    for obj in overridden:
        validate(obj, KUBE_VERSIONS[-1])
