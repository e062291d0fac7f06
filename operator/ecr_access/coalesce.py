"""Sharing AWS work between concurrent callers: a cache of reads, and single-flight runs of a sync.

Everything here runs on the operator's one event loop (kopf's), so no thread locks: a caller that
must wait for AWS awaits, holding no thread, and the blocking boto3 calls themselves run in threads
inside the AWS adapter (`aws/`).

`Cache` is for reads (a role, its attached policies, a repository's policy): an answer younger than
the caller's `max_age` is reused, and concurrent callers of one key share one read. A caller may
also give `since`, a moment on the cache's clock: then only an answer that arrived at or after it
will do, however young. A drift pass gives its start, so that it reuses what it read itself, never
what the pass before it read late, whatever the timing of the two.

`Coalescer` is for a repository's read-merge-write. A GitOps sync can create a hundred grants that
name one repository at once; each grant's apply asks for that repository to be synced, but one
sync covers them all, because the statements are derived from every live grant anyway. The rule
that keeps this correct:

    a caller may share a run only if that run *started* after the caller asked.

A run that started earlier may have read the live grants before the caller's change, so the caller
waits for the next run instead. The first waiter of a burst debounces (`quiet`, `longest`) so that
the rest of the burst joins its run rather than the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Entry(Generic[V]):
    read_at: float  # when the answer arrived (not when it was asked for: the request may have queued)
    value: V
    read: int = 0  # which read of the key produced it (they are numbered as they start)


class Cache(Generic[K, V]):
    """Answers by key with the time they arrived; one read at a time per key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[K, Entry[V]] = {}
        self._reads: dict[K, tuple[int, asyncio.Task[V]]] = {}
        self._started = 0

    def lookup(self, key: K, max_age: float, *, since: float | None = None) -> Entry[V] | None:
        """The answer for `key` if it is at most `max_age` old (and arrived at or after `since`)."""
        entry = self._entries.get(key)
        return entry if entry is not None and self._young(entry, max_age, since) else None

    async def fetch(self, key: K, max_age: float, read: Callable[[], Awaitable[V]], *,
                    since: float | None = None) -> V:
        """The cached answer if young enough, else a fresh one, read once for all who ask meanwhile.

        The rule is the `Coalescer`'s: a caller shares the fate of a read only if that read started
        after it asked. A read already under way when it asked may still answer it, if its answer is
        young enough for the caller's `max_age` (and `since`); if that read fails, the caller reads
        again itself. With `max_age` 0 (what AWS holds after the caller asked), only a later read
        will do, however young the earlier answer is.
        """
        floor = self._started  # reads numbered up to this one began before this caller asked
        while True:
            entry = self._entries.get(key)
            if entry is not None and (entry.read > floor if max_age <= 0 else self._young(entry, max_age, since)):
                return entry.value
            running = self._reads.get(key)
            if running is None:
                self._started += 1
                task = asyncio.ensure_future(self._read(key, self._started, read))
                task.add_done_callback(retrieved)
                self._reads[key] = (self._started, task)
                return await asyncio.shield(task)  # a cancelled caller leaves the read to the others
            number, task = running
            try:
                await asyncio.shield(task)
            except Exception:
                if number > floor:
                    raise  # the read this caller is owed failed: so does the caller
                # A read from before this caller asked failed: its own comes next.

    def _young(self, entry: Entry[V], max_age: float, since: float | None) -> bool:
        return (since is None or entry.read_at >= since) and self._clock() - entry.read_at <= max_age

    async def _read(self, key: K, number: int, read: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await read()
            self._entries[key] = Entry(self._clock(), value, number)
            return value
        finally:
            self._reads.pop(key, None)  # before the task completes: a waiter may start the next read

    def put(self, key: K, value: V, *, read_at: float | None = None) -> None:
        """Record what a write left (`read_at`: keep the age of the read it was built on)."""
        before = self._entries.get(key)
        self._entries[key] = Entry(self._clock() if read_at is None else read_at, value,
                                   before.read if before else 0)

    def age(self, key: K) -> float:
        entry = self._entries.get(key)
        return self._clock() - entry.read_at if entry is not None else float("inf")

    def peek(self, key: K) -> Entry[V] | None:
        return self._entries.get(key)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


def retrieved(task: asyncio.Task[Any]) -> None:
    """A read whose callers were all cancelled still ends: its error is theirs, not asyncio's to log."""
    if not task.cancelled():
        task.exception()


@dataclasses.dataclass
class _Flight:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    requested: int = 0  # tickets handed out
    bursting: int = 0  # requests that extend the debounce (a periodic check joins a run but never delays it)
    completed: int = 0  # every ticket up to this one is covered by the last run
    value: Any = None
    error: BaseException | None = None
    runs: int = 0


class Coalescer:
    """Run `fn` for a key at most once per burst of requests for that key, one run at a time.

    (A run whose caller is cancelled, at operator shutdown, stops at its next await; a boto3 call
    already in its thread still completes. The next run re-reads and verifies, as always.)"""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        self._clock = clock

    def request(self, key: Hashable, *, burst: bool = True) -> int:
        """Take a ticket now, to `run` later: a caller with several keys takes all its tickets first,
        so that it joins the current burst on every key. Only `burst` requests (changes) keep the
        first waiter debouncing: a steady stream of periodic checks must not hold a run back."""
        flight = self._flights.setdefault(key, _Flight())
        flight.requested += 1
        flight.bursting += burst
        return flight.requested

    async def run(
        self, key: Hashable, fn: Callable[[], Awaitable[T]], *, ticket: int | None = None, quiet: float = 0.0,
        longest: float = 0.0, gate: asyncio.Semaphore | None = None,
    ) -> T:
        """The result of a run of `fn` that started after the ticket was taken; raises its error.

        The first waiter starts the run once no `burst` request arrived for `quiet` seconds, or
        after `longest` seconds, and once it passes `gate` (a bound on AWS work at once): requests
        made while it waits for the gate join the run."""
        if ticket is None:
            ticket = self.request(key)
        flight = self._flights[key]
        async with flight.lock:
            if flight.completed < ticket:
                started = self._clock()
                while quiet > 0:
                    seen = flight.bursting
                    await asyncio.sleep(quiet)
                    if flight.bursting == seen or self._clock() - started >= longest:
                        break
                async with gate or contextlib.nullcontext():
                    start = flight.requested
                    try:
                        flight.value, flight.error = await fn(), None
                    except Exception as raised:
                        flight.value, flight.error = None, raised
                flight.completed = start
                flight.runs += 1
            if flight.error is not None:
                raise flight.error
            value: T = flight.value
            return value

    def runs(self, key: Hashable) -> int:
        """How many times `fn` actually ran for `key` (for tests and metrics)."""
        flight = self._flights.get(key)
        return 0 if flight is None else flight.runs
