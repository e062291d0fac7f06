"""The Argo CD health check (deploy/argocd/health.lua), run as Argo CD runs it: Lua 5.1 (gopher-lua), with only the
base, table, string and math libraries, the grant in the global `obj`. The cases are Argo CD's own test layout
(health_test.yaml + testdata/), so the same files can go into argo-cd's resource_customizations unchanged."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from tests import kstatus
from tests.deploy.manifests import DEPLOY, NAMESPACE, kustomize, validate_grant

ARGOCD = DEPLOY / "argocd"
HEALTH_KEY = "resource.customizations.health.ecraccess.io_EcrAccessGrant"

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


def _health(obj: dict[str, Any]) -> dict[str, str]:
    runtime = _runtime()
    assert runtime.lua_version == (5, 1)
    run = runtime.execute(_SANDBOX, (ARGOCD / "health.lua").read_text())
    result = run(runtime.table_from(obj, recursive=True))
    return {key: result[key] for key in ("status", "message") if result[key] is not None}


def _cases() -> list[dict[str, Any]]:
    return yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


def _load(path: str) -> dict[str, Any]:
    return yaml.safe_load((ARGOCD / path).read_text())


@pytest.mark.parametrize("case", _cases(), ids=lambda case: Path(case["inputPath"]).stem)
def test_health_script_gives_argo_cd_the_expected_status_and_message(case: dict[str, Any]) -> None:
    assert _health(_load(case["inputPath"])) == case["healthStatus"]


def test_cases_cover_every_status_the_script_returns() -> None:
    statuses = {case["healthStatus"]["status"] for case in _cases()}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}
    listed = {case["inputPath"] for case in _cases()}
    on_disk = {f"testdata/{path.name}" for path in (ARGOCD / "testdata").glob("*.yaml")}
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


@pytest.mark.parametrize("path", sorted(p.name for p in (ARGOCD / "testdata").glob("*.yaml")))
def test_testdata_are_grants_the_crd_accepts(path: str) -> None:
    validate_grant(_load(f"testdata/{path}"))


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
    # kstatus skips the generation check without status.observedGeneration, so a grant the operator has not seen
    # yet is Current to Flux; Argo CD waits for the operator (deploy/README.md documents the difference).
    "progressing_new.yaml": (kstatus.CURRENT, "Progressing"),
}


@pytest.mark.parametrize("path", sorted(p.name for p in (ARGOCD / "testdata").glob("*.yaml")))
def test_argo_cd_and_kstatus_agree_on_each_grant(path: str) -> None:
    grant = _load(f"testdata/{path}")
    flux, argo = kstatus.compute(grant).status, _health(grant)["status"]
    assert (flux, argo) == KNOWN_DIFFERENCES.get(path, (flux, ARGO_FOR_KSTATUS[flux]))


def test_argocd_cm_snippet_carries_health_lua_verbatim() -> None:
    config_map = _load("argocd-cm.yaml")
    assert (config_map["kind"], config_map["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert config_map["data"][HEALTH_KEY] == (ARGOCD / "health.lua").read_text()


def test_example_application_installs_the_argocd_overlay() -> None:
    application = _load("application.yaml")
    assert application["kind"] == "Application"
    source, destination = application["spec"]["source"], application["spec"]["destination"]
    assert source["path"] == "deploy/overlays/argocd"
    assert kustomize(source["path"].removeprefix("deploy/"))  # the path exists and renders
    assert destination["namespace"] == NAMESPACE
