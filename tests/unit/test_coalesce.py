"""Sharing AWS work: one run per burst and never a run that started before the request (`Coalescer`);
one read per key at a time and answers judged by each caller's age (`Cache`). All on one event loop."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ecr_access.coalesce import Cache, Coalescer


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def test_a_burst_of_concurrent_requests_shares_one_run() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        coalescer = Coalescer()
        calls: list[int] = []

        async def work() -> int:
            calls.append(1)
            return len(calls)

        tickets = [coalescer.request("repo") for _ in range(20)]
        results = await asyncio.gather(*(coalescer.run("repo", work, ticket=ticket) for ticket in tickets))
        return calls, list(results)

    calls, results = run(scenario)
    assert calls == [1]
    assert results == [1] * 20


def test_a_request_made_while_a_run_is_in_progress_gets_a_new_run() -> None:
    async def scenario() -> tuple[list[str], str]:
        coalescer = Coalescer()
        started, release = asyncio.Event(), asyncio.Event()
        runs: list[str] = []

        async def slow() -> str:
            runs.append("slow")
            started.set()
            await release.wait()
            return "first"

        async def late_work() -> str:
            runs.append("late")
            return "second"

        first = asyncio.create_task(coalescer.run("k", slow))
        await started.wait()
        # This request may depend on state the running call already read: it must not share its result.
        second = asyncio.create_task(coalescer.run("k", late_work))
        await asyncio.sleep(0)
        release.set()
        await first
        return runs, await second

    runs, late = run(scenario)
    assert runs == ["slow", "late"]
    assert late == "second"


def test_tickets_taken_early_join_the_next_run() -> None:
    async def scenario() -> None:
        coalescer = Coalescer()
        runs = []

        def work(value: int) -> Callable[[], Awaitable[int]]:
            async def body() -> int:
                runs.append(value)
                return value
            return body

        ticket_a, ticket_b = coalescer.request("a"), coalescer.request("a")
        assert await coalescer.run("a", work(7), ticket=ticket_a) == 7
        assert await coalescer.run("a", work(8), ticket=ticket_b) == 7, "covered by the first run"
        assert runs == [7]
        assert coalescer.runs("a") == 1

    run(scenario)


def test_errors_are_shared_by_the_callers_of_a_run() -> None:
    async def scenario() -> None:
        coalescer = Coalescer()
        ticket_a, ticket_b = coalescer.request("x"), coalescer.request("x")

        async def fail() -> int:
            raise RuntimeError("throttled")

        async def three() -> int:
            return 3

        with pytest.raises(RuntimeError, match="throttled"):
            await coalescer.run("x", fail, ticket=ticket_a)
        with pytest.raises(RuntimeError, match="throttled"):
            await coalescer.run("x", three, ticket=ticket_b)
        assert await coalescer.run("x", three) == 3, "a later request runs again"

    run(scenario)


def test_periodic_requests_join_a_run_without_prolonging_its_debounce() -> None:
    async def scenario() -> tuple[int, bool]:
        coalescer = Coalescer()
        runs: list[int] = []
        ticket = coalescer.request("repo")  # a change: its run waits for a quiet period

        async def steady_checks() -> None:
            for _ in range(20):  # periodic checks more often than the quiet period, for a while
                coalescer.request("repo", burst=False)
                await asyncio.sleep(0.02)

        async def work() -> int:
            runs.append(1)
            return 1

        checks = asyncio.create_task(steady_checks())
        await coalescer.run("repo", work, ticket=ticket, quiet=0.05, longest=30.0)
        started_during_checks = not checks.done()
        await checks
        return len(runs), started_during_checks

    assert run(scenario) == (1, True), "the run did not wait for the periodic checks to stop"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_readers_of_one_key_share_one_read_and_its_age_counts_from_the_answer() -> None:
    clock = Clock()

    async def scenario() -> None:
        cache: Cache[str, int] = Cache(clock)
        release = asyncio.Event()
        reads: list[int] = []

        async def read() -> int:
            reads.append(1)
            await release.wait()
            clock.now += 5  # the answer arrives 5 s after it was asked for
            return 42

        readers = [asyncio.create_task(cache.fetch("role", 30.0, read)) for _ in range(10)]
        await asyncio.sleep(0)
        release.set()
        assert await asyncio.gather(*readers) == [42] * 10
        assert reads == [1]
        assert cache.age("role") == 0.0, "aged from the answer, not the request"
        clock.now += 30
        assert await cache.fetch("role", 30.0, read) == 42 and reads == [1], "30 s old: still young enough"
        clock.now += 1
        await cache.fetch("role", 30.0, read)
        assert reads == [1, 1], "31 s old: read again"

    run(scenario)


def test_a_caller_that_wants_a_fresh_answer_reads_again_after_a_read_it_waited_for() -> None:
    clock = Clock()

    async def scenario() -> list[str]:
        cache: Cache[str, str] = Cache(clock)
        started, release = asyncio.Event(), asyncio.Event()
        reads: list[str] = []

        async def first() -> str:
            reads.append("first")
            started.set()
            await release.wait()
            clock.now += 1
            return "old"

        async def second() -> str:
            reads.append("second")
            return "new"

        running = asyncio.create_task(cache.fetch("k", 60.0, first))
        await started.wait()
        fresh = asyncio.create_task(cache.fetch("k", 0.0, second))  # asks after the first read began
        await asyncio.sleep(0)
        release.set()
        assert await running == "old"
        assert await fresh == "new", "a read that began before it asked is not fresh enough for max_age 0"
        return reads

    assert run(scenario) == ["first", "second"]


def test_a_failed_read_is_shared_by_its_waiters_and_not_cached() -> None:
    async def scenario() -> None:
        cache: Cache[str, int] = Cache(Clock())
        release = asyncio.Event()

        async def fail() -> int:
            await release.wait()
            raise RuntimeError("throttled")

        async def works() -> int:
            return 1

        readers = [asyncio.create_task(cache.fetch("k", 60.0, fail)) for _ in range(3)]
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*readers, return_exceptions=True)
        assert all(isinstance(item, RuntimeError) for item in results)
        assert await cache.fetch("k", 60.0, works) == 1, "nothing was cached: the next caller reads"

    run(scenario)


def test_put_keeps_the_age_of_the_read_a_write_was_built_on() -> None:
    clock = Clock()
    cache: Cache[str, int] = Cache(clock)
    cache.put("k", 1)
    clock.now += 20
    cache.put("k", 2, read_at=cache.peek("k").read_at)  # type: ignore[union-attr]
    assert cache.age("k") == 20.0
    assert cache.lookup("k", 10.0) is None and cache.lookup("k", 20.0) is not None
    cache.forget("k")
    assert cache.age("k") == float("inf")


def test_since_reuses_only_answers_that_arrived_after_it_however_young_the_older_ones() -> None:
    """A drift pass gives its start: what the pass before it read seconds ago is read again, once,
    and shared by the rest of the pass however long the pass takes."""
    clock = Clock()

    async def scenario() -> list[int]:
        cache: Cache[str, int] = Cache(clock)
        reads: list[int] = []

        async def read() -> int:
            reads.append(1)
            return len(reads)

        assert await cache.fetch("role", 60.0, read) == 1
        clock.now += 2
        began = clock.now  # a pass begins: the answer is 2 s old
        assert await cache.fetch("role", math.inf, read, since=began) == 2, "read again: it is from before"
        clock.now += 600
        assert await cache.fetch("role", math.inf, read, since=began) == 2, "read by this pass: reused"
        assert cache.lookup("role", math.inf, since=began) is not None
        assert cache.lookup("role", math.inf, since=clock.now) is None
        assert await cache.fetch("role", 60.0, read) == 3, "an age limit still applies to whoever gives one"
        return reads

    assert run(scenario) == [1, 1, 1]


def test_a_caller_that_asked_during_a_failed_read_reads_again_itself() -> None:
    """Only a read that started after a caller asked may fail it: on a cold start, the grants
    queued behind a throttled GetRole must not all fail with it."""
    async def scenario() -> tuple[list[Any], int]:
        cache: Cache[str, str] = Cache(Clock())
        started, release = asyncio.Event(), asyncio.Event()
        reads = 0

        async def read() -> str:
            nonlocal reads
            reads += 1
            if reads == 1:
                started.set()
                await release.wait()
                raise RuntimeError("throttled")
            return "role"

        first = asyncio.create_task(cache.fetch("k", 30.0, read))
        await started.wait()
        late = asyncio.create_task(cache.fetch("k", 30.0, read))
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(first, late, return_exceptions=True)
        return list(results), reads

    (first, late), reads = run(scenario)
    assert isinstance(first, RuntimeError)
    assert late == "role" and reads == 2


def test_fresh_callers_on_a_real_clock_share_a_read_that_started_after_they_asked() -> None:
    """max_age 0 (a reconcile-now request) wants what AWS holds after it asked: twenty such callers
    at once need two reads (the one under way when they asked does not count), not twenty."""
    async def scenario() -> int:
        cache: Cache[str, int] = Cache()  # time.monotonic
        reads = 0

        async def read() -> int:
            nonlocal reads
            reads += 1
            await asyncio.sleep(0.01)
            return reads

        await asyncio.gather(*(cache.fetch("role", 0.0, read) for _ in range(20)))
        return reads

    assert run(scenario) <= 2
