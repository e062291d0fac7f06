"""End-to-end fixtures: the real operator process, kubesim and a moto server, driven with kubectl.

One sandbox serves the whole module (starting it takes a few seconds); each test uses its own grant
and repository names so tests do not see each other's state. The sandbox restarts the operator if
it dies, as a Deployment would, which is what the crash test relies on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from ecr_sandbox.kubectl import run_kubectl
from ecr_sandbox.sandbox import Sandbox
from ecr_sandbox.seed import NODE_TRUST_POLICY, repository_policy, repository_statements

RESYNC = 3.0  # seconds: short, so drift repair and "status stays quiet" are observable in a test
CLUSTER_ID = "e2e-cluster"
ACCOUNT = "123456789012"
REGION = "us-west-2"
NODE_ROLE = "cld_sandbox123-cluster_node_role"
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("kubectl") is None:
        raise pytest.UsageError("kubectl is required for tests/e2e (it is installed on every CI machine)")


LOG_TAIL = 120  # lines of the operator's log a failed test's report carries


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report carries the tail of each of its sandboxes' operator logs: the sandbox's
    directory is gone by the time a CI failure is read, and a timeout says nothing of why."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    values = getattr(item, "funcargs", {}).values()
    sandboxes = {id(sb): sb for sb in (getattr(value, "sandbox", value) for value in values) if isinstance(sb, Sandbox)}
    for sb in sandboxes.values():
        path = sb.dir / "operator.log"
        with contextlib.suppress(OSError):
            tail = path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
            report.sections.append((f"operator log ({path}, last {len(tail)} lines)", "\n".join(tail)))


class Driver:
    """kubectl and boto3 against one sandbox, with the waits end-to-end tests need."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.ecr = sandbox.aws("ecr")
        self.iam = sandbox.aws("iam")

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> Any:
        return run_kubectl(*args, kubeconfig=self.sandbox.kubeconfig, stdin=stdin, check=check, timeout=90,
                           failure=AssertionError)

    def apply(self, manifest: dict[str, Any], check: bool = True) -> Any:
        return self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=check)

    def get(self, name: str) -> dict[str, Any] | None:
        done = self.kubectl("get", "ecraccessgrant", name, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def wait_ready(self, name: str, timeout: int = 60) -> dict[str, Any]:
        self.kubectl("wait", "--for=condition=Ready", f"ecraccessgrant/{name}", f"--timeout={timeout}s")
        body = self.get(name)
        assert body is not None
        return body

    def policy(self, repo: str) -> dict[str, Any] | None:
        return repository_policy(self.ecr, repo)

    def statements(self, repo: str) -> list[dict[str, Any]]:
        return repository_statements(self.ecr, repo)

    def ours(self, repo: str) -> list[dict[str, Any]]:
        return [item for item in self.statements(repo) if str(item.get("Sid", "")).startswith("EcrAccessGrant")]

    def create_repository(self, name: str, policy: dict[str, Any] | None = None) -> None:
        self.ecr.create_repository(repositoryName=name)
        if policy is not None:
            self.ecr.set_repository_policy(repositoryName=name, policyText=json.dumps(policy))

    def create_role(self, name: str) -> str:
        trust = json.dumps(NODE_TRUST_POLICY)
        return str(self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"])

    def attached(self, role: str) -> set[str]:
        answer = self.iam.list_attached_role_policies(RoleName=role)
        return {item["PolicyArn"] for item in answer["AttachedPolicies"]}

    def kill_operator(self) -> int:
        """SIGKILL the operator by its PID (we started it); the sandbox restarts it."""
        proc = self.sandbox.operator
        assert proc is not None
        pid = proc.pid
        os.kill(pid, signal.SIGKILL)
        return pid


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25, what: str = "") -> Any:
    """Poll until `check()` returns something truthy; fail with the last value or error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s {what}: last={last!r}")


def grant(name: str, *repos: str, role: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ecraccess.io/v1alpha1",
        "kind": "EcrAccessGrant",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"role": role or {"anyscaleCloudId": "cld_sandbox123"},
                 "repositories": [{"name": repo} for repo in repos], **spec},
    }


@contextlib.contextmanager
def running(sb: Sandbox) -> Iterator[Sandbox]:
    """Start a sandbox and supervise it in a thread (restarting its operator when it dies); stop it
    on exit, and fail if kubesim or the moto server died meanwhile."""
    failure: list[BaseException] = []
    with sb:

        def supervise() -> None:
            try:
                sb.supervise()
            except BaseException as error:  # reported when the sandbox stops
                failure.append(error)

        thread = threading.Thread(target=supervise, name="sandbox-supervisor", daemon=True)
        thread.start()
        yield sb
    thread.join(timeout=5)
    assert not failure, f"the sandbox failed: {failure[0]}"


class ProxiedSandbox(Sandbox):
    """The sandbox, with the operator's AWS traffic (only the operator's) routed through `proxy`
    (awsproxy: faults injected and calls counted there; the tests' own clients talk to moto).

    The proxy must exist before the operator's environment is fixed, but moto picks its port only
    inside `start()`; so the proxy starts first, and learns its upstream just before each operator
    start, restarts included.
    """

    def __init__(self, directory: Any, proxy: Any, *, cluster_id: str, seed: bool = True,
                 seed_policy: bool | None = None, resync_interval: float = RESYNC) -> None:
        super().__init__(
            directory, seed=seed, seed_policy=seed_policy, apply_examples=False, resync_interval=resync_interval,
            cluster_id=cluster_id,
            # Transient failures are retried after 2 s rather than 15 s, so that a test under faults
            # takes seconds; the behaviour under test does not depend on the delay.
            operator_env={"AWS_ENDPOINT_URL": proxy.url, "ECR_ACCESS_RETRY_DELAY": "2"},
        )
        self.proxy = proxy
        self.live_pid: int | None = None  # the operator whose liveness endpoint has answered

    def start_operator(self) -> None:
        self.proxy.set_upstream(self.aws_env["AWS_ENDPOINT_URL"])
        super().start_operator()  # returns once the operator's liveness endpoint answers
        assert self.operator is not None
        self.live_pid = self.operator.pid


def restarted(sandbox: ProxiedSandbox, killed_pid: int) -> bool:
    """A new operator is up and live (the sandbox restarts a killed one, as a Deployment would)."""
    operator = sandbox.operator
    return (operator is not None and operator.pid != killed_pid and operator.poll() is None
            and sandbox.live_pid == operator.pid)


@pytest.fixture(scope="package")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("sandbox")
    with running(Sandbox(directory, seed=True, apply_examples=False, resync_interval=RESYNC,
                         cluster_id=CLUSTER_ID)) as sb:
        yield sb


@pytest.fixture
def driver(sandbox: Sandbox) -> Driver:
    return Driver(sandbox)
