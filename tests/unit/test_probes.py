"""The readiness probe's server: what a kubelet sees before and after the operator is ready."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from ecr_access import probes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served() -> Iterator[tuple[str, probes.Readiness]]:
    readiness = probes.Readiness()
    url = f"http://127.0.0.1:{free_port()}/readyz"
    server = probes.serve(url, readiness)
    try:
        yield url, readiness
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_not_ready_until_aws_answered_and_the_indexes_are_complete(served: tuple[str, probes.Readiness]) -> None:
    url, readiness = served
    code, body = get(url)
    assert code == 503 and body["ready"] is False and len(body["waitingFor"]) == 2  # type: ignore[arg-type]

    readiness.aws_answered = True
    code, body = get(url)
    assert code == 503 and body["waitingFor"] == ["kopf to list every grant, policy, namespace and account"]

    readiness.indexes_complete = True
    assert get(url) == (200, {"ready": True})


def test_another_path_is_not_the_probe(served: tuple[str, probes.Readiness]) -> None:
    url, readiness = served
    readiness.aws_answered = readiness.indexes_complete = True
    code, _ = get(url.replace("/readyz", "/healthz"))
    assert code == 404


@pytest.mark.parametrize("endpoint", ["https://0.0.0.0:8081/readyz", "http://0.0.0.0/readyz", "0.0.0.0:8081"])
def test_an_endpoint_it_cannot_serve_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="http://HOST:PORT/PATH"):
        probes.serve(endpoint, probes.Readiness())


def test_a_taken_port_fails_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            probes.serve(f"http://127.0.0.1:{taken.getsockname()[1]}/readyz", probes.Readiness())
