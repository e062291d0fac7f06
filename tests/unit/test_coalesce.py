"""Single-flight coalescing: one run per burst, and never a run that started before the request."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ecr_access.coalesce import AsyncCoalescer, Coalescer


def test_a_burst_of_concurrent_requests_shares_one_run() -> None:
    coalescer: Coalescer[int] = Coalescer()
    calls = []

    def work() -> int:
        calls.append(1)
        return len(calls)

    barrier = threading.Barrier(20)
    results: list[int] = []

    def caller() -> None:
        barrier.wait()
        results.append(coalescer.run("repo", work, window=0.3))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(calls) == 1
    assert results == [1] * 20


def test_a_request_made_while_a_run_is_in_progress_gets_a_new_run() -> None:
    coalescer: Coalescer[str] = Coalescer()
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def slow() -> str:
        runs.append("slow")
        started.set()
        release.wait()
        return "first"

    first = threading.Thread(target=lambda: coalescer.run("k", slow))
    first.start()
    started.wait()
    # This request may depend on state the running call already read: it must not share its result.
    late: list[str] = []
    second = threading.Thread(target=lambda: late.append(coalescer.run("k", lambda: runs.append("late") or "second")))
    second.start()
    time.sleep(0.05)
    release.set()
    first.join()
    second.join()

    assert runs == ["slow", "late"]
    assert late == ["second"]


def test_tickets_taken_early_join_the_next_run() -> None:
    coalescer: Coalescer[int] = Coalescer()
    runs = []
    ticket_a = coalescer.request("a")
    ticket_b = coalescer.request("a")
    assert coalescer.run("a", lambda: runs.append(1) or 7, ticket=ticket_a) == 7
    assert coalescer.run("a", lambda: runs.append(2) or 8, ticket=ticket_b) == 7, "covered by the first run"
    assert runs == [1]
    assert coalescer.runs("a") == 1


def test_errors_are_shared_by_the_callers_of_a_run() -> None:
    coalescer: Coalescer[int] = Coalescer()
    ticket_a, ticket_b = coalescer.request("x"), coalescer.request("x")

    def fail() -> int:
        raise RuntimeError("throttled")

    with pytest.raises(RuntimeError, match="throttled"):
        coalescer.run("x", fail, ticket=ticket_a)
    with pytest.raises(RuntimeError, match="throttled"):
        coalescer.run("x", lambda: 1, ticket=ticket_b)
    assert coalescer.run("x", lambda: 3) == 3, "a later request runs again"


def test_keys_are_independent() -> None:
    coalescer: Coalescer[str] = Coalescer()
    assert coalescer.run("a", lambda: "A") == "A"
    assert coalescer.run("b", lambda: "B") == "B"
    assert (coalescer.runs("a"), coalescer.runs("b"), coalescer.runs("c")) == (1, 1, 0)


def test_periodic_requests_join_a_run_without_prolonging_its_debounce() -> None:
    async def scenario() -> tuple[int, bool]:
        coalescer = AsyncCoalescer()
        runs: list[int] = []
        ticket = coalescer.request("repo")  # a change: its run waits for a quiet period

        async def steady_checks() -> None:
            for _ in range(40):  # periodic checks more often than the quiet period, for a while
                coalescer.request("repo", burst=False)
                await asyncio.sleep(0.05)

        checks = asyncio.create_task(steady_checks())
        await coalescer.run("repo", lambda: runs.append(1) or 1, ticket=ticket, quiet=0.2, longest=30.0)
        started_during_checks = not checks.done()
        await checks
        return len(runs), started_during_checks

    assert asyncio.run(scenario()) == (1, True), "the run did not wait for the periodic checks to stop"
