"""The process-wide token bucket on AWS requests."""

from __future__ import annotations

import pytest

from ecr_access.aws.ratelimit import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_passes_then_calls_are_spaced_at_the_rate() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=10, burst=3, clock=time.clock, sleep=time.sleep)

    waits = [bucket.acquire() for _ in range(6)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.1, 0.1])
    assert time.now == pytest.approx(0.3), "6 calls at 10/s with a burst of 3 take 0.3 s"


def test_idle_time_refills_up_to_the_burst_only() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=2, burst=2, clock=time.clock, sleep=time.sleep)
    bucket.acquire()
    bucket.acquire()
    time.now += 100  # a long idle period saves at most `burst` tokens
    assert [bucket.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])


def test_zero_rate_means_unlimited() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=0, burst=1, clock=time.clock, sleep=time.sleep)
    assert [bucket.acquire() for _ in range(100)] == [0.0] * 100
    assert time.slept == []
