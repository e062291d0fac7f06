"""In-memory object storage with one global resourceVersion and a bounded event history, like etcd.

Every write goes through `Store.put`/`Store.remove`, which stamp the next resourceVersion, append a
watch event to the history and hand it to the live watchers. Everything runs on the server's event loop,
so a snapshot plus a watcher registration is atomic: no event can fall between a LIST and its WATCH.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Event:
    """A change to one object; `previous` is the object before it (None for ADDED)."""

    type: str  # ADDED | MODIFIED | DELETED
    storage_key: str
    namespace: str
    obj: Obj
    previous: Obj | None
    rv: int
    # The object's JSON by (apiVersion served, Store.epoch), written by the first watch that sends the event so
    # that the other watches of a fan-out do not encode it again.
    encoded: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclasses.dataclass(eq=False)  # identity semantics: watchers live in a set
class Watcher:
    """A live watch: events for one storage key (and optionally one namespace) are queued for it."""

    storage_key: str
    namespace: str | None
    queue: asyncio.Queue[Event | None] = dataclasses.field(default_factory=asyncio.Queue)


class Store:
    """Objects by storage key, then by (namespace, name); cluster-scoped objects use namespace ''."""

    def __init__(self, history_size: int = 10_000) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = collections.defaultdict(dict)
        self._rv = 0
        self._history: collections.deque[Event] = collections.deque(maxlen=history_size)
        self._compacted_rv = 0  # the newest rv no longer in the history
        self._watchers: set[Watcher] = set()
        self.epoch = 0  # bumped by `touch()` when stored objects are changed in place (re-pruned for a new CRD)

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion handed out."""
        return self._rv

    @property
    def compacted_rv(self) -> int:
        """Watches from an rv older than this cannot be served (410 Gone)."""
        return self._compacted_rv

    def touch(self) -> None:
        """Stored objects were changed in place: encodings cached on pending events are stale."""
        self.epoch += 1

    def next_rv(self) -> int:
        """Allocate the next resourceVersion."""
        self._rv += 1
        return self._rv

    def get(self, storage_key: str, namespace: str, name: str) -> Obj | None:
        """The stored object or None; callers must not mutate it."""
        return self._objects[storage_key].get((namespace, name))

    def select(self, storage_key: str, namespace: str | None) -> list[Obj]:
        """Objects of one resource, sorted by namespace then name (the apiserver's etcd key order)."""
        items = self._objects[storage_key]
        keys = sorted(k for k in items if namespace is None or k[0] == namespace)
        return [items[k] for k in keys]

    def iter_all(self, storage_key: str) -> Iterator[Obj]:
        """Every stored object of one resource, unordered."""
        return iter(list(self._objects[storage_key].values()))

    def put(self, storage_key: str, obj: Obj) -> Event:
        """Store an object whose metadata.resourceVersion was already set from `next_rv()`."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        previous = self._objects[storage_key].get(key)
        self._objects[storage_key][key] = obj
        event = Event(
            "ADDED" if previous is None else "MODIFIED",
            storage_key,
            key[0],
            obj,
            previous,
            int(meta["resourceVersion"]),
        )
        self._publish(event)
        return event

    def remove(self, storage_key: str, obj: Obj) -> Event:
        """Delete an object; the DELETED event carries it with a fresh resourceVersion, as etcd does."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        previous = self._objects[storage_key].pop(key, None)
        meta["resourceVersion"] = str(self.next_rv())
        event = Event("DELETED", storage_key, key[0], obj, previous, int(meta["resourceVersion"]))
        self._publish(event)
        return event

    def _publish(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        for watcher in self._watchers:
            if watcher.storage_key == event.storage_key and (
                watcher.namespace is None or watcher.namespace == event.namespace
            ):
                watcher.queue.put_nowait(event)

    def history_since(self, storage_key: str, namespace: str | None, rv: int) -> list[Event]:
        """Events newer than `rv` for one resource (the caller checked `compacted_rv` first)."""
        return [
            event
            for event in self._history
            if event.rv > rv
            and event.storage_key == storage_key
            and (namespace is None or event.namespace == namespace)
        ]

    def subscribe(self, storage_key: str, namespace: str | None) -> Watcher:
        """Start queueing live events for a watch."""
        watcher = Watcher(storage_key, namespace)
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        """Stop queueing events for a watch."""
        self._watchers.discard(watcher)

    def close_watchers(self, storage_key: str | None = None) -> None:
        """End watches (all of them on shutdown, or one resource's when its CRD goes)."""
        for watcher in list(self._watchers):
            if storage_key is None or watcher.storage_key == storage_key:
                watcher.queue.put_nowait(None)
