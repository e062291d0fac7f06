"""The fault rules without a server: rates, overrides, and what a seed guarantees."""

from __future__ import annotations

import random

import pytest

from awsproxy.faults import Fault, FaultConfig, Rates, decide


def draws(config: Rates, seed: int, n: int) -> list[Fault | None]:
    rng = random.Random(seed)
    return [decide(rng, config).fault for _ in range(n)]


def test_no_rates_means_no_faults_and_no_delay() -> None:
    rng = random.Random(1)
    assert {decide(rng, FaultConfig()) for _ in range(1000)} == {decide(random.Random(2), FaultConfig())}
    assert decide(rng, FaultConfig()).delay == 0.0


def test_a_rate_of_one_always_faults() -> None:
    assert set(draws(FaultConfig(throttle=1.0), 3, 200)) == {Fault.THROTTLE}
    assert set(draws(FaultConfig(drop_after=1.0), 3, 200)) == {Fault.DROP_AFTER}


def test_rates_are_met_approximately_and_exactly_for_a_seed() -> None:
    config = FaultConfig(throttle=0.3, error=0.05, drop=0.1, drop_after=0.05)
    got = draws(config, 42, 10_000)
    observed = {fault: got.count(fault) / len(got) for fault in Fault}
    for fault in Fault:
        assert observed[fault] == pytest.approx(config.rate(fault), abs=0.015), fault
    assert got == draws(config, 42, 10_000), "the same seed gives the same decisions"


def test_every_request_takes_the_same_number_of_draws_whatever_the_rates() -> None:
    """So a seed means the same thing when rates change between runs or per operation."""
    rng_a, rng_b = random.Random(5), random.Random(5)
    for _ in range(50):
        decide(rng_a, FaultConfig(throttle=0.5, latency_ms=10, latency=0.5))
        decide(rng_b, FaultConfig())
    assert rng_a.random() == rng_b.random()


def test_latency_is_added_at_its_rate() -> None:
    rng = random.Random(9)
    delays = [decide(rng, FaultConfig(latency_ms=250, latency=0.25)).delay for _ in range(4000)]
    assert set(delays) == {0.0, 0.25}
    assert delays.count(0.25) / len(delays) == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize(
    ("key", "service", "operation", "expected"),
    [
        pytest.param("iam:GetRole", "iam", "GetRole", 1.0, id="service-and-operation"),
        pytest.param("GetRole", "iam", "GetRole", 1.0, id="operation"),
        pytest.param("iam", "iam", "ListRoles", 1.0, id="service"),
        pytest.param("ecr:GetRole", "iam", "GetRole", 0.2, id="other-service-falls-back"),
        pytest.param("GetRole", "iam", "ListRoles", 0.2, id="other-operation-falls-back"),
    ],
)
def test_overrides_pick_the_most_specific_key(key: str, service: str, operation: str, expected: float) -> None:
    config = FaultConfig(throttle=0.2, operations={key: Rates(throttle=1.0)})
    assert config.for_call(service, operation).throttle == expected


def test_the_most_specific_override_wins_whole() -> None:
    config = FaultConfig(error=0.5, operations={"iam": Rates(throttle=0.5), "iam:GetRole": Rates(drop=1.0)})
    assert config.for_call("iam", "GetRole") == Rates(drop=1.0)
    assert config.for_call("iam", "ListRoles") == Rates(throttle=0.5)
    assert config.for_call("ecr", "GetRole").error == 0.5


@pytest.mark.parametrize(
    "rates",
    [
        pytest.param({"throttle": 1.5}, id="above-one"),
        pytest.param({"error": -0.1}, id="negative"),
        pytest.param({"throttle": 0.6, "error": 0.5}, id="sum-above-one"),
        pytest.param({"latency_ms": -1}, id="negative-latency"),
    ],
)
def test_impossible_rates_are_refused(rates: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Rates(**rates)
    with pytest.raises(ValueError):
        FaultConfig.from_json(rates)


def test_config_round_trips_through_json() -> None:
    config = FaultConfig(throttle=0.3, error=0.05, latency_ms=20, operations={"GetRole": Rates(drop=0.5)})
    assert FaultConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"throtle": 0.3}, id="typo"),
        pytest.param({"throttle": "lots"}, id="not-a-number"),
        pytest.param({"operations": {"GetRole": {"throttle": 2}}}, id="bad-override"),
    ],
)
def test_bad_json_config_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultConfig.from_json(raw)
