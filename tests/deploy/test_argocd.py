"""The Argo CD health checks (deploy/argocd/health.lua for grants, deploy/argocd/EcrAccessAccount/health.lua for
accounts), run as Argo CD runs them: Lua 5.1 (gopher-lua), with only the base, table, string and math libraries, the
object in the global `obj`. The cases are Argo CD's own test layout (health_test.yaml + testdata/ beside each
script), so the same files can go into argo-cd's resource_customizations unchanged."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from tests import kstatus
from tests.deploy.manifests import (
    DEPLOY,
    IMAGE,
    KUBE_VERSIONS,
    NAMESPACE,
    VERSION,
    container,
    kustomize,
    kustomize_overlay,
    validate,
    validate_account,
    validate_grant,
)

ARGOCD = DEPLOY / "argocd"
HEALTH_KEY = "resource.customizations.health.ecraccess.io_EcrAccessGrant"
# Each kind's health check: the directory of its health.lua, health_test.yaml and testdata/, and its CRD check.
ACCOUNTS = ARGOCD / "EcrAccessAccount"
CHECKS = {"EcrAccessGrant": (ARGOCD, validate_grant), "EcrAccessAccount": (ACCOUNTS, validate_account)}
# The statuses each script returns (an account has no spec.suspend).
STATUSES = {"EcrAccessGrant": {"Healthy", "Progressing", "Degraded", "Suspended"},
            "EcrAccessAccount": {"Healthy", "Progressing", "Degraded"}}

# Run the script in an environment with only what gopher-lua gives Argo CD's health scripts.
_SANDBOX = """
local source = ...
local allowed = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawset", "select",
  "setmetatable", "getmetatable", "tonumber", "tostring", "type", "unpack", "xpcall",
  "string", "table", "math",
}
return function(obj)
  local env = {obj = obj}
  for _, name in ipairs(allowed) do env[name] = _G[name] end
  local chunk, err = loadstring(source, "=health.lua")
  if chunk == nil then error(err) end
  setfenv(chunk, env)
  return chunk()
