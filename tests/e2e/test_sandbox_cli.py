"""`ecr-access-operator sandbox` as others script against it: its files, and a prompt, clean stop."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from ecr_sandbox.kubectl import run_kubectl
from ecr_sandbox.sandbox import read_env_file

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return pathlib.Path(f"/proc/{pid}/status").exists() and "zombie" not in pathlib.Path(
        f"/proc/{pid}/status").read_text()


def test_the_sandbox_writes_its_contract_files_and_stops_everything_within_10_seconds(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "sb"
    proc = subprocess.Popen([sys.executable, "-m", "ecr_access.cli", "sandbox", "--empty", "--dir", str(directory),
                             "--resync-interval", "5", "--cluster-id", "cli-test"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (directory / "ready").exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the sandbox did not become ready"
            time.sleep(0.2)
        env = read_env_file(directory / "aws.env")
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(env)
        kubeconfig = (directory / "kubeconfig").read_text()
        assert "http://127.0.0.1:" in kubeconfig
        get = run_kubectl("get", "ecrgrants", kubeconfig=directory / "kubeconfig", timeout=30, check=False)
        assert get.returncode == 0, get.stderr  # the CRD is installed; --empty applied no grants
        pids = [int((directory / f"{name}.pid").read_text()) for name in ("operator", "kubesim", "moto")]
        assert all(alive(pid) for pid in pids)

        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - stopping < 10
        assert proc.returncode == 0
        assert not any(alive(pid) for pid in pids), "every process the sandbox started is gone"
        assert not (directory / "ready").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_sandbox_keeps_restarting_an_operator_that_dies_during_its_restart(tmp_path: pathlib.Path) -> None:
    """Like a Deployment (CrashLoopBackOff): an operator that fails to start again is retried with a
    back-off, and kubesim and moto, with all their state, stay up meanwhile."""
    from ecr_sandbox.sandbox import Sandbox  # noqa: PLC0415
    from tests.e2e.conftest import eventually, running  # noqa: PLC0415

    sandbox = Sandbox(tmp_path / "sb", seed=False, apply_examples=False, resync_interval=5, cluster_id="backoff")
    with running(sandbox) as sb:
        servers = [sb.kubesim, sb.moto]
        sb.operator_env_overrides["ECR_ACCESS_RESYNC_INTERVAL"] = "not-a-number"  # every start now fails
        assert sb.operator is not None
        os.kill(sb.operator.pid, signal.SIGKILL)
        eventually(lambda: sb.operator_start_failures >= 2, timeout=30, what="for restarts to fail twice")
        assert all(proc is not None and proc.poll() is None for proc in servers), "the servers stay up"

        del sb.operator_env_overrides["ECR_ACCESS_RESYNC_INTERVAL"]  # fixed: the next try starts it

        eventually(lambda: sb.operator is not None and sb.operator.poll() is None and sb.operator_healthy(),
                   timeout=60, what="for the operator to be running again")
        assert [sb.kubesim, sb.moto] == servers
