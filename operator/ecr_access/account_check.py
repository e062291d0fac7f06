"""Whether an EcrAccessAccount works: assume its role, ask STS who that is, and say so in its status.

`Ready` is True once AssumeRole works and GetCallerIdentity answers with the account (DESIGN §6).
The check runs when the object is created, edited or seen at start-up (`watches`), and again when
assuming the role starts failing or works again while grants use it (`observed`, called by the AWS
adapter from the thread whose call needed fresh credentials). Nothing here writes on a schedule:
the status carries no timestamp that changes on refresh, so a working account writes nothing.

When an account becomes Ready, the grants that touch it are checked again at once (`recheck`), so
that a grant that was `AccountNotConfigured` or `AccountUnavailable` does not wait for its retry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ecr_access import accounts
from ecr_access.aws.accounts import AssumedAccounts
from ecr_access.conditions import Finding, Severity
from ecr_access.model import Defaults
from ecr_access.ports import AwsFault, FaultKind
from ecr_access.status import status_patch

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of an account: its status, what differs from the status it had, and when to check
    it again (None: not until it changes)."""

    status: Mapping[str, Any]
    changes: Mapping[str, Any]
    retry: float | None
    problem: Finding | None


class AccountChecker:
    def __init__(
        self, others: AssumedAccounts, defaults: Defaults, *, retry_delay: float, stalled_retry_delay: float,
        now: Callable[[], str], patch_status: Callable[[str, Mapping[str, Any]], None],
        recheck: Callable[[str], None],
    ) -> None:
        """`patch_status(name, changes)`: the account's status writer (blocking, `kube`);
        `recheck(account_id)`: check again the grants that touch that account."""
        self.others = others
        self.defaults = defaults
        self.retry_delay = retry_delay
        self.stalled_retry_delay = stalled_retry_delay
        self.now = now
        self.patch_status = patch_status
        self.recheck = recheck
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reports: set[asyncio.Task[None]] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop `observed` schedules its reports on (the operator's)."""
        self._loop = loop
        self.others.observe = self.observed

    async def check(self, item: accounts.Entry, generation: int, previous: Mapping[str, Any] | None,
                    rivals: Iterable[accounts.Entry]) -> Check:
        """Judge the object and, if it configures its account, assume the role and ask STS."""
        problem = accounts.refusal(item, rivals, self.defaults.account, self.defaults.partition)
        identity = None
        if problem is None and isinstance(item, accounts.AccountSpec):
            identity, problem = await self._identify(item)
        new = accounts.status(item, generation, problem, identity, previous, self.now())
        was_ready = any(condition.get("type") == "Ready" and condition.get("status") == "True"
                        for condition in (previous or {}).get("conditions") or [] if isinstance(condition, Mapping))
        if problem is None and isinstance(item, accounts.AccountSpec) and (
                not was_ready or (previous or {}).get("identityArn") != identity):
            self.recheck(item.account_id)
        retry = None
        if problem is not None and problem.reason not in ("InvalidSpec", "OwnAccount", "DuplicateAccount"):
            retry = self.retry_delay if problem.severity is Severity.TRANSIENT else self.stalled_retry_delay
        return Check(new, status_patch(previous, new), retry, problem)

    async def _identify(self, item: accounts.AccountSpec) -> tuple[str | None, Finding | None]:
        try:
            session = self.others.session(item.account_id)
            session.retry_assume()  # a check asks STS itself, whatever the grants' calls met lately
            account, arn = await session.run(session.caller_identity)
        except AwsFault as fault:
            return None, assume_problem(item, fault)
        if account != item.account_id:
            return None, Finding("AccountMismatch", f"Assuming {item.role_arn} acts as {arn}, in account {account}, "
                                 f"not in spec.accountId {item.account_id}.", Severity.TERMINAL)
        return arn, None

    def observed(self, spec: accounts.AccountSpec, fault: AwsFault | None) -> None:
        """Assuming the account's role started failing (`fault`) or works again (None): report it.
        Called from any thread; the report runs on the operator's loop."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._schedule, spec, fault)

    def _schedule(self, spec: accounts.AccountSpec, fault: AwsFault | None) -> None:
        task = asyncio.ensure_future(self._report(spec, fault))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _report(self, spec: accounts.AccountSpec, fault: AwsFault | None) -> None:
        if fault is None:
            identity, problem = await self._identify(spec)
        else:
            identity, problem = None, assume_problem(spec, fault)
        new = dict(accounts.status(spec, 0, problem, identity, None, self.now()))
        del new["observedGeneration"]  # not known here, and not changed by a refresh
        try:
            await asyncio.to_thread(self.patch_status, spec.name, new)
        except Exception as error:  # the report is lost, not the account's state
            logger.warning("Could not write the status of EcrAccessAccount %s: %s", spec.name, error)
        if problem is None:
            self.recheck(spec.account_id)


def assume_problem(item: accounts.AccountSpec, fault: AwsFault) -> Finding:
    """Why the account cannot be used: a trust policy or external id to fix (terminal) or AWS to wait
    for (transient)."""
    if fault.kind is FaultKind.ACCOUNT_UNAVAILABLE:
        cause = fault.cause or FaultKind.UNAVAILABLE
        hint = (" Check that the role's trust policy allows the operator's role to assume it"
                + (", with this external id." if item.external_id else ".")) if not cause.transient else " Retrying."
        return Finding("AssumeRoleFailed", f"Could not assume {item.role_arn}: {fault.detail}.{hint}",
                       Severity.TRANSIENT if cause.transient else Severity.TERMINAL)
    grade = Severity.TRANSIENT if fault.kind.transient else Severity.TERMINAL
    return Finding(fault.kind.value, f"{fault.operation} as {item.role_arn} failed: {fault.detail}.", grade)
