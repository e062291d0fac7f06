"""Call counts by (service, operation) and outcome: what tests assert call budgets against.

Counting at the wire, outside the process under test, is what makes the counts trustworthy: they
include SDK retries and every call the code makes, whichever library path made it.

Outcomes per call:
- `total`: every request the proxy received for the operation;
- `forwarded`: those that reached the upstream (including `drop_after` ones, which AWS did act on);
- `throttle`, `error`, `drop`, `drop_after`: the faults injected;
- `delayed`: those that were given added latency;
- `upstream_error`: forwarded requests the upstream did not answer (the client got a 502).

With `timeline`, the counter also keeps each request's arrival (wall-clock time, service,
operation, and the cause the client gave on its User-Agent), so that calls can be told apart by
when they came and why: the benchmark splits them by the operator's drift passes, whose ends it
reads from the operator's log, and what grant changes cost from what drift passes cost.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

OUTCOMES = ("total", "forwarded", "throttle", "error", "drop", "drop_after", "delayed", "upstream_error",
            "refused_principal")


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of the counts. Keys are (service, operation); values map outcome -> count."""

    counts: Mapping[tuple[str, str], Mapping[str, int]]

    def count(self, operation: str | None = None, *, service: str | None = None, outcome: str = "total") -> int:
        """The number of calls with this outcome, for one operation (or all), of one service (or all)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
        return sum(
            values.get(outcome, 0)
            for (svc, op), values in self.counts.items()
            if (operation is None or op == operation) and (service is None or svc == service)
        )

    def by_operation(self, outcome: str = "total") -> dict[str, int]:
        """Operation -> count, leaving out operations with none."""
        totals: collections.Counter[str] = collections.Counter()
        for (_, op), values in self.counts.items():
            totals[op] += values.get(outcome, 0)
        return {op: n for op, n in sorted(totals.items()) if n}

    def to_json(self) -> dict[str, Any]:
        calls: list[dict[str, Any]] = [
            {"service": svc, "operation": op, **{name: values.get(name, 0) for name in OUTCOMES}}
            for (svc, op), values in sorted(self.counts.items())
        ]
        totals = {name: sum(item[name] for item in calls) for name in OUTCOMES}
        return {"calls": calls, "totals": totals}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Stats:
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for item in raw.get("calls", []):
            counts[(str(item["service"]), str(item["operation"]))] = {name: int(item.get(name, 0)) for name in OUTCOMES}
        return cls(counts)

    def __sub__(self, earlier: Stats) -> Stats:
        """The calls made since `earlier` was taken."""
        keys = set(self.counts) | set(earlier.counts)
        return Stats({
            key: {
                name: self.counts.get(key, {}).get(name, 0) - earlier.counts.get(key, {}).get(name, 0)
                for name in OUTCOMES
            }
            for key in keys
        })


class Counter:
    """The live, thread-safe counts behind `Stats` snapshots."""

    def __init__(self, *, timeline: bool = False) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], collections.Counter[str]] = {}
        self._timeline: list[Arrival] | None = [] if timeline else None

    def add(self, service: str, operation: str, outcomes: Iterable[str], cause: str = "", subject: str = "") -> None:
        outcomes = list(outcomes)
        with self._lock:
            counter = self._counts.setdefault((service, operation), collections.Counter())
            counter.update(outcomes)
            if self._timeline is not None and "total" in outcomes:
                self._timeline.append(Arrival(time.time(), service, operation, cause, subject))

    def timeline(self) -> list[Arrival]:
        """Every request since the last reset, in the order they arrived (empty unless kept)."""
        with self._lock:
            return list(self._timeline or ())

    def snapshot(self) -> Stats:
        with self._lock:
            return Stats({key: {name: values[name] for name in OUTCOMES} for key, values in self._counts.items()})

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            if self._timeline is not None:
                self._timeline.clear()


@dataclasses.dataclass(frozen=True)
class Arrival:
    """One request as it reached the proxy."""

    at: float  # time.time()
    service: str
    operation: str
    cause: str = ""  # why the client called, if its User-Agent said (`protocol.CAUSE_RE`)
    subject: str = ""  # the role or repository the request names (`protocol.Call.subject`), or ""
