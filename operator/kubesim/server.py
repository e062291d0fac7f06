"""Running kubesim: an aiohttp server on 127.0.0.1, in the current event loop or in a background thread.

Tests and the sandbox launcher start it here; `python -m kubesim` is a thin CLI over the same class.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import pathlib
import threading
from typing import Any

import yaml
from aiohttp import web

from kubesim import api, resources, routes, store

LOOPBACK = "127.0.0.1"
logger = logging.getLogger(__name__)


class KubeSim:
    """One emulated cluster: its objects live as long as this instance."""

    def __init__(
        self,
        *,
        bookmark_interval: float = 60.0,
        watch_timeout: float = 1800.0,
        history_size: int = 10_000,
    ) -> None:
        self.registry = resources.Registry()
        self.store = store.Store(history_size=history_size)
        self.api = api.Api(self.registry, self.store)
        self.routes = routes.Routes(
            self.api, routes.WatchSettings(bookmark_interval=bookmark_interval, default_timeout=watch_timeout)
        )
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = LOOPBACK, port: int = 0) -> str:
        """Listen on 127.0.0.1 (port 0 picks a free one) and return the base URL."""
        if host not in (LOOPBACK, "localhost"):
            raise ValueError("kubesim listens on 127.0.0.1 only")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.routes.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, port)
        await site.start()
        bound = self._runner.addresses[0][1]  # the real port when 0 was asked for
        self.url = f"http://{LOOPBACK}:{bound}"
        return self.url

    async def stop(self) -> None:
        """Close open watches, then the listener; idempotent."""
        self.routes.stopping = True
        self.store.close_watchers()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


@dataclasses.dataclass
class ThreadHandle:
    """A KubeSim running on its own event loop in a daemon thread."""

    url: str
    sim: KubeSim
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def call(self, function: Any, *args: Any) -> Any:
        """Run a plain function on the server's loop (e.g. to inspect `sim.store`) and return its result."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function(*args))
            except Exception as error:  # handed back to the calling thread
                future.set_exception(error)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and join its thread."""
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(timeout=timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=timeout)


def run_in_thread(port: int = 0, **options: Any) -> ThreadHandle:
    """Start a KubeSim in a background thread; `options` go to `KubeSim(...)`."""
    loop = asyncio.new_event_loop()
    sim = KubeSim(**options)
    started: concurrent.futures.Future[str] = concurrent.futures.Future()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(sim.start(LOOPBACK, port)))
        except Exception as error:  # surfaced to the caller of run_in_thread
            started.set_exception(error)
            return
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, name="kubesim", daemon=True)
    thread.start()
    url = started.result(timeout=30)
    return ThreadHandle(url, sim, loop, thread)


def write_kubeconfig(path: str | pathlib.Path, url: str, context: str = "kubesim", namespace: str = "default") -> None:
    """A kubeconfig for plain-http kubesim: a dummy token, current-context `kubesim`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": context, "user": {"token": "kubesim-dummy-token"}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
        "current-context": context,
        "preferences": {},
    }
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
