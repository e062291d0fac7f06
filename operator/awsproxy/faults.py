"""Which fault, if any, a request gets: the rates, and the seeded draw that applies them.

Kept apart from the HTTP code so that the rules (per-operation rates over per-service rates over
the global ones; one fault at most per request; a fixed number of random draws per request) can be
read and tested without a server. The fixed number of draws is what makes a seed reproducible: the
n-th request gets the same decision whatever the rates of the requests before it.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Mapping
from typing import Any


class Fault(enum.Enum):
    """What the proxy does instead of (or after) forwarding a request."""

    DROP = "drop"  # close the connection before forwarding: the request never reaches AWS
    DROP_AFTER = "drop_after"  # forward, then close without answering: AWS acted, the client never learns
    THROTTLE = "throttle"  # answer 400 Throttling / ThrottlingException, without forwarding
    ERROR = "error"  # answer 500 InternalFailure / ServerException, without forwarding


# The draw order; it is part of the seed's meaning, so do not reorder it.
FAULT_ORDER = (Fault.DROP, Fault.DROP_AFTER, Fault.THROTTLE, Fault.ERROR)


@dataclasses.dataclass(frozen=True)
class Rates:
    """Probabilities, each in [0, 1], that one request gets each fault; their sum is at most 1.

    `latency` is the probability that `latency_ms` is added before the request is handled; it is
    drawn independently of the faults.
    """

    throttle: float = 0.0
    error: float = 0.0
    drop: float = 0.0
    drop_after: float = 0.0
    latency: float = 1.0
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        for field in ("throttle", "error", "drop", "drop_after", "latency"):
            value = getattr(self, field)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{field} must be a probability in [0, 1], got {value}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        if self.fault_total() > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {self.fault_total()}, more than 1")

    def rate(self, fault: Fault) -> float:
        value: float = getattr(self, fault.value)
        return value

    def fault_total(self) -> float:
        return sum(self.rate(fault) for fault in FAULT_ORDER)

    def to_json(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Rates:
        return cls(**_rate_fields(cls, raw))


@dataclasses.dataclass(frozen=True)
class FaultConfig(Rates):
    """Global rates, plus overrides keyed by `"service:Operation"`, `"Operation"` or `"service"`.

    The most specific key that matches a request wins, whole: an override replaces all the global
    rates for that request, it does not add to them.
    """

    operations: Mapping[str, Rates] = dataclasses.field(default_factory=dict)

    def for_call(self, service: str, operation: str) -> Rates:
        for key in (f"{service}:{operation}", operation, service):
            if key in self.operations:
                return self.operations[key]
        return self

    def to_json(self) -> dict[str, Any]:
        base: dict[str, Any] = {field: getattr(self, field) for field in _rate_names(Rates)}
        base["operations"] = {key: rates.to_json() for key, rates in self.operations.items()}
        return base

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FaultConfig:
        operations = raw.get("operations") or {}
        if not isinstance(operations, Mapping):
            raise ValueError("operations must be an object of {key: rates}")
        return cls(
            **_rate_fields(Rates, raw),
            operations={str(key): Rates.from_json(value) for key, value in operations.items()},
        )


NO_FAULTS = FaultConfig()


@dataclasses.dataclass(frozen=True)
class Decision:
    fault: Fault | None
    delay: float  # seconds to wait first


def decide(rng: random.Random, rates: Rates) -> Decision:
    """Draw exactly two numbers, whatever the rates, and turn them into one decision."""
    fault_draw = rng.random()
    latency_draw = rng.random()
    chosen: Fault | None = None
    threshold = 0.0
    for fault in FAULT_ORDER:
        threshold += rates.rate(fault)
        if fault_draw < threshold:
            chosen = fault
            break
    delay = rates.latency_ms / 1000.0 if rates.latency_ms > 0 and latency_draw < rates.latency else 0.0
    return Decision(chosen, delay)


def _rate_names(kind: type[Rates]) -> list[str]:
    return [field.name for field in dataclasses.fields(kind) if field.name != "operations"]


def _rate_fields(kind: type[Rates], raw: Mapping[str, Any]) -> dict[str, float]:
    names = _rate_names(kind)
    unknown = set(raw) - set(names) - {"operations"}
    if unknown:
        raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
    try:
        return {name: float(raw[name]) for name in names if name in raw}
    except (TypeError, ValueError):
        raise ValueError(f"fault settings must be numbers: {dict(raw)}") from None
