"""Tenancy end to end (issue 13, DESIGN §5): `EcrGrantPolicy` decides what each namespace may grant.

Everything goes through kubectl against kubesim, with the real operator process and AWS in moto.
One sandbox serves the module. It is seeded in AWS but has NO allow-all policy
(`seed_policy=False`): every namespace starts out permitted nothing. Each test has its own
namespaces (labelled through kubectl), roles, repositories and policies (`kubectl apply`), and every
policy selects only that test's namespaces, so tests do not see each other.

The drift pass runs every `RESYNC` = 300 s (the operator's default), far longer than any test waits:
whatever a policy or namespace-label change does within seconds here was done by the operator's
watches (`watches.py`, `revocation.py`), not by a drift pass that happened to come along.

The operator's AWS traffic (only the operator's) goes through `awsproxy`, which counts its calls;
the tests' own boto3 clients talk to moto directly.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import yaml

from awsproxy.faults import FaultConfig
from awsproxy.proxy import ProxyThread, run_in_thread
from tests.e2e.conftest import ACCOUNT, READ_ONLY, Driver, ProxiedSandbox, eventually, running

pytestmark = pytest.mark.e2e

CLUSTER_ID = "e2e-tenancy"
RESYNC = 300.0  # seconds: the drift pass never comes along during a test (see the module docstring)
REVOKE_WITHIN = 10.0  # seconds: issue 13's bound on a revocation
SEED = 1313
# What the operator writes to AWS, whoever for: a grant that is not permitted must cause none of them.
WRITES = ("SetRepositoryPolicy", "DeleteRepositoryPolicy", "AttachRolePolicy", "DetachRolePolicy", "TagRole",
          "UntagRole", "PutRolePolicy", "CreateRole")
CASE_LABEL = "tenancy.test/case"  # on every namespace of this module: which test it belongs to
GRANTS_LABEL = "tenancy.test/grants"  # what the policies of test_revocation select on

# Measured revocation times (seconds), printed at the end of the module.
MEASURED: dict[str, float] = {}


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyThread]:
    with run_in_thread("http://127.0.0.1:9", seed=SEED) as handle:  # upstream set once moto is up
        yield handle


@pytest.fixture(scope="module")
def tenancy_sandbox(tmp_path_factory: pytest.TempPathFactory, proxy: ProxyThread) -> Iterator[ProxiedSandbox]:
    sandbox = ProxiedSandbox(tmp_path_factory.mktemp("tenancy"), proxy, cluster_id=CLUSTER_ID, seed=True,
                             seed_policy=False, resync_interval=RESYNC)
    with running(sandbox):
        yield sandbox


@pytest.fixture
def tdriver(tenancy_sandbox: ProxiedSandbox, proxy: ProxyThread) -> Iterator[TenancyDriver]:
    proxy.set_faults(FaultConfig())
    yield TenancyDriver(tenancy_sandbox)


@pytest.fixture(scope="module", autouse=True)
def report_measurements(pytestconfig: pytest.Config) -> Iterator[None]:
    """Print the measured revocation times once the module is done (to the terminal, uncaptured)."""
    yield
    if not MEASURED:
        return
    lines = [f"revocation times measured (bound {REVOKE_WITHIN:.0f}s, first seen by polling):",
             *(f"  {what}: {seconds:.2f}s" for what, seconds in MEASURED.items())]
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print("\n" + "\n".join(lines), flush=True)


# -- helpers -------------------------------------------------------------------------------------------


class TenancyDriver(Driver):
    """The conftest's driver, for grants in any namespace, and for namespaces and policies."""

    def namespace(self, name: str, **labels: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels}})

    def label(self, namespace: str, *changes: str) -> None:
        self.kubectl("label", "namespace", namespace, "--overwrite", *changes)

    def grant_in(self, namespace: str, name: str) -> dict[str, Any]:
        done = self.kubectl("get", "ecraccessgrant", name, "-n", namespace, "-o", "json")
        return dict(json.loads(done.stdout))

    def egp(self, name: str) -> dict[str, Any] | None:
        done = self.kubectl("get", "egp", name, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def wait_for(self, namespace: str, name: str, condition: str, timeout: int = 60) -> dict[str, Any]:
        self.kubectl("wait", f"--for=condition={condition}", f"ecraccessgrant/{name}", "-n", namespace,
                     f"--timeout={timeout}s")
        return self.grant_in(namespace, name)

    def role_arn(self, role: str) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/{role}"


def grant_manifest(namespace: str, name: str, role: Mapping[str, str] | str, *repos: str,
                   **spec: Any) -> dict[str, Any]:
    """A grant in `namespace`; `role` is a role name or a `{name|arn|anyscaleCloudId: ...}` mapping."""
    return {
        "apiVersion": "ecraccess.io/v1alpha1",
        "kind": "EcrAccessGrant",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"role": {"name": role} if isinstance(role, str) else dict(role),
                 "repositories": [{"name": repo} for repo in repos], **spec},
    }


