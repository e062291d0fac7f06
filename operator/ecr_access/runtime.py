"""What every handler needs (`Runtime`), built once at start-up (`cli.build_runtime`) and kept in
kopf's memo. No kopf here: the handlers read it, the loops and adapters are built into it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ecr_access import cycle, revocation, status
from ecr_access.account_check import AccountChecker
from ecr_access.aws.accounts import AssumedAccounts
from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.model import Defaults, GrantKey
from ecr_access.probes import Readiness
from ecr_access.reconcile import Reconciler
from ecr_access.sweep import Sweeper


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Everything a handler needs, built once at start-up and kept in kopf's memo."""

    config: Config
    defaults: Defaults
    reconciler: Reconciler
    sweeper: Sweeper
    drift: DriftChecker | None = None
    # How many grants existed when `cli.build_runtime` looked, before kopf started (a list with
    # limit=1, so 0 or more): zero means the (empty) indexes are complete at start-up, so the orphan
    # sweep and readiness need not wait for a first handler call. Counted there, not in kopf's
    # start-up handler, so that a refusal (RBAC, no CRD) exits with the reason instead of looping.
    grants_at_start: int = 1
    # The one status writer outside kopf's own patch (`kube.patch_status`), which kopf writes only
    # when a handler returns: a new spec's progress report, and a stalled delete's verdict while it
    # waits for a person. The drift loop writes through the same function.
    patch_status: status.PatchStatus = lambda key, changes: None
    # The grant's spec as the API server has it now (blocking; None once it is gone), or None when
    # there is no API server to ask: then a stalled delete just waits out stalled_retry_delay.
    read_spec: Callable[[GrantKey], Mapping[str, Any] | None] | None = None
    # The whole grant as the API server has it now (blocking; None once it is gone), or None where
    # there is none to ask: a change handler given a body older than what it had kopf write reads
    # the grant afresh (`handlers._apply`).
    read_grant: Callable[[GrantKey], Mapping[str, Any] | None] | None = None
    # What the policies and namespace labels were when last seen (`revocation`), and the writer of a
    # policy's status (`kube.patch_policy_status`).
    revocations: revocation.Watch = dataclasses.field(default_factory=revocation.Watch)
    patch_policy_status: Callable[[str, Mapping[str, Any]], None] = lambda name, changes: None
    # The accounts EcrAccessAccounts configure (`aws.accounts`), and the check that reports on them.
    others: AssumedAccounts | None = None
    account_checker: AccountChecker | None = None
    # The grants a change handler has in hand, which the drift loop leaves to it (`cycle.InHand`;
    # the same object as `drift.in_hand`).
    in_hand: cycle.InHand = dataclasses.field(default_factory=lambda: cycle.InHand(settle=0.0))
    # What /readyz says (`probes`): AWS answered at start-up, and kopf's indexes are complete.
    readiness: Readiness = dataclasses.field(default_factory=Readiness)
