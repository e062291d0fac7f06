"""A thousand custom resources and many watchers: the size of the benchmark the operator will face."""

from __future__ import annotations

import time
from typing import Any

from kubesim_helpers import WIDGETS, Client, widget


def test_a_thousand_objects_with_twenty_watchers(client: Client, crd: dict[str, Any]) -> None:
    rv = client.get(WIDGETS)[1]["metadata"]["resourceVersion"]
    watches = [client.stream(f"{WIDGETS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true")
               for _ in range(20)]
    started = time.monotonic()
    for index in range(1000):
        status, body, _ = client.post(WIDGETS, widget(f"w{index:04d}"))
        assert status == 201, body
    created = time.monotonic() - started
    listed = client.get(WIDGETS)[1]
    assert len(listed["items"]) == 1000
    for watch in watches:
        names: list[str] = []
        while len(names) < 1000:
            event = watch.next()
            assert event is not None
            if event["type"] == "ADDED":
                names.append(event["object"]["metadata"]["name"])
        assert names[0] == "w0000" and names[-1] == "w0999"
        watch.close()
    elapsed = time.monotonic() - started
    assert created < 20, f"creating 1000 objects took {created:.1f}s"
    assert elapsed < 40, f"fan-out to 20 watchers took {elapsed:.1f}s"
