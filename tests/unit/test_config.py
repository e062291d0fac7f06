"""Operator settings: a Deployment's environment and the command line, read once at start-up.

A typo in a Deployment must stop the operator at start-up with the variable's name, not later.
"""

from __future__ import annotations

from typing import Any

import pytest

from ecr_access import config
from ecr_access.config import Config


@pytest.mark.parametrize(
    ("environ", "overrides", "expected"),
    [
        pytest.param({}, {}, Config(), id="defaults"),
        pytest.param({"UNRELATED": "1", "ECR_ACCESS_RESYNC_INTERVAL": ""}, {}, Config(), id="empty-means-unset"),
        pytest.param({"ECR_ACCESS_RESYNC_INTERVAL": "60"}, {}, Config(resync_interval=60.0), id="resync-interval"),
        pytest.param({"ECR_ACCESS_RESYNC_JITTER": "0"}, {}, Config(resync_jitter=0.0), id="no-jitter"),
        pytest.param({"ECR_ACCESS_CLUSTER_ID": "prod-eu-1"}, {}, Config(cluster_id="prod-eu-1"), id="cluster-id"),
        pytest.param({"ECR_ACCESS_REGION": "eu-central-1"}, {}, Config(region="eu-central-1"), id="region"),
        pytest.param({"ECR_ACCESS_NAMESPACES": "team-ml, team-data,,"}, {},
                     Config(namespaces=("team-ml", "team-data")), id="namespaces-comma-separated"),
        pytest.param(
            {"ECR_ACCESS_ROLE_CACHE_TTL": "5", "ECR_ACCESS_RETRY_DELAY": "2.5",
             "ECR_ACCESS_STALLED_RETRY_DELAY": "600"},
            {},
            Config(role_cache_ttl=5.0, retry_delay=2.5, stalled_retry_delay=600.0),
            id="delays",
        ),
        pytest.param({"ECR_ACCESS_RESYNC_INTERVAL": "60"}, {"resync_interval": 30.0}, Config(resync_interval=30.0),
                     id="flag-wins-over-env"),
        pytest.param({"ECR_ACCESS_RESYNC_INTERVAL": "60"}, {"resync_interval": None}, Config(resync_interval=60.0),
                     id="unset-flag-keeps-env"),
        pytest.param({"ECR_ACCESS_NAMESPACES": "a,b"}, {"namespaces": ["c"]}, Config(namespaces=("c",)),
                     id="namespaces-flag-wins"),
        pytest.param({}, {"namespaces": "x, y"}, Config(namespaces=("x", "y")), id="namespaces-flag-as-text"),
        pytest.param({"ECR_ACCESS_CLUSTER_ID": "env"}, {"cluster_id": "flag"}, Config(cluster_id="flag"),
                     id="cluster-id-flag-wins"),
    ],
)
def test_load(environ, overrides, expected):
    assert config.load(overrides, environ) == expected


@pytest.mark.parametrize(
    ("environ", "overrides", "variable"),
    [
        pytest.param({"ECR_ACCESS_RESYNC_INTERVAL": "5m"}, {}, "ECR_ACCESS_RESYNC_INTERVAL", id="interval-with-unit"),
        pytest.param({"ECR_ACCESS_RESYNC_INTERVAL": "0"}, {}, "ECR_ACCESS_RESYNC_INTERVAL", id="interval-zero"),
        pytest.param({"ECR_ACCESS_RESYNC_INTERVAL": "-30"}, {}, "ECR_ACCESS_RESYNC_INTERVAL", id="interval-negative"),
        pytest.param({"ECR_ACCESS_RESYNC_INTERVAL": "nan"}, {}, "ECR_ACCESS_RESYNC_INTERVAL", id="interval-nan"),
        pytest.param({"ECR_ACCESS_RESYNC_INTERVAL": "inf"}, {}, "ECR_ACCESS_RESYNC_INTERVAL", id="interval-infinite"),
        pytest.param({}, {"resync_interval": 0.0}, "ECR_ACCESS_RESYNC_INTERVAL", id="interval-flag-zero"),
        pytest.param({"ECR_ACCESS_RESYNC_JITTER": "1.5"}, {}, "ECR_ACCESS_RESYNC_JITTER", id="jitter-above-one"),
        pytest.param({"ECR_ACCESS_RESYNC_JITTER": "-0.1"}, {}, "ECR_ACCESS_RESYNC_JITTER", id="jitter-negative"),
        pytest.param({"ECR_ACCESS_RESYNC_JITTER": "half"}, {}, "ECR_ACCESS_RESYNC_JITTER", id="jitter-not-a-number"),
        pytest.param({"ECR_ACCESS_RETRY_DELAY": "soon"}, {}, "ECR_ACCESS_RETRY_DELAY", id="retry-delay-not-a-number"),
        pytest.param({"ECR_ACCESS_RETRY_DELAY": "-1"}, {}, "ECR_ACCESS_RETRY_DELAY", id="retry-delay-negative"),
        pytest.param({"ECR_ACCESS_STALLED_RETRY_DELAY": "nan"}, {}, "ECR_ACCESS_STALLED_RETRY_DELAY",
                     id="stalled-retry-delay-nan"),
        pytest.param({"ECR_ACCESS_ROLE_CACHE_TTL": "-5"}, {}, "ECR_ACCESS_ROLE_CACHE_TTL", id="cache-ttl-negative"),
    ],
)
def test_bad_values_fail_at_start_up_naming_the_variable(environ, overrides, variable):
    with pytest.raises(ValueError, match=variable):
        config.load(overrides, environ)