end
"""


@functools.cache
def _runtime() -> Any:
    return lua51.LuaRuntime(unpack_returned_tuples=True)


def _health(obj: dict[str, Any], directory: Path = ARGOCD) -> dict[str, str]:
    runtime = _runtime()
    assert runtime.lua_version == (5, 1)
    run = runtime.execute(_SANDBOX, (directory / "health.lua").read_text())
    result = run(runtime.table_from(obj, recursive=True))
    return {key: result[key] for key in ("status", "message") if result[key] is not None}


def _cases(directory: Path = ARGOCD) -> list[dict[str, Any]]:
    return list(yaml.safe_load((directory / "health_test.yaml").read_text())["tests"])


def _load(path: str, directory: Path = ARGOCD) -> dict[str, Any]:
    return dict(yaml.safe_load((directory / path).read_text()))


def _all_cases() -> list[tuple[str, dict[str, Any]]]:
    return [(kind, case) for kind, (directory, _) in CHECKS.items() for case in _cases(directory)]


def _all_testdata() -> list[tuple[str, str]]:
    return [(kind, path.name) for kind, (directory, _) in CHECKS.items()
            for path in sorted((directory / "testdata").glob("*.yaml"))]


@pytest.mark.parametrize(("kind", "case"), _all_cases(),
                         ids=[f"{kind}-{Path(case['inputPath']).stem}" for kind, case in _all_cases()])
def test_health_script_gives_argo_cd_the_expected_status_and_message(kind: str, case: dict[str, Any]) -> None:
    directory = CHECKS[kind][0]
    obj = _load(case["inputPath"], directory)
    assert obj["kind"] == kind
    assert _health(obj, directory) == case["healthStatus"]


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_cases_cover_every_status_the_script_returns(kind: str) -> None:
    directory = CHECKS[kind][0]
    statuses = {case["healthStatus"]["status"] for case in _cases(directory)}
    assert statuses == STATUSES[kind]
    listed = {case["inputPath"] for case in _cases(directory)}
    on_disk = {f"testdata/{path.name}" for path in (directory / "testdata").glob("*.yaml")}
    assert listed == on_disk, "every testdata file has a case, and every case a file"


def test_a_stalled_grant_is_degraded_with_its_message_whatever_the_condition_order() -> None:
    grant = _load("testdata/degraded_role_not_found.yaml")
    grant["status"]["conditions"].reverse()
    stalled = next(c for c in grant["status"]["conditions"] if c["type"] == "Stalled")
    assert _health(grant) == {"status": "Degraded", "message": stalled["message"]}


def test_a_grant_without_conditions_but_with_an_observed_generation_is_progressing() -> None:
    grant = _load("testdata/healthy.yaml")
    del grant["status"]["conditions"]
    assert _health(grant)["status"] == "Progressing"


def test_sandbox_refuses_what_argo_cd_does_not_give_health_scripts() -> None:
    # The sandbox must be real: a script calling os.* fails in it, as it would in Argo CD.
    runtime = _runtime()
    run = runtime.execute(_SANDBOX, "return os.time()")
    with pytest.raises(lua51.LuaError, match="os"):
        run(runtime.table_from({}, recursive=True))


@pytest.mark.parametrize(("kind", "path"), _all_testdata(), ids=[f"{k}-{p}" for k, p in _all_testdata()])
def test_testdata_are_objects_their_crd_accepts(kind: str, path: str) -> None:
    directory, validate_kind = CHECKS[kind]
    validate_kind(_load(f"testdata/{path}", directory))


def test_an_account_without_conditions_but_with_an_observed_generation_is_progressing() -> None:
    account = _load("testdata/healthy.yaml", ACCOUNTS)
    del account["status"]["conditions"]
    assert _health(account, ACCOUNTS)["status"] == "Progressing"


def test_a_stalled_account_is_degraded_with_its_message_whatever_the_condition_order() -> None:
    account = _load("testdata/degraded_assume_role_failed.yaml", ACCOUNTS)
    account["status"]["conditions"].reverse()
    stalled = next(c for c in account["status"]["conditions"] if c["type"] == "Stalled")
    assert _health(account, ACCOUNTS) == {"status": "Degraded", "message": stalled["message"]}


# Argo CD and Flux (kstatus) must agree on each grant, except where kstatus itself cannot know better.
ARGO_FOR_KSTATUS = {
    kstatus.CURRENT: "Healthy",
    kstatus.IN_PROGRESS: "Progressing",
    kstatus.FAILED: "Degraded",
    kstatus.TERMINATING: "Progressing",
}
KNOWN_DIFFERENCES = {
    # kstatus has no Suspended; the generic rules see the old conditions, health.lua sees spec.suspend.
    "suspended.yaml": (kstatus.CURRENT, "Suspended"),
    # kstatus skips the generation check without status.observedGeneration, so a grant (or an account) the operator
    # has not seen yet is Current to Flux; Argo CD waits for the operator (deploy/README.md documents the difference).
    "progressing_new.yaml": (kstatus.CURRENT, "Progressing"),
}


@pytest.mark.parametrize(("kind", "path"), _all_testdata(), ids=[f"{k}-{p}" for k, p in _all_testdata()])
def test_argo_cd_and_kstatus_agree_on_each_object(kind: str, path: str) -> None:
    directory = CHECKS[kind][0]
    obj = _load(f"testdata/{path}", directory)
    flux, argo = kstatus.compute(obj).status, _health(obj, directory)["status"]
    assert (flux, argo) == KNOWN_DIFFERENCES.get(path, (flux, ARGO_FOR_KSTATUS[flux]))


def test_argocd_cm_snippet_carries_each_health_lua_verbatim() -> None:
    config_map = _load("argocd-cm.yaml")
    assert (config_map["kind"], config_map["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert set(config_map["data"]) == {f"resource.customizations.health.ecraccess.io_{kind}" for kind in CHECKS}
    assert config_map["data"][HEALTH_KEY] == (ARGOCD / "health.lua").read_text()
    for kind, (directory, _) in CHECKS.items():
        assert config_map["data"][f"resource.customizations.health.ecraccess.io_{kind}"] == (
            directory / "health.lua").read_text()


def test_example_application_installs_the_argocd_overlay() -> None:
    application = _load("application.yaml")
    assert application["kind"] == "Application"
    source, destination = application["spec"]["source"], application["spec"]["destination"]
    assert source["path"] == "deploy/overlays/argocd"
    assert kustomize(source["path"].removeprefix("deploy/"))  # the path exists and renders
    assert destination["namespace"] == NAMESPACE


def _set_image(entry: str) -> dict[str, str]:
    """An Argo CD `kustomize.images` entry (`kustomize edit set image` syntax: name=newName:newTag) as the kustomize
    `images:` entry it becomes."""
    name, _, target = entry.partition("=")
    new_name, colon, tag = target.rpartition(":")
    assert name and colon and "/" not in tag, f"expected name=newName:newTag, got {entry!r}"
    return {"name": name, "newName": new_name, "newTag": tag}


def test_example_application_overrides_the_image_and_the_overlay_renders_with_it(tmp_path: Path) -> None:
    source = _load("application.yaml")["spec"]["source"]
    (entry,) = source["kustomize"]["images"]
    image = _set_image(entry)
    assert image["name"] == IMAGE, "the name the base's Deployment uses (deploy/base/kustomization.yaml)"
    assert image["newTag"] == VERSION, "the example installs this release's image"
    directory = source["path"].removeprefix("deploy/")
    # What Argo CD renders: `kustomize edit set image` adds the entry to the overlay; an overlay on top is the same.
    overridden = kustomize_overlay(tmp_path / "argocd", directory, images=[image])
    assert container(overridden)["image"] == f"{image['newName']}:{image['newTag']}"
    for obj in overridden:
        validate(obj, KUBE_VERSIONS[-1])
    plain = kustomize(directory)
    for obj in plain:  # nothing else changes
        if obj["kind"] == "Deployment":
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = container(overridden)["image"]
    assert overridden == plain
