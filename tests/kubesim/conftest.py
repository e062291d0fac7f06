"""Fixtures for kubesim's own tests: a fresh server per test on a free 127.0.0.1 port, and the real kubectl."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubesim_helpers import KUBECTL, WIDGET_CRD, Client, Kubectl

from kubesim import server


@pytest.fixture
def sim() -> Iterator[server.ThreadHandle]:
    """A fresh kubesim on a free 127.0.0.1 port, stopped after the test."""
    handle = server.run_in_thread(port=0, bookmark_interval=0.5)
    yield handle
    handle.stop()


@pytest.fixture
def client(sim: server.ThreadHandle) -> Client:
    return Client(sim.url)


@pytest.fixture
def crd(client: Client) -> dict[str, Any]:
    """The Widget CRD, installed."""
    status, body, _ = client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert status == 201, body
    return dict(body)


@pytest.fixture
def kubectl(sim: server.ThreadHandle, tmp_path: pathlib.Path) -> Kubectl:
    if not pathlib.Path(KUBECTL).exists():
        pytest.fail("kubectl is required for kubesim's tests")
    config = tmp_path / "kubeconfig"
    server.write_kubeconfig(config, sim.url)
    return Kubectl(config, tmp_path / "cache")
