"""Issue 11 end to end: hostile input the schema lets through never blocks anyone else.

The operator's AWS traffic goes through awsproxy in validating mode, which refuses a repository
policy naming a role that does not exist, as ECR does (moto alone accepts it). Grants from three
namespaces share one repository; the one naming a role in another account must be the only one
refused, and named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from awsproxy.proxy import ProxyThread, run_in_thread
from tests.e2e.conftest import Driver, ProxiedSandbox, eventually, running

pytestmark = pytest.mark.e2e

ATTACKER = "arn:aws:iam::999999999999:role/attacker"


@pytest.fixture(scope="module")
def validating_proxy() -> Iterator[ProxyThread]:
    with run_in_thread("http://127.0.0.1:9", validate_principals=True) as handle:  # upstream set at start
        yield handle


@pytest.fixture(scope="module")
def hdriver(tmp_path_factory: pytest.TempPathFactory, validating_proxy: ProxyThread) -> Iterator[Driver]:
    sandbox = ProxiedSandbox(tmp_path_factory.mktemp("hostile"), validating_proxy, cluster_id="e2e-hostile")
    sandbox.operator_env_overrides["ECR_ACCESS_PROPAGATION_WINDOW"] = "3"  # refused for 3 s: not propagation
    with running(sandbox) as sb:
        yield Driver(sb)


def grant(namespace: str, name: str, role: dict[str, str], *repos: str) -> dict[str, Any]:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"role": role, "managedPolicy": "None", "repositories": [{"name": repo} for repo in repos]}}


def condition(driver: Driver, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    done = driver.kubectl("get", "ecraccessgrant", name, "-n", namespace, "-o", "json", check=False)
    if done.returncode != 0:
        return None
    items = json.loads(done.stdout).get("status", {}).get("conditions", [])
    return next((item for item in items if item["type"] == kind and item["status"] == "True"), None)


def principals(driver: Driver, repo: str) -> set[str]:
    return {arn for item in driver.ours(repo) for arn in item["Principal"]["AWS"]}


def test_a_refused_principal_blocks_no_other_namespace(hdriver: Driver, validating_proxy: ProxyThread) -> None:
    driver = hdriver
    repo = "hostile/shared"
    driver.create_repository(repo)
    roles = {team: driver.create_role(f"hostile-{team}") for team in ("a", "b")}
    for namespace in ("team-a", "team-b", "evil"):
        driver.kubectl("create", "namespace", namespace)

    driver.apply(grant("evil", "bad", {"arn": ATTACKER}, repo))
    driver.apply(grant("team-a", "a", {"name": "hostile-a"}, repo))
    driver.apply(grant("team-b", "b", {"name": "hostile-b"}, repo))

    for namespace, name in (("team-a", "a"), ("team-b", "b")):
        driver.kubectl("wait", "--for=condition=Ready", f"ecraccessgrant/{name}", "-n", namespace, "--timeout=60s")
    stalled = eventually(lambda: condition(driver, "evil", "bad", "Stalled"), timeout=60,
                         what="for the refused grant to be Stalled")
    assert stalled["reason"] == "PrincipalRejected"
    assert ATTACKER in stalled["message"] and repo in stalled["message"]
    assert principals(driver, repo) == set(roles.values())
    assert validating_proxy.stats().count("SetRepositoryPolicy", outcome="refused_principal") >= 1

    driver.kubectl("delete", "ecraccessgrant", "b", "-n", "team-b", "--timeout=60s")

    assert principals(driver, repo) == {roles["a"]}, "a delete in another namespace lands"
    assert condition(driver, "evil", "bad", "Stalled") is not None


def test_a_reconcile_request_is_handled_and_echoed(hdriver: Driver) -> None:
    driver = hdriver
    repo = "hostile/now"
    driver.create_repository(repo)
    driver.create_role("hostile-now")
    driver.apply(grant("default", "now", {"name": "hostile-now"}, repo))
    driver.kubectl("wait", "--for=condition=Ready", "ecraccessgrant/now", "--timeout=60s")

    driver.kubectl("annotate", "--overwrite", "ecraccessgrant", "now",
                   "ecraccess.io/reconcile-requested-at=2026-12-01T10:00:00Z")

    driver.kubectl("wait", "--for=jsonpath={.status.lastHandledReconcileAt}=2026-12-01T10:00:00Z",
                   "ecraccessgrant/now", "--timeout=30s")
