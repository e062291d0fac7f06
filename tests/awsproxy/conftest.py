"""Fixtures for the proxy's own tests: a moto server in a thread, a fresh proxy per test in front
of it, and boto3 clients that talk to either.

Clients make exactly one attempt per call (no SDK retries), so that one call is one request and
the proxy's counts can be asserted exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from awsproxy.proxy import ProxyThread, run_in_thread

REGION = "us-west-2"
ONE_ATTEMPT = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10)

ClientFactory = Callable[..., Any]


@pytest.fixture(scope="package")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def proxy(moto_url: str) -> Iterator[ProxyThread]:
    with run_in_thread(moto_url, seed=7) as handle:
        yield handle


def make_client(service: str, url: str, config: Config = ONE_ATTEMPT) -> Any:
    session: Any = boto3.session.Session()
    return session.client(
        service, endpoint_url=url, region_name=REGION, config=config,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


@pytest.fixture
def via_proxy(proxy: ProxyThread) -> ClientFactory:
    """`via_proxy("ecr")`: a one-attempt boto3 client whose requests go through the proxy."""
    return lambda service, config=ONE_ATTEMPT: make_client(service, proxy.url, config)


@pytest.fixture
def direct(moto_url: str) -> ClientFactory:
    """`direct("ecr")`: a boto3 client that talks to moto itself, bypassing the proxy."""
    return lambda service: make_client(service, moto_url)
