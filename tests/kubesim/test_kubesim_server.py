"""The programmatic API the sandbox launcher uses: KubeSim in a loop, run_in_thread, write_kubeconfig."""

from __future__ import annotations

import asyncio
import json
import pathlib
import urllib.request

import pytest
import yaml

from kubesim import server


def test_kubesim_starts_and_stops_in_the_current_loop() -> None:
    async def scenario() -> str:
        sim = server.KubeSim()
        url = await sim.start("127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, lambda: urllib.request.urlopen(f"{url}/version").read())
        await sim.stop()
        await sim.stop()  # idempotent
        return str(json.loads(body)["gitVersion"])

    assert asyncio.run(scenario()).startswith("v1.32")


def test_kubesim_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        asyncio.run(server.KubeSim().start("0.0.0.0", 0))


def test_run_in_thread_gives_a_url_and_state_access(sim: server.ThreadHandle) -> None:
    assert sim.url.startswith("http://127.0.0.1:")
    names = sim.call(lambda: [o["metadata"]["name"] for o in sim.sim.store.select("/namespaces", None)])
    assert "kube-system" in names
    sim.stop()
    sim.stop()  # a second stop is harmless
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{sim.url}/version", timeout=2)


def test_write_kubeconfig(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "nested" / "config"
    server.write_kubeconfig(target, "http://127.0.0.1:1234", context="sim", namespace="team")
    config = yaml.safe_load(target.read_text())
    assert config["current-context"] == "sim"
    assert config["clusters"] == [{"name": "sim", "cluster": {"server": "http://127.0.0.1:1234"}}]
    assert config["contexts"][0]["context"]["namespace"] == "team"
    assert config["users"][0]["user"]["token"]
