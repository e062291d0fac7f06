"""Shared helpers for the deploy tests: render the kustomize tree and the Helm chart, validate objects, look them up.

Rendering goes through the real tools a user runs: `kubectl kustomize` (kustomize built into kubectl) and Helm's Go
SDK through helm-python-sdk. Validation uses the Kubernetes OpenAPI schemas bundled in kubernetes-validate, in
strict mode (unknown fields are errors, as `kubectl apply --validate=strict` makes them).
"""

from __future__ import annotations

import functools
import os
import shutil
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from ecr_sandbox.kubectl import run_kubectl
from tests.unit.test_crd import cel_violations, prune, to_json_schema
from tests.unit.test_policy_crd import admission_errors

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "ecr-access-operator"
CRD_PATH = ROOT / "crds" / "ecraccessgrants.yaml"
POLICY_CRD_PATH = ROOT / "crds" / "ecrgrantpolicies.yaml"
ACCOUNT_CRD_PATH = ROOT / "crds" / "ecraccessaccounts.yaml"
# Every CRD, in the order crds/kustomization.yaml lists them (test_kustomize checks the order).
CRD_PATHS = (CRD_PATH, POLICY_CRD_PATH, ACCOUNT_CRD_PATH)
KUSTOMIZATIONS = ("base", "overlays/irsa", "overlays/pod-identity", "overlays/argocd")
# The central-registry example (an EcrAccessAccount and a grant that uses it), applied by the sandbox and `make demo`.
CENTRAL_REGISTRY_EXAMPLE = ROOT / "examples" / "central-registry.yaml"

NAMESPACE = "ecr-access-system"
NAME = "ecr-access-operator"
IMAGE = "ecr-access-operator"  # the image name deploy/base/deployment.yaml uses, which `images:` entries match
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]  # the operator's release

# Kubernetes versions to validate against: the oldest EKS still supports (standard support) and the newest schemas.
KUBE_VERSIONS = ("1.30", "1.37")

Obj = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is required (CI machines have it): the deploy tests render with `kubectl kustomize`")
    return path


@functools.cache
def _kustomize_text(directory: str) -> str:
    result = run_kubectl("kustomize", str(DEPLOY / directory), executable=kubectl(), check=False)
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize deploy/{directory} failed:\n{result.stderr}")
    return result.stdout


def kustomize(directory: str) -> list[Obj]:
    """The objects `kubectl kustomize deploy/<directory>` renders (fresh copies: tests may mutate them)."""
    return [doc for doc in yaml.safe_load_all(_kustomize_text(directory)) if doc]


def kustomize_overlay(directory: Path, base: str, **fields: Any) -> list[Obj]:
    """An overlay of deploy/<base> written to `directory` (a temporary one) with more kustomization fields, e.g.
    `images=[...]`, as a user's own overlay (or Argo CD's and Flux's settings on top of one) would be; rendered."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY / base, directory)],  # kustomize refuses absolute paths
        **fields,
    }))
    result = run_kubectl("kustomize", str(directory), executable=kubectl(), check=False)
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize of an overlay of deploy/{base} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def helm_render(values: Mapping[str, Any] | None = None, *, name: str = NAME, namespace: str = NAMESPACE) -> list[Obj]:
    """The objects `helm template` would render (templates only; the CRD is in crds/, see `helm_crds`)."""
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(dict(values or {}), name=name, namespace=namespace)
    objects: list[Obj] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".txt"):
            continue  # NOTES.txt
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def helm_crds() -> list[Obj]:
    with helm_python.Chart.load(CHART) as chart:
        return [yaml.safe_load(item["data"]) for item in chart.crds]


def validate(obj: Obj, version: str) -> None:
    """Validate one object against the Kubernetes schemas of `version`; fail with the object and the field."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {version} at {where}: "
                    f"{error.message}")


def one(objects: Iterable[Obj], kind: str, name: str | None = None) -> Obj:
    found = [obj for obj in objects if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployment(objects: Iterable[Obj]) -> Obj:
    return one(objects, "Deployment")


def container(objects: Iterable[Obj]) -> Obj:
    containers = deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def rbac_rules(role: Obj) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """A ClusterRole's rules flattened to (apiGroup, resource, verb, resourceNames): order-free and comparable."""
    flat = set()
    for rule in role.get("rules", []):
        names = tuple(sorted(rule.get("resourceNames", [])))
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    flat.add((group, resource, verb, names))
    return flat


def sync_wave(obj: Obj) -> int:
    return int((obj["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))


@functools.cache
def _crd_schema(path: Path = CRD_PATH) -> Obj:
    return dict(yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def validate_grant(obj: Obj) -> None:
    """Validate a grant against the CRD's OpenAPI schema (jsonschema standing in for the API server's validator;
    tests/unit/test_crd.py covers the CEL rules). metadata is the API server's, not the schema's, to check."""
    assert obj["apiVersion"] == "ecraccess.io/v1alpha1" and obj["kind"] == "EcrAccessGrant"
    body = {key: value for key, value in obj.items() if key != "metadata"}
    jsonschema.validate(body, _crd_schema())


def validate_policy(obj: Obj) -> None:
    """Validate an EcrGrantPolicy against its CRD: the OpenAPI schema, then the CEL rules (the helpers of
    tests/unit/test_policy_crd.py, which also tests them)."""
    assert obj["apiVersion"] == "ecraccess.io/v1alpha1" and obj["kind"] == "EcrGrantPolicy"
    assert "namespace" not in obj["metadata"], "EcrGrantPolicy is cluster-scoped"
    body = {key: value for key, value in obj.items() if key != "metadata"}
    jsonschema.validate(body, _crd_schema(POLICY_CRD_PATH))
    assert admission_errors(obj) == [], f"EcrGrantPolicy/{obj['metadata']['name']}"


# OpenAPI failures after which the API server runs no CEL rule ("some validation rules were not checked because the
# object was invalid"): a wrong type, a missing required field, an unsupported enum value, too long or too many.
_BLOCKING = {"type", "required", "enum", "maxLength", "maxItems", "maxProperties"}


def account_errors(obj: Obj) -> list[str]:
    """What the API server would refuse in an EcrAccessAccount: the OpenAPI schema in strict mode (unknown fields
    are errors, as with `kubectl apply --validate=strict`), then, unless one of those errors blocks them, the CEL
    rules on what the server would keep."""
    schema = _crd_schema(ACCOUNT_CRD_PATH)
    body = {key: value for key, value in obj.items() if key != "metadata"}
    validator = jsonschema.Draft4Validator(to_json_schema(schema, strict=True))
    found = list(validator.iter_errors(body))
    errors = sorted(f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in found)
    if any(error.validator in _BLOCKING for error in found):
        return errors
    return errors + cel_violations(prune(body, schema), schema)


def validate_account(obj: Obj) -> None:
    """Validate an EcrAccessAccount against its CRD: the OpenAPI schema, then the CEL rule."""
    assert obj["apiVersion"] == "ecraccess.io/v1alpha1" and obj["kind"] == "EcrAccessAccount"
    assert "namespace" not in obj["metadata"], "EcrAccessAccount is cluster-scoped"
    assert account_errors(obj) == [], f"EcrAccessAccount/{obj['metadata']['name']}"


def validate_example(obj: Obj) -> None:
    """A grant, a policy or an account, each against its own CRD."""
    if obj.get("kind") == "EcrGrantPolicy":
        validate_policy(obj)
    elif obj.get("kind") == "EcrAccessAccount":
        validate_account(obj)
    else:
        validate_grant(obj)
