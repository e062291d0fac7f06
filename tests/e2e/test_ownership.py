"""Who owns what, end to end: the managed-policy attachment and the repository statements survive
outages, lost answers, suspends, invalid edits, forged status and reused names exactly as DESIGN
§2.2, §2.5 and §2.7 promise, and a Retain deletion stuck on a full policy gives way at once when
its deletionPolicy becomes Delete.

Why these tests exist: the operator used to remember that it had attached
`AmazonEC2ContainerRegistryReadOnly` in the grant's status (`managedPolicyOwned`), and to take a
suspended or invalid grant's spec at face value. Status can be lost (a transient failure rewrote it)
or forged (anyone allowed to patch `ecraccessgrants/status`), so the operator either stranded an
attachment forever or detached someone else's, or let a suspended grant's edit reach AWS. Now the
record lives on the IAM role as `ecraccess.io/*` tags, a suspended or invalid grant contributes the
frozen `ecraccess.io/applied` record, and a Retain hand-over is named after the grant's UID.

Each test drives the real operator with kubectl and looks only at what a user would see in AWS:
whether the managed policy is attached to a role, and which statements a repository policy holds.
The operator's AWS traffic (only the operator's) goes through `awsproxy`, so that two tests can
make AWS fail or lose an answer; the tests' own boto3 clients talk to moto directly. One sandbox
serves the module; each test has its own roles, repositories and grants (labelled with the test's
case, and deleted after it).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from awsproxy.faults import FaultConfig, Rates
from awsproxy.proxy import ProxyThread, run_in_thread
from tests.e2e.conftest import ACCOUNT, READ_ONLY, REGION, Driver, ProxiedSandbox, eventually, restarted, running

pytestmark = pytest.mark.e2e

CLUSTER_ID = "e2e-ownership"
RESYNC = 3.0  # seconds between drift passes
SEED = 2718  # the proxy's random draws (the faults used here all have rate 0 or 1)
LABEL = "ownership.test/case"
LIMIT = 10_240  # ECR's limit on a repository policy, in characters of compact JSON
SHARED_PREFIX = "EcrAccessGrant"
RETAINED_PREFIX = "EcrAccessRetained"


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyThread]:
    with run_in_thread("http://127.0.0.1:9", seed=SEED) as handle:  # upstream set once moto is up
        yield handle


@pytest.fixture(scope="module")
def owned_sandbox(tmp_path_factory: pytest.TempPathFactory, proxy: ProxyThread) -> Iterator[ProxiedSandbox]:
    with running(ProxiedSandbox(tmp_path_factory.mktemp("ownership"), proxy, cluster_id=CLUSTER_ID, seed=False,
                                seed_policy=True)) as sb:
        yield sb


@pytest.fixture
def case(request: pytest.FixtureRequest) -> str:
    """The test's label value (a valid label: at most 63 characters, alphanumeric at both ends)."""
    return str(request.node.name).removeprefix("test_").replace("_", "-")[:40].strip("-")


@pytest.fixture
def odriver(owned_sandbox: ProxiedSandbox, proxy: ProxyThread, case: str) -> Iterator[Driver]:
    """A driver on the module's sandbox; afterwards: no faults, and this test's grants deleted."""
    driver = Driver(owned_sandbox)
    yield driver
    proxy.set_faults(FaultConfig())
    driver.kubectl("delete", "ecraccessgrant", "-l", f"{LABEL}={case}", "--timeout=20s", check=False)


# -- helpers -------------------------------------------------------------------------------------------


def manifest(case: str, name: str, role: str, *repos: str | Mapping[str, str], **spec: Any) -> dict[str, Any]:
    """A grant on the role named `role`; a repository is a name or a `{name|arn: ...}` mapping."""
    repositories = [{"name": repo} if isinstance(repo, str) else dict(repo) for repo in repos]
    return {
        "apiVersion": "ecraccess.io/v1alpha1",
        "kind": "EcrAccessGrant",
        "metadata": {"name": name, "namespace": "default", "labels": {LABEL: case}},
        "spec": {"role": {"name": role}, "repositories": repositories, **spec},
    }


def conditions_of(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in (body.get("status") or {}).get("conditions", [])}


def current(driver: Driver, name: str) -> dict[str, Any]:
    body = driver.get(name)
    assert body is not None, f"grant {name} is gone"
    return body


def observed(driver: Driver, name: str) -> dict[str, Any]:
    """Wait until the operator has acted on the grant's current generation; return its body."""
    def check() -> dict[str, Any] | None:
        body = current(driver, name)
        done = (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]
        return body if done else None

    found: dict[str, Any] = eventually(check, timeout=30, what=f"for {name}'s generation to be observed")
    return found


