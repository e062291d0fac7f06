"""Watches: initial state, resourceVersion resumption, bookmarks, timeouts, 410 Gone and prompt streaming."""

from __future__ import annotations

import asyncio
import threading
import time
import types
from typing import Any

from kubesim_helpers import WIDGETS, Client, widget

from kubesim import server
from kubesim.routes import Routes, WatchSettings
from kubesim.store import Store


def _collect(stream: Any, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        event = stream.next()
        assert event is not None, f"stream ended after {events}"
        events.append(event)
    return events


def test_watch_without_rv_sends_current_state_then_changes(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("a"))
    for flag in ("true", "1"):
        stream = client.stream(f"{WIDGETS}?watch={flag}")
        first = stream.next()
        assert first is not None and first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "a"
        stream.close()
    stream = client.stream(f"{WIDGETS}?watch=true&resourceVersion=0")
    assert _collect(stream, 1)[0]["type"] == "ADDED"
    client.patch(f"{WIDGETS}/a", {"spec": {"size": 4}})
    client.delete(f"{WIDGETS}/a")
    events = _collect(stream, 2)
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["spec"]["size"] == 4
    versions = [int(event["object"]["metadata"]["resourceVersion"]) for event in events]
    assert versions[1] > versions[0]
    stream.close()


def test_watch_from_a_list_rv_sends_only_later_events(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("a"))
    rv = client.get(WIDGETS)[1]["metadata"]["resourceVersion"]
    client.post(WIDGETS, widget("b"))  # happens between the list and the watch: must not be missed
    stream = client.stream(f"{WIDGETS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true")
    event = stream.next()
    assert event is not None and event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "b"
    stream.close()


def test_bookmarks_carry_the_current_resource_version(client: Client, crd: dict[str, Any]) -> None:
    rv = client.get(WIDGETS)[1]["metadata"]["resourceVersion"]
    stream = client.stream(f"{WIDGETS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true")
    event = stream.next()  # the fixture's bookmark interval is 0.5 s
    assert event is not None and event["type"] == "BOOKMARK"
    assert event["object"]["kind"] == "Widget"
    assert event["object"]["metadata"]["resourceVersion"] == rv
    stream.close()


def test_no_bookmarks_unless_asked(client: Client, crd: dict[str, Any]) -> None:
    rv = client.get(WIDGETS)[1]["metadata"]["resourceVersion"]
    stream = client.stream(f"{WIDGETS}?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    assert stream.next() is None  # ends at the timeout with no event at all
    stream.close()


def test_timeout_seconds_ends_the_stream(client: Client, crd: dict[str, Any]) -> None:
    started = time.monotonic()
    stream = client.stream(f"{WIDGETS}?watch=true&timeoutSeconds=1")
    assert stream.next() is None
    assert 0.9 < time.monotonic() - started < 3
    stream.close()


def test_too_old_resource_version_is_an_error_event_410() -> None:
    handle = server.run_in_thread(port=0, history_size=5)
    try:
        client = Client(handle.url)
        for index in range(10):
            client.post("/api/v1/namespaces", {"metadata": {"name": f"ns{index}"}})
        stream = client.stream("/api/v1/namespaces?watch=true&resourceVersion=2")
        event = stream.next()
        assert event is not None and event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        assert "too old resource version" in event["object"]["message"]
        assert stream.next() is None
        stream.close()
    finally:
        handle.stop()


def test_send_initial_events_ends_with_an_annotated_bookmark(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("a"))
    stream = client.stream(f"{WIDGETS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                           "&allowWatchBookmarks=true")
    added, bookmark = _collect(stream, 2)
    assert added["type"] == "ADDED"
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    stream.close()


def test_selector_watch_sees_objects_enter_and_leave(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("a"))
    rv = client.get(WIDGETS)[1]["metadata"]["resourceVersion"]
    stream = client.stream(f"{WIDGETS}?watch=true&resourceVersion={rv}&labelSelector=app%3Dx")
    client.patch(f"{WIDGETS}/a", {"metadata": {"labels": {"app": "x"}}})
    client.patch(f"{WIDGETS}/a", {"spec": {"size": 5}})
    client.patch(f"{WIDGETS}/a", {"metadata": {"labels": {"app": "y"}}})
    assert [e["type"] for e in _collect(stream, 3)] == ["ADDED", "MODIFIED", "DELETED"]
    stream.close()


def test_field_selector_watch_on_one_name(client: Client, crd: dict[str, Any]) -> None:
    stream = client.stream(f"{WIDGETS}?watch=true&fieldSelector=metadata.name%3Db")
    client.post(WIDGETS, widget("a"))
    client.post(WIDGETS, widget("b"))
    event = stream.next()
    assert event is not None and event["object"]["metadata"]["name"] == "b"
    stream.close()


def test_events_stream_promptly(client: Client, crd: dict[str, Any]) -> None:
    rv = client.get(WIDGETS)[1]["metadata"]["resourceVersion"]
    stream = client.stream(f"{WIDGETS}?watch=true&resourceVersion={rv}")
    started = time.monotonic()
    client.post(WIDGETS, widget("a"))
    event = stream.next()
    assert event is not None and event["type"] == "ADDED"
    assert time.monotonic() - started < 0.5
    stream.close()


def test_many_concurrent_watches_all_see_each_event(client: Client, crd: dict[str, Any]) -> None:
    rv = client.get(WIDGETS)[1]["metadata"]["resourceVersion"]
    streams = [client.stream(f"{WIDGETS}?watch=true&resourceVersion={rv}") for _ in range(50)]
    client.post(WIDGETS, widget("a"))
    seen = []
    for stream in streams:
        event = stream.next()
        seen.append(event and event["object"]["metadata"]["name"])
        stream.close()
    assert seen == ["a"] * 50


def test_stop_closes_open_watches_quickly() -> None:
    handle = server.run_in_thread(port=0)
    client = Client(handle.url)
    rv = client.get("/api/v1/namespaces")[1]["metadata"]["resourceVersion"]
    stream = client.stream(f"/api/v1/namespaces?watch=true&resourceVersion={rv}")
    results: list[Any] = []
    reader = threading.Thread(target=lambda: results.append(stream.next()))
    reader.start()
    started = time.monotonic()
    handle.stop()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert results == [None]  # the stream ended cleanly, with no event
    assert time.monotonic() - started < 3
    stream.close()


def test_table_watch_rows(client: Client, crd: dict[str, Any]) -> None:
    headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    client.post(WIDGETS, widget("a"))
    stream = client.stream(f"{WIDGETS}?watch=true", headers=headers)
    event = stream.next()
    assert event is not None and event["object"]["kind"] == "Table"
    assert event["object"]["rows"][0]["cells"][:2] == ["a", 3]
    stream.close()


def test_a_bookmark_never_claims_a_version_whose_events_are_still_queued() -> None:
    """A watch whose client reads slowly has events queued; a bookmark at the store's newest version
    told the client it had seen them. kopf resumes a watch that timed out from the last version it
    saw, so the events still queued when the stream ended would never be sent (found reading the
    stream code while kopf's watch lagged minutes at N=10,000; no run was seen to lose an event).
    The apiserver bookmarks only versions whose events were sent."""
    store = Store()
    routes = Routes(types.SimpleNamespace(registry=None, store=store),  # type: ignore[arg-type]
                    WatchSettings(bookmark_interval=0.0, poll_interval=0.01))
    watcher = store.subscribe("/widgets", None)
    for name in ("a", "b", "c"):  # queued for the watch, none sent yet
        store.put("/widgets", {"metadata": {"name": name, "resourceVersion": str(store.next_rv())}})
    sent: list[tuple[str, int]] = []

    class Send:
        async def bookmark(self, rv: str, initial_end: bool = False) -> None:
            sent.append(("BOOKMARK", int(rv)))

        def line(self, kind: str, event: Any, obj: Any) -> str:
            return f"{kind} {event.rv}\n"

        async def write(self, text: str) -> None:
            sent.extend((kind, int(rv)) for kind, rv in (line.split() for line in text.splitlines()))

    request = types.SimpleNamespace(transport=types.SimpleNamespace(is_closing=lambda: False))
    asyncio.run(routes._stream(request, watcher, Send(), lambda obj: True, 0, 0.05, True))  # type: ignore[arg-type]

    assert [rv for kind, rv in sent if kind == "ADDED"] == [1, 2, 3]
    seen = 0
    for kind, rv in sent:
        if kind == "BOOKMARK":
            assert rv <= seen, f"a bookmark at {rv} before the event at {seen + 1} was sent: {sent[:6]}"
        seen = max(seen, rv)
    assert ("BOOKMARK", 3) in sent, "once the queue is drained, the newest version"
