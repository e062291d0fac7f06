"""The operator's settings: one typed object, read once at start-up from flags and the environment.

Every setting has an environment variable (for Deployments and GitOps); the few that people change
by hand also have a command-line flag (`ecr-access-operator run --help`), which wins over the
environment. There is one name and one default per setting: the reconciler's parts read this same
object. Nothing reads the environment anywhere else.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence

ENV_PREFIX = "ECR_ACCESS_"
POLICY_MODES = ("Enforce", "Open")
LOG_FORMATS = ("plain", "full", "json")


@dataclasses.dataclass(frozen=True)
class Config:
    """Operator settings. Field docs are the user-facing documentation (the README repeats them)."""

    # Identifies this cluster in Sids. Default: the UID of the kube-system namespace, plus the
    # watched namespaces when the operator is namespace-scoped. Two deployments whose grants differ
    # must not share one.
    cluster_id: str | None = None
    # Namespaces to watch; empty means the whole cluster.
    namespaces: tuple[str, ...] = ()
    # Enforce: a grant may grant only what an EcrGrantPolicy selecting its namespace allows (none
    # selecting it: nothing). Open: every grant is permitted, for single-tenant clusters.
    policy_mode: str = "Enforce"
    # AWS region of the operator's session, and of repositories that give no region. Read from
    # ECR_ACCESS_REGION, then AWS_REGION (what the Deployment and the Helm chart set; boto3 alone
    # would ignore it), then AWS_DEFAULT_REGION; unset, the AWS profile's region.
    region: str | None = None
    # Seconds between drift checks of each grant.
    resync_interval: float = 300.0
    # Each grant's first drift check waits a random fraction of the interval, up to this share,
    # so that a restart does not re-check every grant at once.
    resync_jitter: float = 0.5
    # Seconds a resolved role ARN is reused by other grants naming the same role.
    role_cache_ttl: float = 60.0
    # Seconds an AWS answer (a role, its attached policies, a repository policy already holding what
    # the grants want) is reused by applies after a spec change; a drift pass reads each afresh,
    # once. A policy that needs a write is always read first.
    cache_ttl: float = 60.0
    # A repository's sync waits until no grant asked for it for this many seconds, so that a burst
    # (a GitOps sync creating many grants) shares one read and one write...
    coalesce_window: float = 0.5
    # ...but waits no longer than this.
    coalesce_longest: float = 60.0
    # Verify-after-write rounds against a concurrent writer of one repository policy, before the
    # sync gives up for now (AwsUnavailable, retried).
    write_attempts: int = 4
    # A principal ECR refused is offered again after this many seconds, doubling each time it is
    # refused again, up to refused_retry_max (its own grant's changes offer it again at once).
    refused_retry: float = 60.0
    refused_retry_max: float = 3600.0
    # Seconds during which ECR refusing a principal counts as IAM propagation of a new role
    # (Reconciling); after that the grant is Stalled.
    propagation_window: float = 120.0
    # Seconds between sweeps for this cluster's statements in repositories no live grant names
    # (left behind while the operator was down); 0 disables the sweep. It also runs at start.
    sweep_interval: float = 3600.0
    # AWS requests per second per service and region (IAM; ECR in each region), retries included,
    # and the burst allowed above it; 0 disables the limit. Keeps a cold start of many grants under
    # AWS's throttling, which is also per service and region.
    aws_rate_limit: float = 20.0
    aws_burst: float = 40.0
    # Seconds to wait before retrying a transient AWS failure.
    retry_delay: float = 15.0
    # Seconds before a retry after a failure that needs a person (re-checked anyway).
    stalled_retry_delay: float = 300.0
    # A change still being worked on after this many seconds (AWS is slow) is reported at once as
    # Reconciling, so that a new grant is never without status; quicker work writes status once.
    progress_after: float = 2.0
    # A repository whose region has not answered for this many seconds (AWS unreachable from the
    # cluster, a region not enabled) is reported Stalled (RepositoryUnreachable), not Reconciling.
    unreachable_after: float = 300.0
    # Where /metrics is served (Prometheus text format); port 0 serves none.
    metrics_port: int = 8000
    metrics_address: str = "0.0.0.0"
    # Ask IAM's policy simulator (iam:SimulatePrincipalPolicy, which the operator's policy must then
    # allow) whether each grant's role may log in to ECR and pull: one call per grant per check.
    verify_identity: bool = False
    # kopf's log formats: plain (the message only), full (time, logger and level first) or json
    # (one object per line). A text line about one object starts with [namespace/name]; a JSON
    # line carries it under "grant" (`model.LOG_REFKEY`).
    log_format: str = "full"

    @property
    def effective_namespaces(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.namespaces)))


_FIELDS: Mapping[str, type] = {
    "cluster_id": str,
    "namespaces": tuple,
    "policy_mode": str,
    "region": str,
    "resync_interval": float,
    "resync_jitter": float,
    "role_cache_ttl": float,
    "cache_ttl": float,
    "coalesce_window": float,
    "coalesce_longest": float,
    "write_attempts": int,
    "refused_retry": float,
    "refused_retry_max": float,
    "propagation_window": float,
    "sweep_interval": float,
    "aws_rate_limit": float,
    "aws_burst": float,
    "retry_delay": float,
    "stalled_retry_delay": float,
    "progress_after": float,
    "unreachable_after": float,
    "metrics_port": int,
    "metrics_address": str,
    "verify_identity": bool,
    "log_format": str,
}


def env_name(field: str) -> str:
    """`resync_interval` -> `ECR_ACCESS_RESYNC_INTERVAL`."""
    return ENV_PREFIX + field.upper()


def load(overrides: Mapping[str, object | None], environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from the environment, then apply non-None `overrides` (parsed flags).

    Raises ValueError with the variable's name when a value does not parse, so that a typo in a
    Deployment fails at start-up with a clear message rather than later.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field, kind in _FIELDS.items():
        raw = environ.get(env_name(field))
        if raw not in (None, ""):
            values[field] = _convert(field, kind, raw)
    if "region" not in values:
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if region:
            values["region"] = region
    for field, value in overrides.items():
        if value is not None:
            values[field] = _convert(field, _FIELDS[field], value)
    config = Config(**values)  # type: ignore[arg-type]
    # A negative or NaN delay would make kopf retry in a tight loop against AWS; refuse it here.
    for field, kind in _FIELDS.items():
        value = getattr(config, field)
        if kind is float and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{env_name(field)} must be a finite number >= 0, got {value}")
    if config.policy_mode not in POLICY_MODES:
        modes = " or ".join(POLICY_MODES)
        raise ValueError(f"{env_name('policy_mode')} must be {modes}, got {config.policy_mode!r}")
    if config.log_format not in LOG_FORMATS:
        raise ValueError(f"{env_name('log_format')} must be {', '.join(LOG_FORMATS)}, got {config.log_format!r}")
    if not 0 <= config.metrics_port <= 65535:
        raise ValueError(f"{env_name('metrics_port')} must be a port number (0 serves no metrics), "
                         f"got {config.metrics_port}")
    if config.write_attempts < 1:
        raise ValueError(f"{env_name('write_attempts')} must be at least 1, got {config.write_attempts}")
    if config.resync_interval <= 0:
        raise ValueError(f"{env_name('resync_interval')} must be positive, got {config.resync_interval}")
    if not 0 <= config.resync_jitter <= 1:
        raise ValueError(f"{env_name('resync_jitter')} must be between 0 and 1")
    return config


def _convert(field: str, kind: type, raw: object) -> object:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).strip().lower() in ("true", "1", "yes", "on"):
            return True
        if str(raw).strip().lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{env_name(field)}: {raw!r} is not true or false")
    if kind is tuple:
        if isinstance(raw, str):
            return tuple(item.strip() for item in raw.split(",") if item.strip())
        if isinstance(raw, Sequence):
            return tuple(str(item) for item in raw)
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{env_name(field)}: {raw!r} is not a valid {kind.__name__}") from None