def test_load_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("ECR_ACCESS_RESYNC_INTERVAL", "42")
    monkeypatch.setenv("ECR_ACCESS_NAMESPACES", "team-a")

    loaded = config.load({})

    assert loaded.resync_interval == 42.0
    assert loaded.namespaces == ("team-a",)


@pytest.mark.parametrize(
    ("namespaces", "effective"),
    [
        pytest.param((), (), id="cluster-wide"),
        pytest.param(("b", "a", "b"), ("a", "b"), id="sorted-and-deduplicated"),
    ],
)
def test_effective_namespaces(namespaces, effective):
    assert Config(namespaces=namespaces).effective_namespaces == effective


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        pytest.param("resync_interval", "ECR_ACCESS_RESYNC_INTERVAL", id="resync-interval"),
        pytest.param("cluster_id", "ECR_ACCESS_CLUSTER_ID", id="cluster-id"),
    ],
)
def test_env_name(field, variable):
    assert config.env_name(field) == variable


def test_every_setting_has_an_environment_variable():
    environ: dict[str, Any] = {config.env_name(field.name): "7" for field in Config.__dataclass_fields__.values()}
    environ["ECR_ACCESS_RESYNC_JITTER"] = "0.25"
    environ["ECR_ACCESS_POLICY_MODE"] = "Open"
    environ["ECR_ACCESS_VERIFY_IDENTITY"] = "true"
    environ["ECR_ACCESS_LOG_FORMAT"] = "json"

    loaded = config.load({}, environ)

    assert loaded == Config(
        policy_mode="Open", cluster_id="7", namespaces=("7",), region="7", resync_interval=7.0, resync_jitter=0.25,
        role_cache_ttl=7.0, cache_ttl=7.0, coalesce_window=7.0, coalesce_longest=7.0, propagation_window=7.0,
        sweep_interval=7.0, aws_rate_limit=7.0, aws_burst=7.0, retry_delay=7.0, stalled_retry_delay=7.0,
        progress_after=7.0, unreachable_after=7.0, write_attempts=7, refused_retry=7.0, refused_retry_max=7.0,
        metrics_port=7, metrics_address="7", verify_identity=True, log_format="json",
    )


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_metrics_port_that_is_no_port_is_refused_at_start_up(port):
    with pytest.raises(ValueError, match="ECR_ACCESS_METRICS_PORT"):
        config.load({}, {"ECR_ACCESS_METRICS_PORT": port})


@pytest.mark.parametrize("mode", ["enforce", "Closed", ""])
def test_a_policy_mode_other_than_enforce_or_open_is_refused_at_start_up(mode):
    if not mode:
        assert config.load({}, {"ECR_ACCESS_POLICY_MODE": mode}).policy_mode == "Enforce", "unset: the default"
        return
    with pytest.raises(ValueError, match="ECR_ACCESS_POLICY_MODE must be Enforce or Open"):
        config.load({}, {"ECR_ACCESS_POLICY_MODE": mode})


def test_policies_are_enforced_by_default():
    assert Config().policy_mode == "Enforce"
