"""The proxy itself: forward each request to the upstream, or answer it with a fault instead.

Why a proxy rather than patching boto3: the code under test runs as its own process (the real
operator), and its SDK retries, connection pool and error classification must all see the faults
the way they would see AWS's. Pointing its `AWS_ENDPOINT_URL` at this proxy is the only change it
needs, and whatever talks to the upstream directly (a test's own boto3 clients) stays unaffected.

In validating mode (`validate_principals`), a SetRepositoryPolicy naming a role that does not
exist upstream is refused the way ECR refuses it (`principals`): moto would accept it.

Control endpoints, not forwarded and not counted:
- `GET /__awsproxy__/stats`: the counts (see `stats`), as JSON;
- `GET|POST /__awsproxy__/config`: read or replace the fault rates (a `FaultConfig` as JSON);
- `POST /__awsproxy__/reset`: zero the counts and re-seed the random draws (`{"seed": n}` optional).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from awsproxy import principals, protocol, stats
from awsproxy.faults import NO_FAULTS, Decision, Fault, FaultConfig, Rates, decide

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/__awsproxy__"
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})
# Sent as the client sent them, or not at all: aiohttp must not add its own.
_CLIENT_AUTO_HEADERS = ("Content-Type", "Accept-Encoding", "User-Agent")
# aiohttp's server writes these itself; copying the upstream's would send them twice.
_SERVER_OWN_HEADERS = frozenset({"date", "server"})
_MAX_BODY = 100 * 1024 * 1024


class AwsProxy:
    """A fault-injecting reverse proxy in front of one upstream (a moto server URL)."""

    def __init__(self, upstream: str, *, faults: FaultConfig = NO_FAULTS, seed: int | None = None,
                 validate_principals: bool = False, account: str = "123456789012", timeline: bool = False) -> None:
        """`timeline`: also keep each request's arrival time (`calls`)."""
        self.upstream = upstream.rstrip("/")
        self.validate_principals = validate_principals
        self.account = account  # the one account the upstream serves (moto's default)
        self._faults = faults
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # config and RNG are also reached from other threads
        self._counter = stats.Counter(timeline=timeline)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.url: str | None = None

    # -- state, safe from any thread ----------------------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        with self._lock:
            return self._faults

    def set_faults(self, config: FaultConfig) -> None:
        with self._lock:
            self._faults = config

    def calls(self) -> list[stats.Arrival]:
        """Each request since the last reset, as it arrived (empty unless started with `timeline`)."""
        return self._counter.timeline()

    def stats(self) -> stats.Stats:
        return self._counter.snapshot()

    def set_upstream(self, upstream: str) -> None:
        """Point the proxy at another upstream, e.g. once the emulator behind it has picked its port."""
        self.upstream = upstream.rstrip("/")

    def reset(self, seed: int | None = None) -> None:
        """Zero the counts and restart the random draws from `seed` (default: the seed given at start)."""
        with self._lock:
            if seed is not None:
                self._seed = seed
            self._rng = random.Random(self._seed)
            self._counter.reset()

    def _decide(self, call: protocol.Call) -> Decision:
        with self._lock:
            return decide(self._rng, self._faults.for_call(call.service, call.operation))

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0: a free port) and return the proxy's URL."""
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_get(f"{CONTROL_PREFIX}/stats", self._get_stats)
        app.router.add_get(f"{CONTROL_PREFIX}/config", self._get_config)
        app.router.add_post(f"{CONTROL_PREFIX}/config", self._post_config)
        app.router.add_post(f"{CONTROL_PREFIX}/reset", self._post_reset)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._client = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=120),
            connector=aiohttp.TCPConnector(limit=64),
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- the data path ------------------------------------------------------------------------------

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        call = protocol.identify(request.method, request.path, request.query_string, request.headers, body)
        decision = self._decide(call)
        if (self.validate_principals and decision.fault in (None, Fault.DROP_AFTER)
                and (call.service, call.operation) == ("ecr", "SetRepositoryPolicy")):
            missing = await self._missing_roles(body)
            if missing:  # what ECR answers; moto would have taken it
                self._counter.add(call.service, call.operation, ["total", "refused_principal"], call.cause,
                                  call.subject)
                logger.info("awsproxy: refusing SetRepositoryPolicy naming missing roles %s", missing)
                return _error(protocol.error_answer(call, principals.REFUSAL))
        outcomes = ["total"]
        if decision.delay:
            outcomes.append("delayed")
        if decision.fault is not None:
            outcomes.append(decision.fault.value)
        if decision.fault in (None, Fault.DROP_AFTER):
            outcomes.append("forwarded")
        self._counter.add(call.service, call.operation, outcomes, call.cause, call.subject)
        if decision.delay:
            await asyncio.sleep(decision.delay)

        if decision.fault is Fault.DROP:
            return _drop(request)
        if decision.fault is Fault.THROTTLE:
            return _error(protocol.error_answer(call, protocol.THROTTLING))
        if decision.fault is Fault.ERROR:
            return _error(protocol.error_answer(call, protocol.SERVER_ERROR))

        assert self._client is not None, "start() first"
        headers = {key: value for key, value in request.headers.items() if key.lower() not in _HOP_BY_HOP}
        try:
            async with self._client.request(
                request.method, f"{self.upstream}{request.rel_url}", headers=headers, data=body or None,
                allow_redirects=False, skip_auto_headers=_CLIENT_AUTO_HEADERS,
            ) as upstream:
                payload = await upstream.read()
                status = upstream.status
                answer_headers = [(k, v) for k, v in upstream.headers.items()
                                  if k.lower() not in _HOP_BY_HOP | _SERVER_OWN_HEADERS]
        except (TimeoutError, aiohttp.ClientError) as error:
            self._counter.add(call.service, call.operation, ["upstream_error"])
            logger.warning("awsproxy: upstream %s failed for %s: %s", self.upstream, call.operation, error)
            return _error(protocol.error_answer(call, protocol.UPSTREAM_FAILURE))
        if decision.fault is Fault.DROP_AFTER:
            return _drop(request)
        response = web.Response(status=status, body=payload)
        for key, value in answer_headers:
            response.headers.add(key, value)
        return response

    async def _missing_roles(self, body: bytes) -> list[str]:
        """The role principals of a SetRepositoryPolicy that the upstream's IAM does not have."""
        assert self._client is not None, "start() first"
        missing = []
        for arn, account, name in principals.role_principals(body):
            if account != self.account:
                missing.append(arn)
                continue
            form = {"Action": "GetRole", "RoleName": name, "Version": "2010-05-08"}
            auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host"
            async with self._client.post(f"{self.upstream}/", data=form, headers={"Authorization": auth}) as answer:
                if answer.status != 200:
                    missing.append(arn)
        return missing

    # -- control ------------------------------------------------------------------------------------

    async def _get_stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats().to_json())

    async def _get_config(self, _: web.Request) -> web.Response:
        return web.json_response(self.faults.to_json())

    async def _post_config(self, request: web.Request) -> web.Response:
        try:
            raw = await request.json()
            if not isinstance(raw, Mapping):
                raise ValueError("the config must be a JSON object")
            config = FaultConfig.from_json(raw)
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            return web.json_response({"error": str(error)}, status=400)
        self.set_faults(config)
        return web.json_response(config.to_json())

    async def _post_reset(self, request: web.Request) -> web.Response:
        raw: Any = {}
        if request.can_read_body:
            try:
                raw = await request.json()
            except ValueError as error:
                return web.json_response({"error": str(error)}, status=400)
        seed = raw.get("seed") if isinstance(raw, Mapping) else None
        self.reset(seed=int(seed) if seed is not None else None)
        return web.json_response({"reset": True})