def policy_manifest(name: str, selector: Mapping[str, Any], roles: list[str], repositories: list[str],
                    **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ecraccess.io/v1alpha1",
        "kind": "EcrGrantPolicy",
        "metadata": {"name": name},
        "spec": {"namespaceSelector": dict(selector), "roles": roles, "repositories": repositories, **spec},
    }


def repo_arn(repo: str) -> str:
    return f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository/{repo}"


def conditions_of(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in (body.get("status") or {}).get("conditions", [])}


def not_permitted(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The grant's Ready condition when it is Ready=False/NotPermitted and Stalled=True; else None."""
    conditions = conditions_of(body)
    ready, stalled = conditions.get("Ready", {}), conditions.get("Stalled", {})
    if ready.get("status") == "False" and ready.get("reason") == "NotPermitted" and stalled.get("status") == "True":
        return ready
    return None


def ready(body: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    return (conditions_of(body).get("Ready", {}).get("status") == "True"
            and status.get("observedGeneration") == body["metadata"]["generation"])


def becomes_ready(driver: TenancyDriver, namespace: str, name: str) -> Callable[[], bool]:
    """A check for `eventually`/`within`: the grant is Ready (failing with its status, to say why not)."""
    def check() -> bool:
        body = driver.grant_in(namespace, name)
        assert ready(body), f"{namespace}/{name} is not Ready: {json.dumps(body.get('status'))}"
        return True
    return check


def principals(statement: Mapping[str, Any]) -> set[str]:
    raw = (statement.get("Principal") or {}).get("AWS", [])
    return {raw} if isinstance(raw, str) else set(raw)


def shared_principals(driver: Driver, repo: str) -> set[str]:
    """Every principal of this operator's shared statements in `repo`."""
    return {arn for item in driver.ours(repo) for arn in principals(item)}


def actions_for(driver: Driver, repo: str, arn: str) -> list[set[str]]:
    """The action sets of our statements in `repo` that name `arn`."""
    return [set(item["Action"]) if isinstance(item["Action"], list) else {item["Action"]}
            for item in driver.ours(repo) if arn in principals(item)]


def writes(proxy: ProxyThread) -> dict[str, int]:
    calls = proxy.stats()
    return {op: calls.count(op, outcome="forwarded") for op in WRITES}


def holds(check: Callable[[], bool], seconds: float, what: str) -> None:
    """`check()` stays true for `seconds` (polled twice a second)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.5)


def within(bound: float, checks: Mapping[str, Callable[[], bool]], label: str) -> dict[str, float]:
    """Poll every check until each has held once, all within `bound` seconds of now; record and
    return when each first held (seconds since the call)."""
    started = time.monotonic()
    first: dict[str, float] = {}
    last_errors: dict[str, str] = {}
    while time.monotonic() - started < bound:
        for what, check in checks.items():
            if what in first:
                continue
            try:
                if check():
                    first[what] = time.monotonic() - started
            except AssertionError as error:
                last_errors[what] = str(error)
        if len(first) == len(checks):
            break
        time.sleep(0.2)
    missing = [what for what in checks if what not in first]
    for what, seconds in first.items():
        MEASURED[f"{label}: {what}"] = seconds
    assert not missing, (f"{label}: not within {bound:.0f}s: {missing} (held: {first}; last errors: {last_errors})")
    return first


# -- 1. no policy selects the namespace ------------------------------------------------------------------


def test_no_policy_selects_the_namespace_so_nothing_is_permitted_or_written(
    tdriver: TenancyDriver, proxy: ProxyThread
) -> None:
    driver = tdriver
    namespace, role, repo = "tn-unselected", "tn-unselected-role", "tn-unselected/app"
    driver.namespace(namespace, **{CASE_LABEL: "unselected", "team": "nobody"})
    driver.create_role(role)
    driver.create_repository(repo)
    before = writes(proxy)

    driver.apply(grant_manifest(namespace, "app", role, repo))
    body = driver.wait_for(namespace, "app", "Stalled")

    condition = not_permitted(body)
    assert condition is not None, conditions_of(body)
    assert namespace in condition["message"], condition["message"]
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    assert [item["reason"] for item in body["status"]["repositories"]] == ["NotPermitted"]
    assert body["status"]["readyRepositories"] == "0/1"
    # Nothing in AWS, and the operator made no write at all while it judged the grant, then again
    # a little later (a retry or a re-check would show up here).
    holds(lambda: writes(proxy) == before, 3.0, f"the operator wrote to AWS: {before} -> {writes(proxy)}")
    assert driver.policy(repo) is None
    assert driver.attached(role) == set()
    tags = driver.iam.list_role_tags(RoleName=role)["Tags"]
    assert not [tag for tag in tags if tag["Key"].startswith("ecraccess.io/")], tags


# -- 2. some repositories permitted -----------------------------------------------------------------------


def test_only_the_permitted_repositories_are_written(tdriver: TenancyDriver) -> None:
    driver = tdriver
    namespace, role = "tn-some", "tn-some-role"
    allowed, refused = "tn-some/allowed", "tn-some/refused"
    driver.namespace(namespace, **{CASE_LABEL: "some"})
    arn = driver.role_arn(role)
    driver.create_role(role)
    driver.create_repository(allowed)
    driver.create_repository(refused)
    driver.apply(policy_manifest("tn-some", {"matchLabels": {CASE_LABEL: "some"}}, [arn],
                                 [f"arn:aws:ecr:*:{ACCOUNT}:repository/tn-some/allowed*"]))

    driver.apply(grant_manifest(namespace, "app", role, allowed, refused))

    def settled() -> dict[str, Any] | None:
        body = driver.grant_in(namespace, "app")
        status = body.get("status") or {}
        reasons = [item["reason"] for item in status.get("repositories", [])]
        return body if reasons == ["Applied", "NotPermitted"] else None

    body = eventually(settled, timeout=60, what="for one repository Applied and one NotPermitted")
    status = body["status"]
    assert status["readyRepositories"] == "1/2"
    assert [item["arn"] for item in status["repositories"]] == [repo_arn(allowed), repo_arn(refused)]
    assert [item["ready"] for item in status["repositories"]] == [True, False]
    assert namespace in status["repositories"][1]["message"]
    conditions = conditions_of(body)
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "NotPermitted", conditions
    assert status["roleArn"] == arn
    assert shared_principals(driver, allowed) == {arn}
    assert driver.policy(refused) is None
    assert READ_ONLY in driver.attached(role)  # the grant as a whole is permitted, with its managed policy


# -- 3. a role that no policy allows ----------------------------------------------------------------------


def test_a_role_no_policy_allows_is_not_permitted(tdriver: TenancyDriver) -> None:
    driver = tdriver
    namespace, repo = "tn-role", "tn-role/app"
    allowed, other = "tn-role-allowed", "tn-role-other"
    attacker = "arn:aws:iam::999999999999:role/attacker"
    driver.namespace(namespace, **{CASE_LABEL: "role"})
    driver.create_role(allowed)
    driver.create_role(other)
    driver.create_repository(repo)
    driver.apply(policy_manifest("tn-role", {"matchLabels": {CASE_LABEL: "role"}}, [driver.role_arn(allowed)],
                                 [f"arn:aws:ecr:*:{ACCOUNT}:repository/tn-role/*"]))

    driver.apply(grant_manifest(namespace, "allowed", allowed, repo))
    driver.apply(grant_manifest(namespace, "other", other, repo))
    driver.apply(grant_manifest(namespace, "attacker", {"arn": attacker}, repo, managedPolicy="None"))

    driver.wait_for(namespace, "allowed", "Ready")
    for name, arn in (("other", driver.role_arn(other)), ("attacker", attacker)):
        body = driver.wait_for(namespace, name, "Stalled")
        condition = not_permitted(body)
        assert condition is not None, (name, conditions_of(body))
        assert namespace in condition["message"] and arn in condition["message"], condition["message"]
        assert [item["reason"] for item in body["status"]["repositories"]] == ["NotPermitted"]
    # The repository holds only the permitted role, and the refused role got no managed policy.
    assert shared_principals(driver, repo) == {driver.role_arn(allowed)}
    assert READ_ONLY in driver.attached(allowed)
    assert driver.attached(other) == set()


# -- 4. write actions ---------------------------------------------------------------------------------------


def test_write_actions_need_a_policy_that_lists_them(tdriver: TenancyDriver) -> None:
    driver = tdriver
    namespace, role, repo = "tn-write", "tn-write-role", "tn-write/app"
    driver.namespace(namespace, **{CASE_LABEL: "write"})
    arn = driver.role_arn(role)
    driver.create_role(role)
    driver.create_repository(repo)

    def policy(*actions: str) -> dict[str, Any]:
        return policy_manifest("tn-write", {"matchLabels": {CASE_LABEL: "write"}}, [arn],
                               [f"arn:aws:ecr:*:{ACCOUNT}:repository/tn-write/*"], actions=list(actions))

    push = ["ecr:BatchGetImage", "ecr:PutImage"]
    driver.apply(policy())
    driver.apply(grant_manifest(namespace, "push", role, repo, actions=push))
    driver.apply(grant_manifest(namespace, "everything", role, repo, actions=["ecr:*"]))
    for name, action in (("push", "ecr:PutImage"), ("everything", "ecr:*")):
        body = driver.wait_for(namespace, name, "Stalled")
        condition = not_permitted(body)
        assert condition is not None, (name, conditions_of(body))
        assert namespace in condition["message"] and action in condition["message"], condition["message"]
    assert driver.policy(repo) is None
    generations = {name: driver.grant_in(namespace, name)["metadata"]["generation"] for name in ("push", "everything")}

    # The policy lists ecr:PutImage: the push grant becomes Ready without being touched; ecr:* is
    # still more than the policy allows.
    driver.apply(policy("ecr:PutImage"))
    eventually(becomes_ready(driver, namespace, "push"), timeout=REVOKE_WITHIN, interval=0.2,
               what="for the push grant to be re-judged after the policy change")
    assert actions_for(driver, repo, arn) == [set(push)]
    body = driver.grant_in(namespace, "everything")
    condition = not_permitted(body)
    assert condition is not None and "ecr:*" in condition["message"], conditions_of(body)

    # The policy allows every ECR action.
    driver.apply(policy("ecr:*"))
    eventually(becomes_ready(driver, namespace, "everything"), timeout=REVOKE_WITHIN, interval=0.2,
               what="for the ecr:* grant to be re-judged after the policy change")
    assert sorted(map(sorted, actions_for(driver, repo, arn))) == sorted([sorted(push), ["ecr:*"]])
    assert ready(driver.grant_in(namespace, "push"))
    assert {name: driver.grant_in(namespace, name)["metadata"]["generation"]
            for name in ("push", "everything")} == generations, "the grants were not edited"


# -- 5. managedPolicies: [None] -----------------------------------------------------------------------------


def test_a_policy_allowing_only_managed_policy_none(tdriver: TenancyDriver) -> None:
    driver = tdriver
    namespace, role, repo = "tn-mp", "tn-mp-role", "tn-mp/app"
    driver.namespace(namespace, **{CASE_LABEL: "mp"})
    arn = driver.role_arn(role)
    driver.create_role(role)
    driver.create_repository(repo)
    driver.apply(policy_manifest("tn-mp", {"matchLabels": {CASE_LABEL: "mp"}}, [arn],
                                 [f"arn:aws:ecr:*:{ACCOUNT}:repository/tn-mp/*"], managedPolicies=["None"]))

    driver.apply(grant_manifest(namespace, "app", role, repo))  # managedPolicy: ReadOnly (the default)
    body = driver.wait_for(namespace, "app", "Stalled")
    condition = not_permitted(body)
    assert condition is not None, conditions_of(body)
    assert namespace in condition["message"] and "ReadOnly" in condition["message"], condition["message"]
    assert driver.attached(role) == set()
    assert driver.policy(repo) is None

    driver.apply(grant_manifest(namespace, "app", role, repo, managedPolicy="None"))
    eventually(becomes_ready(driver, namespace, "app"), timeout=30, what="for the None grant to be Ready")
    assert shared_principals(driver, repo) == {arn}
    assert driver.attached(role) == set()
    assert driver.grant_in(namespace, "app")["status"]["managedPolicyArn"] == ""

    # PullOnly is not allowed either.
    driver.apply(grant_manifest(namespace, "app", role, repo, managedPolicy="PullOnly"))
    eventually(lambda: not_permitted(driver.grant_in(namespace, "app")), timeout=REVOKE_WITHIN, interval=0.2,
               what="for the PullOnly grant to be refused")
    eventually(lambda: driver.policy(repo) is None, timeout=REVOKE_WITHIN, interval=0.2,
               what="for the refused grant's statement to go")
    assert driver.attached(role) == set()


# -- 6. revocation, timed ------------------------------------------------------------------------------------


def test_revocation_by_narrowing_deleting_and_relabelling_is_timely_and_exact(tdriver: TenancyDriver) -> None:
    """Namespace A holds two grants on repository P: `a-shared` on role R (managedPolicy None), and
    `a-own` on role R2. Namespace B holds `b-shared`, on the same role R and repository P, with
    ReadOnly. Policy `tn-rev-a` permits A, policy `tn-rev-b` permits B (each namespace by its own
    label). The operator attached AmazonEC2ContainerRegistryReadOnly to both roles, to R for
    `b-shared` alone.

    - Narrowing `tn-rev-a`'s repositories revokes both A grants on P: R2 leaves P's statement, while
      R stays in it and keeps its managed policy (B's grant still wants them). The policy still
      allows both roles and ReadOnly, so the A grants as a whole stay permitted (DESIGN §5: the
      managed policy is judged per grant, not per repository): whether R2 keeps ReadOnly is not
      asserted here.
    - Deleting `tn-rev-b` revokes B's grant: now no permitted grant names R on P, so R leaves the
      statement, and no permitted grant wants ReadOnly on R (`a-shared` wants None), so it is
      detached. Re-creating the policy restores both.
    - Removing B's label (so no policy selects it) revokes the same way; labelling it again restores.
    """
    driver = tdriver
    ns_a, ns_b = "tn-rev-a", "tn-rev-b"
    role, own_role, repo = "tn-rev-role", "tn-rev-own-role", "tn-rev/app"
    driver.namespace(ns_a, **{CASE_LABEL: "revocation", GRANTS_LABEL: "rev-a"})
    driver.namespace(ns_b, **{CASE_LABEL: "revocation", GRANTS_LABEL: "rev-b"})
    arn, own_arn = driver.create_role(role), driver.create_role(own_role)
    driver.create_repository(repo)
    glob = f"arn:aws:ecr:*:{ACCOUNT}:repository/tn-rev/*"
    policy_a = policy_manifest("tn-rev-a", {"matchLabels": {GRANTS_LABEL: "rev-a"}}, [arn, own_arn], [glob])
    policy_b = policy_manifest("tn-rev-b", {"matchExpressions": [
        {"key": GRANTS_LABEL, "operator": "In", "values": ["rev-b"]}]}, [arn], [glob])
    driver.apply(policy_a)
    driver.apply(policy_b)
    driver.apply(grant_manifest(ns_a, "a-shared", role, repo, managedPolicy="None"))
    driver.apply(grant_manifest(ns_a, "a-own", own_role, repo))
    driver.apply(grant_manifest(ns_b, "b-shared", role, repo))
    for namespace, name, managed in ((ns_a, "a-shared", ""), (ns_a, "a-own", READ_ONLY), (ns_b, "b-shared", READ_ONLY)):
        body = driver.wait_for(namespace, name, "Ready")
        assert body["status"]["managedPolicyArn"] == managed, (name, body["status"])
        assert body["status"]["managedPolicyOwned"] is bool(managed), (name, body["status"])
    assert shared_principals(driver, repo) == {arn, own_arn}
    assert READ_ONLY in driver.attached(role) and READ_ONLY in driver.attached(own_role)

    def refused(namespace: str, name: str) -> Callable[[], bool]:
        def check() -> bool:
            condition = not_permitted(driver.grant_in(namespace, name))
            return condition is not None and namespace in condition["message"]
        return check

    def permitted(namespace: str, name: str) -> Callable[[], bool]:
        return becomes_ready(driver, namespace, name)

    def absent(who: str) -> Callable[[], bool]:
        return lambda: who not in shared_principals(driver, repo)

    def detached(name: str) -> Callable[[], bool]:
        return lambda: READ_ONLY not in driver.attached(name)

    def b_still_has_its_access() -> bool:
        body = driver.grant_in(ns_b, "b-shared")
        assert ready(body), f"b-shared is no longer Ready: {json.dumps(body.get('status'))}"
        assert arn in shared_principals(driver, repo), f"R left the statement: {driver.ours(repo)}"
        assert READ_ONLY in driver.attached(role), f"R's ReadOnly was detached: {driver.attached(role)}"
        return True

    # (a) Narrow tn-rev-a to other repositories.
    driver.apply({**policy_a, "spec": {**policy_a["spec"], "repositories": [
        f"arn:aws:ecr:*:{ACCOUNT}:repository/tn-rev-elsewhere/*"]}})
    within(REVOKE_WITHIN, {"a-shared NotPermitted": refused(ns_a, "a-shared"),
                           "a-own NotPermitted": refused(ns_a, "a-own"),
                           "R2 left the statement": absent(own_arn)}, "narrowing")
    for name in ("a-shared", "a-own"):
        reasons = [item["reason"] for item in driver.grant_in(ns_a, name)["status"]["repositories"]]
        assert reasons == ["NotPermitted"], (name, reasons)
    # The grant on the same role and repository in B is still permitted: it keeps its access.
    holds(b_still_has_its_access, 2.0, "b-shared lost its access when tn-rev-a was narrowed")
    assert shared_principals(driver, repo) == {arn}

    # (b) Delete tn-rev-b: no permitted grant names R any more.
    driver.kubectl("delete", "egp", "tn-rev-b", "--timeout=30s")
    within(REVOKE_WITHIN, {"b-shared NotPermitted": refused(ns_b, "b-shared"),
                           "R left the statement": absent(arn),
                           "R's ReadOnly detached": detached(role)}, "deleting the policy")
    assert driver.ours(repo) == []

    # Granting again restores it.
    driver.apply(policy_b)
    within(30, {"b-shared Ready": permitted(ns_b, "b-shared"),
                "R back in the statement": lambda: shared_principals(driver, repo) == {arn},
                "R's ReadOnly attached": lambda: READ_ONLY in driver.attached(role)}, "re-creating the policy")

    # (c) Remove B's label: no policy selects the namespace.
    driver.label(ns_b, f"{GRANTS_LABEL}-")
    within(REVOKE_WITHIN, {"b-shared NotPermitted": refused(ns_b, "b-shared"),
                           "R left the statement": absent(arn),
                           "R's ReadOnly detached": detached(role)}, "removing the namespace label")
    assert driver.ours(repo) == []

    # Labelling it again, and widening tn-rev-a again, restores all three.
    driver.label(ns_b, f"{GRANTS_LABEL}=rev-b")
    driver.apply(policy_a)
    within(30, {"b-shared Ready": permitted(ns_b, "b-shared"),
                "a-shared Ready": permitted(ns_a, "a-shared"),
                "a-own Ready": permitted(ns_a, "a-own"),
                "R and R2 back in the statement": lambda: shared_principals(driver, repo) == {arn, own_arn},
                "ReadOnly attached to R and R2": lambda: (READ_ONLY in driver.attached(role)
                                                          and READ_ONLY in driver.attached(own_role))},
           "relabelling and widening")


# -- 7. the policy's own status --------------------------------------------------------------------------------


def test_policy_status_and_validation(tdriver: TenancyDriver) -> None:
    """A valid policy is Ready=True/Valid with observedGeneration, on every generation.

    A malformed glob or selector never reaches the operator: the CRD's schema checks the same rules
    as `tenancy.parse_policy` (the glob pattern, the CEL rules on matchExpressions), so the API server
    refuses it at `kubectl apply` and there is no policy that the schema accepts and the operator
    reports as InvalidPolicy. What is tested here is that refusal."""
    driver = tdriver
    selector = {"matchLabels": {CASE_LABEL: "status"}}
    repos = [f"arn:aws:ecr:*:{ACCOUNT}:repository/tn-status/*"]
    policy = policy_manifest("tn-status", selector, [driver.role_arn("tn-status-role")], repos)
    driver.apply(policy)

    def valid(generation: int) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            body = driver.egp("tn-status")
            assert body is not None
            status = body.get("status") or {}
            condition = conditions_of(body).get("Ready", {})
            done = (body["metadata"]["generation"] == generation and status.get("observedGeneration") == generation
                    and condition.get("status") == "True" and condition.get("reason") == "Valid"
                    and condition.get("observedGeneration") == generation)
            return body if done else None
        return check

    eventually(valid(1), timeout=30, what="for the policy to be Ready with observedGeneration 1")
    table = driver.kubectl("get", "egp", "tn-status", "--no-headers").stdout.split()
    assert table[:2] == ["tn-status", "True"], table

    driver.apply({**policy, "spec": {**policy["spec"], "managedPolicies": ["None"]}})
    eventually(valid(2), timeout=30, what="for the edited policy to be Ready with observedGeneration 2")

    for field, spec, message in (
        ("spec.roles[0]", {"roles": ["arn:aws:iam::123456789012:role/team?"]}, "should match"),
        ("spec.repositories[0]", {"repositories": ["tn-status/*"]}, "start it with arn:"),
        ("spec.actions[0]", {"actions": ["ecr:Put Image"]}, "should match"),
        ("spec.namespaceSelector.matchExpressions[0]",
         {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": []}]}},
         "values must not be empty"),
    ):
        bad = policy_manifest("tn-status-invalid", selector, [driver.role_arn("tn-status-role")], repos)
        bad["spec"].update(spec)
        done = driver.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
        assert done.returncode != 0, (field, done.stdout)
        assert field in done.stderr and message in done.stderr, (field, done.stderr)
        assert driver.egp("tn-status-invalid") is None
