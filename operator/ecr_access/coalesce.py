"""Single-flight coalescing: many callers asking for the same work get one execution between them.

A GitOps sync can create a hundred grants that name the same repository at once. Each grant's
handler asks for that repository to be synced, but one read-merge-write covers them all, because
the statements are derived from every live grant anyway. The rule that keeps this correct:

    a caller may share a run only if that run *started* after the caller asked.

A run that started earlier may have read the set of live grants before the caller's change, so the
caller waits for the next run instead. The first caller of a burst can also wait a short `window`
before starting, so that the rest of the burst joins its run rather than the next one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclasses.dataclass
class _Flight(Generic[T]):
    run_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    requested: int = 0  # tickets handed out
    completed: int = 0  # every ticket up to this one is covered by the last run
    value: T | None = None
    error: BaseException | None = None
    runs: int = 0


class Coalescer(Generic[T]):
    """Run `fn` for a key at most once per burst of concurrent requests for that key. Thread-safe."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._guard = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}
        self._sleep = sleep

    def request(self, key: Hashable) -> int:
        """Take a ticket now, to `run` later: a caller with several keys takes all its tickets first,
        so that it joins the current burst on every key rather than only on the first."""
        with self._guard:
            flight = self._flights.setdefault(key, _Flight())
            flight.requested += 1
            return flight.requested

    def run(self, key: Hashable, fn: Callable[[], T], window: float = 0.0, ticket: int | None = None) -> T:
        """Return the result of a run of `fn` that started after the ticket was taken; raise its error."""
        if ticket is None:
            ticket = self.request(key)
        with self._guard:
            flight = self._flights[key]
        with flight.run_lock:
            with self._guard:
                covered = flight.completed >= ticket
            if not covered:
                if window > 0:
                    self._sleep(window)  # let the rest of the burst take tickets this run will cover
                with self._guard:
                    start = flight.requested
                try:
                    value, error = fn(), None
                except Exception as raised:
                    value, error = None, raised
                with self._guard:
                    flight.completed, flight.value, flight.error = start, value, error
                    flight.runs += 1
            with self._guard:
                if flight.error is not None:
                    raise flight.error
                return flight.value  # type: ignore[return-value]

    def runs(self, key: Hashable) -> int:
        """How many times `fn` actually ran for `key` (for tests and metrics)."""
        with self._guard:
            flight = self._flights.get(key)
            return 0 if flight is None else flight.runs


@dataclasses.dataclass
class _AsyncFlight:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    requested: int = 0
    bursting: int = 0  # requests that extend the debounce (a periodic check joins a run but never delays it)
    completed: int = 0
    value: Any = None
    error: BaseException | None = None
    runs: int = 0


class AsyncCoalescer:
    """The same rule as `Coalescer`, for callers that await instead of blocking a thread.

    kopf runs each grant's handler as a coroutine, so a thousand grants created by one GitOps sync
    can all be waiting for the same repository at once without holding a thread each. The first
    waiter debounces: it starts the run only when no new request has arrived for `quiet` seconds,
    or after `longest` seconds, so that the whole burst shares one read and one write.
    The work itself (`fn`, blocking boto3 calls) runs in a thread.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._flights: dict[Hashable, _AsyncFlight] = {}
        self._clock = clock
        self._guard = threading.Lock()  # tickets may be taken from worker threads

    def request(self, key: Hashable, *, burst: bool = True) -> int:
        """Take a ticket. Only `burst` requests (changes) keep the first waiter debouncing: a steady
        stream of periodic checks must not hold a run back for `longest` seconds."""
        with self._guard:
            flight = self._flights.setdefault(key, _AsyncFlight())
            flight.requested += 1
            flight.bursting += burst
            return flight.requested

    def _requested(self, flight: _AsyncFlight) -> int:
        with self._guard:
            return flight.requested

    def _bursting(self, flight: _AsyncFlight) -> int:
        with self._guard:
            return flight.bursting

    async def run(
        self, key: Hashable, fn: Callable[[], T], *, ticket: int | None = None, quiet: float = 0.0,
        longest: float = 0.0,
    ) -> T:
        if ticket is None:
            ticket = self.request(key)
        with self._guard:
            flight = self._flights[key]
        async with flight.lock:
            if flight.completed < ticket:
                started = self._clock()
                while quiet > 0:
                    seen = self._bursting(flight)
                    await asyncio.sleep(quiet)
                    if self._bursting(flight) == seen or self._clock() - started >= longest:
                        break
                start = self._requested(flight)
                try:
                    flight.value, flight.error = await asyncio.to_thread(fn), None
                except Exception as raised:
                    flight.value, flight.error = None, raised
                flight.completed = start
                flight.runs += 1
            if flight.error is not None:
                raise flight.error
            value: T = flight.value
            return value

    def runs(self, key: Hashable) -> int:
        flight = self._flights.get(key)
        return 0 if flight is None else flight.runs