def _drop(request: web.Request) -> web.Response:
    """Close the connection without a response; what is returned goes nowhere."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=599)


def _error(answer: protocol.ErrorAnswer) -> web.Response:
    return web.Response(status=answer.status, headers=dict(answer.headers), body=answer.body)


class ProxyThread:
    """An `AwsProxy` serving from its own thread and event loop, for synchronous callers (tests).

    Use it as a context manager, or call `stop()`.
    """

    def __init__(self, proxy: AwsProxy, host: str, port: int, timeout: float = 10.0) -> None:
        self.proxy = proxy
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="awsproxy", daemon=True)
        self._thread.start()
        self.url: str = asyncio.run_coroutine_threadsafe(proxy.start(host, port), self._loop).result(timeout)

    def calls(self) -> list[stats.Arrival]:
        return self.proxy.calls()

    def stats(self) -> stats.Stats:
        return self.proxy.stats()

    def set_faults(self, config: FaultConfig | None = None, **rates: Any) -> None:
        """Replace the fault rates: pass a FaultConfig, or its fields as keywords."""
        self.proxy.set_faults(config if config is not None else FaultConfig(**rates))

    def reset(self, seed: int | None = None) -> None:
        self.proxy.reset(seed)

    def set_upstream(self, upstream: str) -> None:
        self.proxy.set_upstream(upstream)

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop.close()

    def __enter__(self) -> ProxyThread:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def run_in_thread(
    upstream: str,
    *,
    faults: FaultConfig = NO_FAULTS,
    seed: int | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    validate_principals: bool = False,
    timeline: bool = False,
) -> ProxyThread:
    """Start a proxy in a background thread and return its handle once it listens."""
    return ProxyThread(AwsProxy(upstream, faults=faults, seed=seed, validate_principals=validate_principals,
                                timeline=timeline), host, port)


__all__ = ["AwsProxy", "Fault", "FaultConfig", "ProxyThread", "Rates", "run_in_thread"]
