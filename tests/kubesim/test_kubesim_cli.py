"""`python -m kubesim`: the process the sandbox launcher starts, its kubeconfig and its graceful stop."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import yaml
from kubesim_helpers import Client, Kubectl

OPERATOR_DIR = pathlib.Path(__file__).resolve().parents[2] / "operator"


@pytest.fixture
def process(tmp_path: pathlib.Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(OPERATOR_DIR)}
    child = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "--port", "0", "--kubeconfig", str(tmp_path / "kubeconfig")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    yield child
    if child.poll() is None:
        child.kill()  # only the child this fixture started, by its own handle
        child.wait(timeout=5)


def test_cli_serves_writes_kubeconfig_and_stops_on_sigterm(
    process: subprocess.Popen[str], tmp_path: pathlib.Path
) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.fullmatch(r"kubesim listening on (http://127\.0\.0\.1:(\d+))\n", line)
    assert match, line
    url = match.group(1)
    config = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    assert config["current-context"] == "kubesim"
    assert config["clusters"][0]["cluster"]["server"] == url
    assert config["users"][0]["user"]["token"]
    listed = Kubectl(tmp_path / "kubeconfig", tmp_path / "cache")("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/default" in listed and "namespace/kube-system" in listed

    client = Client(url)
    rv = client.get("/api/v1/namespaces")[1]["metadata"]["resourceVersion"]
    watch = client.stream(f"/api/v1/namespaces?watch=true&resourceVersion={rv}")  # open watches must not block stop
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert watch.next() is None
    watch.close()
    assert "kubesim stopped" in process.stdout.read()


def test_cli_stops_on_sigint(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    assert process.stdout.readline().startswith("kubesim listening on http://127.0.0.1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