def principals(statement: Mapping[str, Any]) -> set[str]:
    raw = (statement.get("Principal") or {}).get("AWS", [])
    return {raw} if isinstance(raw, str) else set(raw)


def naming(driver: Driver, repo: str, arn: str) -> list[dict[str, Any]]:
    """The statements of `repo`'s policy whose principals include `arn`."""
    return [item for item in driver.statements(repo) if arn in principals(item)]


def shared_principals(driver: Driver, repo: str) -> set[str]:
    """Every principal of this operator's shared statements in `repo`."""
    return {arn for item in driver.ours(repo) for arn in principals(item)}


def holds(check: Callable[[], bool], seconds: float, what: str) -> None:
    """`check()` stays true for `seconds` (polled twice a second)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.5)


def forge_status(driver: Driver, name: str, status: Mapping[str, Any]) -> None:
    driver.kubectl("patch", "ecraccessgrant", name, "--subresource=status", "--type=merge",
                   "-p", json.dumps({"status": dict(status)}))


def delete(driver: Driver, name: str) -> None:
    """`kubectl delete`, which returns once the finalizer is gone, i.e. the release is done."""
    driver.kubectl("delete", "ecraccessgrant", name, "--timeout=60s")
    assert driver.get(name) is None


# -- (a) an AWS outage during a drift pass -------------------------------------------------------------


def test_an_aws_outage_during_a_drift_pass_does_not_lose_ownership(
    odriver: Driver, owned_sandbox: ProxiedSandbox, proxy: ProxyThread, case: str
) -> None:
    """The operator is restarted once the outage has been reported (a rollout, an eviction): what it
    remembered in memory is gone, so only a record that survived the outage can detach the policy."""
    driver = odriver
    role, repo = "own-outage", "own/outage"
    driver.create_role(role)
    driver.create_repository(repo)
    driver.apply(manifest(case, "outage", role, repo))
    driver.wait_ready("outage")
    assert READ_ONLY in driver.attached(role)

    proxy.set_faults(FaultConfig(error=1.0))  # every AWS call of the operator answers 500
    try:
        def role_unreadable() -> bool:
            # Not Ready, and the message names the role: a drift pass could not even read the role
            # (what the attachment record used to be lost on), not only a repository policy.
            ready = conditions_of(current(driver, "outage"))["Ready"]
            assert ready["status"] == "False" and role in ready["message"], ready
            return True

        eventually(role_unreadable, timeout=60, interval=0.5, what="for a drift pass to fail on the role")
        killed = driver.kill_operator()  # before the outage ends: the old process reports nothing more
    finally:
        proxy.set_faults(FaultConfig())  # before the new process, which needs AWS to start, gets there
    eventually(lambda: restarted(owned_sandbox, killed), timeout=60, what="for the operator to be restarted")
    driver.wait_ready("outage")

    delete(driver, "outage")

    assert READ_ONLY not in driver.attached(role), (
        f"{READ_ONLY}, which the operator attached for the grant, stayed attached to {role} after the grant "
        "was deleted: the outage made the operator forget it had attached it")


# -- (b) a suspended grant on the same role -----------------------------------------------------------


def test_a_suspended_grant_does_not_strand_the_attachment(odriver: Driver, case: str) -> None:
    driver = odriver
    role, repo = "own-suspended", "own/suspended"
    driver.create_role(role)
    driver.create_repository(repo)
    driver.apply(manifest(case, "active-a", role, repo))
    driver.wait_ready("active-a")
    assert READ_ONLY in driver.attached(role)
    driver.apply(manifest(case, "suspended-b", role, repo, suspend=True))
    observed(driver, "suspended-b")

    delete(driver, "active-a")
    delete(driver, "suspended-b")

    assert READ_ONLY not in driver.attached(role), (
        f"{READ_ONLY}, attached by the operator, is still attached to {role} after both grants on it were "
        "deleted (one of them was suspended and had never applied anything)")


# -- (c) a forged managedPolicyOwned --------------------------------------------------------------------


def test_a_forged_owned_status_does_not_detach_a_policy_someone_else_attached(odriver: Driver, case: str) -> None:
    driver = odriver
    role, repo = "own-forged-owned", "own/forged-owned"
    driver.create_role(role)
    driver.create_repository(repo)
    driver.iam.attach_role_policy(RoleName=role, PolicyArn=READ_ONLY)  # a person did this, before any grant
    driver.apply(manifest(case, "forged-owned", role, repo))
    driver.wait_ready("forged-owned")

    forge_status(driver, "forged-owned", {"managedPolicyOwned": True})
    delete(driver, "forged-owned")

    assert READ_ONLY in driver.attached(role), (
        f"deleting the grant detached {READ_ONLY} from {role}, which a person had attached: the operator "
        "trusted a forged status.managedPolicyOwned")


# -- (d) a forged roleArn -------------------------------------------------------------------------------


def test_a_forged_role_arn_does_not_reach_another_role(odriver: Driver, case: str) -> None:
    driver = odriver
    role, other, repo = "own-forged-arn", "own-forged-arn-victim", "own/forged-arn"
    driver.create_role(role)
    victim = driver.create_role(other)
    driver.create_repository(repo)
    driver.iam.attach_role_policy(RoleName=other, PolicyArn=READ_ONLY)  # a person did this
    driver.apply(manifest(case, "forged-arn", role, repo))
    driver.wait_ready("forged-arn")
    forged = {"roleArn": victim, "managedPolicyArn": READ_ONLY, "managedPolicyOwned": True}

    forge_status(driver, "forged-arn", forged)
    holds(lambda: READ_ONLY in driver.attached(other), RESYNC * 4,  # several drift passes
          what=f"{READ_ONLY} detached from {other}, named only by a forged status.roleArn")
    assert naming(driver, repo, victim) == [], "a forged status.roleArn reached the repository policy"

    forge_status(driver, "forged-arn", forged)  # a drift pass may have rewritten the report meanwhile
    delete(driver, "forged-arn")

    assert READ_ONLY in driver.attached(other), (
        f"deleting a grant on {role} detached {READ_ONLY} from {other}, named only by a forged status.roleArn")
    assert READ_ONLY not in driver.attached(role), f"{READ_ONLY}, attached by the operator, stayed on {role}"


# -- (e) a lost AttachRolePolicy answer ---------------------------------------------------------------


def test_a_lost_attach_answer_is_still_recorded_and_detached_on_delete(
    odriver: Driver, proxy: ProxyThread, case: str
) -> None:
    driver = odriver
    role, repo = "own-lost-answer", "own/lost-answer"
    driver.create_role(role)
    driver.create_repository(repo)
    # The request reaches moto (which attaches the policy), and the operator never hears back.
    proxy.set_faults(FaultConfig(operations={"iam:AttachRolePolicy": Rates(drop_after=1.0)}))
    before = proxy.stats()

    driver.apply(manifest(case, "lost-answer", role, repo))
    eventually(lambda: READ_ONLY in driver.attached(role), timeout=30, what="for moto to attach the policy")
    # Still losing every answer: the operator must learn of the attachment by reading the role, and
    # never hear an AttachRolePolicy succeed (a later successful attach would hide the lost one).
    driver.wait_ready("lost-answer", timeout=90)
    calls = proxy.stats() - before
    assert calls.count("AttachRolePolicy", outcome="drop_after") > 0, "an answer was dropped"
    assert calls.count("AttachRolePolicy", outcome="forwarded") == calls.count("AttachRolePolicy", outcome="drop_after")
    proxy.set_faults(FaultConfig())

    delete(driver, "lost-answer")

    assert READ_ONLY not in driver.attached(role), (
        f"{READ_ONLY} stayed attached to {role}: the operator attached it, lost the answer, then took the "
        "attachment for someone else's")


# -- (f) an invalid spec edit before the delete -------------------------------------------------------


def test_a_grant_whose_spec_became_invalid_still_releases_on_delete(odriver: Driver, case: str) -> None:
    driver = odriver
    role, repo = "own-invalid", "own/invalid"
    arn = driver.create_role(role)
    driver.create_repository(repo)
    driver.apply(manifest(case, "invalid", role, repo))
    driver.wait_ready("invalid")
    assert naming(driver, repo, arn) and READ_ONLY in driver.attached(role)

    # The schema lets this through (one is a name, the other an ARN); the operator refuses it.
    twice = {"arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"}
    driver.apply(manifest(case, "invalid", role, repo, twice))
    body = observed(driver, "invalid")
    assert conditions_of(body)["Ready"]["reason"] == "InvalidSpec", conditions_of(body)

    delete(driver, "invalid")

    assert naming(driver, repo, arn) == [], f"{repo} still grants {arn}: {driver.statements(repo)}"
    assert READ_ONLY not in driver.attached(role), f"{READ_ONLY}, attached by the operator, stayed on {role}"


# -- (g) suspend means suspend --------------------------------------------------------------------------


def test_a_suspended_grants_spec_edit_does_not_reach_aws(odriver: Driver, case: str) -> None:
    driver = odriver
    repo = "own/suspend-edit"
    first, edited, other = (driver.create_role(name) for name in
                            ("own-suspend-first", "own-suspend-edited", "own-suspend-other"))
    driver.create_repository(repo)
    driver.apply(manifest(case, "suspend-s", "own-suspend-first", repo, managedPolicy="None"))
    driver.wait_ready("suspend-s")
    assert shared_principals(driver, repo) == {first}

    driver.apply(manifest(case, "suspend-s", "own-suspend-edited", repo, managedPolicy="None", suspend=True))
    observed(driver, "suspend-s")
    driver.apply(manifest(case, "suspend-t", "own-suspend-other", repo, managedPolicy="None"))
    driver.wait_ready("suspend-t")  # its sync rewrote the repository's shared statement

    found = shared_principals(driver, repo)
    assert first in found and edited not in found, (
        f"{repo}'s shared statement names {sorted(found)}: a suspended grant's role edit reached AWS")
    assert other in found
    assert current(driver, "suspend-s")["status"]["roleArn"] == first


# -- (h) Retain, twice under one name -----------------------------------------------------------------


def test_retain_keeps_the_hand_over_of_every_grant_that_reused_a_name(odriver: Driver, case: str) -> None:
    driver = odriver
    repo = "own/retained"
    roles = {name: driver.create_role(name) for name in ("own-retained-a", "own-retained-b")}
    driver.create_repository(repo)
    expected = {}
    for role, arn in roles.items():
        driver.apply(manifest(case, "keep", role, repo, deletionPolicy="Retain", managedPolicy="None"))
        uid = driver.wait_ready("keep")["metadata"]["uid"]
        digest = hashlib.sha256(f"{CLUSTER_ID}/default/keep/{uid}".encode()).hexdigest()[:16]
        expected[RETAINED_PREFIX + digest] = arn
        delete(driver, "keep")

    retained = {str(item["Sid"]): principals(item) for item in driver.statements(repo)
                if str(item.get("Sid", "")).startswith(RETAINED_PREFIX)}
    assert sorted(map(sorted, retained.values())) == [[arn] for arn in sorted(roles.values())], (
        f"{repo} should hold one hand-over statement per deleted Retain grant (DESIGN §2.5), "
        f"one for each of {sorted(roles.values())}: found {retained}")
    assert retained == {sid: {arn} for sid, arn in expected.items()}, "each Sid is derived from its grant's UID"
    assert driver.ours(repo) == [], "no live grant is left, so no shared statement either"


# -- (i) deletionPolicy edited on a grant stuck in deletion ------------------------------------------


def test_switching_a_stuck_retain_grant_to_delete_takes_effect_at_once(odriver: Driver, case: str) -> None:
    driver = odriver
    repo = "own/stuck"
    keeper = driver.create_role("own-stuck-retain")
    companion = driver.create_role("own-stuck-companion")
    driver.create_repository(repo)
    # The companion keeps the shared statement alive, so that the hand-over is a second statement.
    driver.apply(manifest(case, "stuck-companion", "own-stuck-companion", repo, managedPolicy="None"))
    driver.apply(manifest(case, "stuck-k", "own-stuck-retain", repo, managedPolicy="None", deletionPolicy="Retain"))
    driver.wait_ready("stuck-companion")
    driver.wait_ready("stuck-k")
    assert shared_principals(driver, repo) == {keeper, companion}

    # Someone else's statement fills the policy to 200 characters short of the limit: our shared
    # statement fits, a ~470-character hand-over statement beside it does not.
    doc = driver.policy(repo)
    assert doc is not None
    filler: dict[str, Any] = {"Sid": "Filler", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                              "Action": "ecr:PutImage", "Condition": {"StringLike": {"aws:userid": ""}}}
    full = {**doc, "Statement": [filler, *doc["Statement"]]}
    filler["Condition"]["StringLike"]["aws:userid"] = "x" * (LIMIT - 200 - len(json.dumps(full, separators=(",", ":"))))
    assert len(json.dumps(full, separators=(",", ":"))) == LIMIT - 200
    driver.ecr.set_repository_policy(repositoryName=repo, policyText=json.dumps(full, separators=(",", ":")))

    driver.kubectl("delete", "ecraccessgrant", "stuck-k", "--wait=false")

    def stalled() -> bool:
        found = conditions_of(current(driver, "stuck-k")).get("Stalled", {})
        assert found.get("status") == "True" and found.get("reason") == "PolicyTooLarge", found
        return True

    # Generous: under a loaded CI machine the delete handler has been seen to take over 15 s.
    eventually(stalled, timeout=60, what="for the stuck Retain grant to be Stalled (PolicyTooLarge)")
    assert keeper in shared_principals(driver, repo), "until its hand-over fits, the role keeps its access"

    driver.kubectl("patch", "ecraccessgrant", "stuck-k", "--type=merge", "-p",
                   json.dumps({"spec": {"deletionPolicy": "Delete"}}))

    eventually(lambda: driver.get("stuck-k") is None, timeout=10,
               what="for the grant to go after deletionPolicy became Delete")
    assert naming(driver, repo, keeper) == [], f"{repo} still grants {keeper}: {driver.statements(repo)}"
    assert shared_principals(driver, repo) == {companion}
    assert filler in driver.statements(repo)
