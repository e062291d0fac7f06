"""`ecr-access-operator plan` (and `whoami`) as a person runs them against the sandbox: the real CLI in
its own process, with the sandbox's kubeconfig and AWS, while the real operator runs.

Before the grant is applied, the plan exits 2 and names the exact principal it would add; after
`kubectl apply` and Ready, the same file plans nothing (exit 0). The plan's AWS traffic goes through
a counting proxy (awsproxy) in front of the sandbox's moto server, so "reads only" is asserted on the
wire; on the Kubernetes side, the grant's resourceVersion and status are the same after a plan.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from awsproxy.proxy import ProxyThread, run_in_thread
from ecr_access import policy
from ecr_access.model import REFERENCE_ACTIONS
from ecr_sandbox.sandbox import REPO_ROOT, Sandbox
from tests.e2e.conftest import ACCOUNT, CLUSTER_ID, READ_ONLY, Driver, eventually, grant

pytestmark = pytest.mark.e2e

ROLE = "plan-e2e-node-role"
REPOSITORY = "plan/e2e"
SID = policy.statement_sid(CLUSTER_ID, REFERENCE_ACTIONS)
CI_PUSH = {"Sid": "PlanE2eCiPush", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
           "Action": ["ecr:PutImage"]}
READS = ("Get", "List", "Describe")


@pytest.fixture
def proxy(sandbox: Sandbox) -> Iterator[ProxyThread]:
    """A counting proxy in front of the sandbox's moto server, for the commands' traffic only."""
    with run_in_thread(sandbox.aws_env["AWS_ENDPOINT_URL"]) as handle:
        yield handle


def command(sandbox: Sandbox, proxy: ProxyThread, *args: str) -> subprocess.CompletedProcess[str]:
    """`ecr-access-operator ARGS` as its own process, with the sandbox's cluster and AWS (through `proxy`)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "KUBECONFIG", "ECR_ACCESS_"))}
    env.update(sandbox.aws_env, AWS_ENDPOINT_URL=proxy.url, KUBECONFIG=str(sandbox.kubeconfig),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT / "operator"), env.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "ecr_access.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def writes(proxy: ProxyThread) -> dict[str, int]:
    """The operations the proxy saw that are not reads (GetCallerIdentity and AssumeRole are STS's reads)."""
    return {name: count for name, count in proxy.stats().by_operation().items()
            if not name.startswith(READS) and name not in ("GetCallerIdentity", "AssumeRole")}


def settled(driver: Driver, name: str) -> dict[str, Any]:
    """The grant once nothing writes it for a while (kopf's follow-up patches are done)."""
    def steady() -> dict[str, Any] | None:
        first = driver.get(name)
        time.sleep(1.5)
        second = driver.get(name)
        same = first is not None and second is not None and \
            first["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]
        return second if same else None

    found: dict[str, Any] = eventually(steady, timeout=30, what=f"for {name} to settle")
    return found


def test_plan_names_the_principals_before_an_apply_and_nothing_after_it(
        driver: Driver, sandbox: Sandbox, proxy: ProxyThread, tmp_path: pathlib.Path) -> None:
    role_arn = driver.create_role(ROLE)
    driver.create_repository(REPOSITORY, {"Version": "2012-10-17", "Statement": [CI_PUSH]})
    manifest = grant("plan-e2e", REPOSITORY, role={"name": ROLE})
    path = tmp_path / "grant.yaml"
    path.write_text(yaml.safe_dump(manifest))
    before = driver.policy(REPOSITORY)

    planned = command(sandbox, proxy, "plan", "-f", str(path), "--cluster-id", CLUSTER_ID)

    assert planned.returncode == 2, planned.stdout + planned.stderr
    repo_arn = f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository/{REPOSITORY}"
    assert f"~ repository {repo_arn}: + principal {role_arn} in Sid {SID}" in planned.stdout
    assert f"~ role {role_arn}: + managed policy {READ_ONLY}" in planned.stdout
    as_json = command(sandbox, proxy, "plan", "-f", str(path), "--cluster-id", CLUSTER_ID, "-o", "json")
    assert as_json.returncode == 2, as_json.stderr
    document = json.loads(as_json.stdout)
    (change,) = document["repositories"]
    assert [(item["sid"], item["principalsAdded"]) for item in change["statements"]] == [(SID, [role_arn])]
    assert document["grants"][0]["ready"]["status"] == "True"
    # Nothing written: not to AWS (counted at the wire), not to the cluster (no grant was created).
    assert proxy.stats().count("GetRepositoryPolicy") >= 2 and writes(proxy) == {}
    assert driver.policy(REPOSITORY) == before and driver.attached(ROLE) == set()
    assert driver.get("plan-e2e") is None

    driver.kubectl("apply", "-f", str(path))
    driver.wait_ready("plan-e2e")
    live = settled(driver, "plan-e2e")
    proxy.reset()

    again = command(sandbox, proxy, "plan", "-f", str(path), "--cluster-id", CLUSTER_ID)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout and "would be Ready=True (Reconciled)" in again.stdout
    after = driver.get("plan-e2e")
    assert after is not None and after["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert after.get("status") == live.get("status")
    assert writes(proxy) == {}

    # Deleting it would take the role out again, and detach what the operator attached.
    removal = command(sandbox, proxy, "plan", "-f", str(path), "--cluster-id", CLUSTER_ID, "--delete")
    assert removal.returncode == 2, removal.stdout + removal.stderr
    assert f"- principal {role_arn} in Sid {SID}" in removal.stdout
    assert f"~ role {role_arn}: - managed policy {READ_ONLY}" in removal.stdout
    assert writes(proxy) == {} and driver.get("plan-e2e") is not None

    driver.kubectl("delete", "-f", str(path), "--timeout=60s")
    eventually(lambda: driver.policy(REPOSITORY) == before, what="for the delete to restore the policy")


def test_plan_without_the_cluster_id_uses_kube_systems_uid_and_says_so(
        driver: Driver, sandbox: Sandbox, proxy: ProxyThread, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "grant.yaml"
    path.write_text(yaml.safe_dump(grant("plan-e2e-uid", "ml/trainer", managedPolicy="None")))
    uid = driver.kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout.strip()

    planned = command(sandbox, proxy, "plan", "-f", str(path), "-o", "json")

    assert planned.returncode == 2, planned.stderr  # another cluster id: another Sid, which does not exist yet
    document = json.loads(planned.stdout)
    assert document["clusterId"] == uid and document["sidPrefix"] == policy.cluster_prefix(uid)
    assert writes(proxy) == {}


def test_whoami_reports_the_sandboxs_identity_cluster_id_and_sid_prefix(
        sandbox: Sandbox, proxy: ProxyThread) -> None:
    done = command(sandbox, proxy, "whoami", "--cluster-id", CLUSTER_ID, "-o", "json")

    assert done.returncode in (0, 1), done.stderr  # 1 only if an EcrAccessAccount of another test cannot be assumed
    document = json.loads(done.stdout)
    assert (document["account"], document["region"], document["clusterId"]) == (ACCOUNT, "us-west-2", CLUSTER_ID)
    assert (document["arn"], document["partition"]) == (sandbox.aws("sts").get_caller_identity()["Arn"], "aws")
    assert document["sidPrefix"] == policy.cluster_prefix(CLUSTER_ID) and document["policyMode"] == "Enforce"
    assert document["problems"] == [] and writes(proxy) == {}
