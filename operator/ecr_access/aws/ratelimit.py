"""A process-wide token bucket on AWS requests, so that a cold start of 1,000 grants does not trip
AWS throttling: every HTTP attempt (retries included) takes a token before it is sent.

botocore's standard retry mode backs off after throttling; this keeps us from causing it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up. `rate <= 0` means unlimited."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds callers spent waiting (for metrics and tests)

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0  # reserve now; a negative balance is the queue ahead of us
            wait = max(0.0, -self._tokens / self.rate)
            self.waited += wait
        if wait:
            self._sleep(wait)
        return wait

    def before_send(self, **_: Any) -> None:
        """botocore `before-send` hook: returning None lets the request go."""
        self.acquire()
