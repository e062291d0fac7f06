"""The real kopf 1.45 runs a tiny operator against kubesim: discovery, list+watch, finalizers, status, events."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubesim_helpers import GROUP, WIDGETS, Client, widget

from kubesim import server

OPERATOR = f'''
import logging
import os
import pathlib

import kopf
import yaml

MARKER = pathlib.Path(os.environ["KUBESIM_TEST_MARKER"])


@kopf.on.login()
def login(**_):
    # The kubernetes client fixes its default kubeconfig path at import time, before the test sets KUBECONFIG,
    # so read the file kubesim wrote: its server and dummy token.
    config = yaml.safe_load(pathlib.Path(os.environ["KUBECONFIG"]).read_text())
    return kopf.ConnectionInfo(
        server=config["clusters"][0]["cluster"]["server"],
        token=config["users"][0]["user"]["token"],
        scheme="Bearer",
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.watching.server_timeout = 10
    settings.persistence.finalizer = "example.kubesim.io/finalizer"
    settings.posting.level = logging.INFO
    settings.posting.loggers = True  # also post handler log lines as events (off by default in kopf 1.45)


@kopf.on.create("{GROUP}", "v1", "widgets", id="create-widget")
def on_widget_create(body, patch, **_):
    patch.status["phase"] = "Created"
    kopf.info(body, reason="Created", message="The widget was created.")


@kopf.on.update("{GROUP}", "v1", "widgets", id="update-widget", field="spec.size")
def on_widget_update(new, patch, **_):
    patch.metadata.annotations["example.kubesim.io/size"] = str(new)


@kopf.on.delete("{GROUP}", "v1", "widgets", id="delete-widget")
def on_widget_delete(name, **_):
    MARKER.write_text(name)
'''


def _eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_kopf_operator_handles_create_update_delete(
    sim: server.ThreadHandle, client: Client, crd: dict[str, Any], tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "kubeconfig"
    server.write_kubeconfig(config, sim.url)
    marker = tmp_path / "deleted"
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.setenv("KUBESIM_TEST_MARKER", str(marker))
    operator = tmp_path / "operator.py"
    operator.write_text(OPERATOR)
    client.post(WIDGETS, widget("before"))  # exists before kopf starts: found by its initial LIST
    with KopfRunner(["run", "--standalone", "--all-namespaces", str(operator)], timeout=60) as runner:
        client.post(WIDGETS, widget("w1"))  # created while kopf watches

        def handled(name: str) -> bool:
            body = client.get(f"{WIDGETS}/{name}")[1]
            return body.get("status", {}).get("phase") == "Created" and bool(body["metadata"].get("finalizers"))

        _eventually(lambda: handled("before") and handled("w1"))
        body = client.get(f"{WIDGETS}/w1")[1]
        assert body["metadata"]["finalizers"] == ["example.kubesim.io/finalizer"]
        assert body["metadata"]["generation"] == 1  # kopf's own writes are metadata/status only

        client.patch(f"{WIDGETS}/w1", {"spec": {"size": 6}})
        _eventually(lambda: client.get(f"{WIDGETS}/w1")[1]["metadata"].get("annotations", {})
                    .get("example.kubesim.io/size") == "6")

        def posted_events() -> list[str]:
            query = "fieldSelector=involvedObject.name%3Dw1,involvedObject.kind%3DWidget"
            events = client.get(f"/api/v1/namespaces/default/events?{query}")[1]
            return [event["message"] for event in events["items"]]

        # kopf posts events from a background queue, so they arrive a little after the handler ran.
        _eventually(lambda: "The widget was created." in posted_events())
        _eventually(lambda: any("create-widget" in m and "succeeded" in m for m in posted_events()))

        status, deleting, _ = client.delete(f"{WIDGETS}/w1")
        assert status == 200 and deleting["metadata"]["deletionTimestamp"]
        _eventually(lambda: client.get(f"{WIDGETS}/w1")[0] == 404)
        assert marker.read_text() == "w1"
    assert runner.exception is None
    assert runner.exit_code == 0
