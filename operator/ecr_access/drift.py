"""The drift check: one loop per operator re-applies every live grant once per resync interval.

Why one loop and not a kopf timer per grant: a timer is a sleeping task per object, and kopf keeps
each timed object's latest body in memory for it. At 1,000 grants that was 30 MiB of the
operator's peak RSS (`make bench`, 2026-11-29: 189 MiB with timers, 159 MiB without). One pass also
reads each role and repository exactly once, where timers spread over the interval re-read whatever
had aged out between them: every apply in a pass reuses what the pass read, and nothing read before
the pass began (`ApplyMode.drift`), however young. An age limit instead (0.9 of the interval, until
2026-12) let a pass reuse what the previous pass had read late whenever that pass ran slower than
this one, and so miss drift made since (`tests/unit/test_drift.py`).

What a pass does for each live grant is what the change handlers do, `cycle.apply_and_report`
(which repairs whatever differs, and reports only what differs from the grant's status, so that a
quiet steady state writes nothing); the status patch goes through the one status writer
(`kube.patch_status`). The applied record is left to the grant's handlers, which kopf retries
until it can move on. A grant
whose check hit a transient failure is checked again after `retry_delay`, not a whole interval
later. A "reconcile now" request (`request`, from the annotation `ecraccess.io/reconcile-requested-at`)
checks that grant at once against fresh AWS reads and echoes the value in
`status.lastHandledReconcileAt`. The loop waits for the live-grant indexes to be complete, like the
orphan sweep.

No kopf and no kubernetes client here: status writes and Events go through the callables given
at construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ecr_access import accounts, cause, cycle, tasks
from ecr_access.grants import LiveGrant, LiveGrants
from ecr_access.model import GrantKey
from ecr_access.ownership import GrantGone
from ecr_access.reconcile import ApplyMode, Reconciler
from ecr_access.status import PatchStatus

logger = logging.getLogger(__name__)

# How many grants one pass checks at a time: enough to overlap AWS round trips, few enough that a
# pass over thousands of grants holds little memory at once. The bound is per set of AWS accounts a
# grant touches (`_lane`), and a slot is free again as soon as its grant is done: grants waiting on
# an account that is throttled or down (each call may take a minute) hold up only grants in the
# same accounts, never the operator's own account's (the AWS work itself is bounded per account,
# `reconcile.AWS_CONCURRENCY`).
CONCURRENCY = 32

Warn = Callable[[LiveGrant, str, str], None]  # an Event on the grant (Warning, or Normal: `inform`): reason, message


@dataclasses.dataclass
class PassReport:
    """What one pass did, for logs and tests."""

    checked: int = 0
    patched: int = 0
    retrying: int = 0
    failed: int = 0
    left: int = 0  # left to the change handler that has them in hand (`cycle.InHand`), not checked


class DriftChecker:
    """Checks every live grant each `interval` seconds, and grants that failed transiently sooner."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        interval: float,
        retry_delay: float,
        write_status: PatchStatus,
        warn: Warn,
        inform: Warn | None = None,
        now: Callable[[], str],
        first_delay: float | None = None,
        stalled_retry_delay: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        in_hand: cycle.InHand | None = None,
    ) -> None:
        """`write_status(key, patch)` merge-patches the grant's status (blocking; run in a thread);
        `warn(grant, reason, message)` posts a Warning Event; `now()` is the timestamp for condition
        transitions. `first_delay` (default: one interval) is the wait from readiness to the first
        pass: at start-up kopf's resume handlers have just applied every grant."""
        self.reconciler = reconciler
        self.in_hand = in_hand or cycle.InHand(settle=interval, clock=clock)
        self.interval = interval
        self.retry_delay = retry_delay
        self.timing = cycle.Timing(retry_delay, stalled_retry_delay)
        self.write_status = write_status
        self.warn = warn
        self.inform = inform or (lambda grant, reason, message: logger.info("%s %s: %s", grant.key, reason, message,
                                                                            extra=grant.key.log_ref()))
        self._post_runner: Callable[..., Any] | None = None
        self.now = now
        self.first_delay = interval if first_delay is None else first_delay
        self._clock = clock
        self._live: LiveGrants | None = None
        self._ready = asyncio.Event()
        self._retry: dict[Any, float] = {}  # grant key -> when to check it again
        self._requested: dict[Any, str] = {}  # grant key -> the reconcile-now value to echo
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0

    def indexes_ready(self, live: LiveGrants) -> None:
        """Called by every handler (and at start-up when there are no grants); the first call counts."""
        if self._live is None:
            self._live = live
            self._ready.set()

    def post_within(self, capture: Callable[[], contextvars.Context]) -> None:
        """How this loop posts Events: kopf's event queue is known only inside its handlers' context,
        not in a loop started at start-up, so the wiring hands over a handler's (`capture` is
        `contextvars.copy_context`, called once)."""
        if self._post_runner is None:
            self._post_runner = capture().run

    def _post(self, post: Warn, grant: LiveGrant, reason: str, message: str) -> None:
        if self._post_runner is None:
            post(grant, reason, message)
        else:
            self._post_runner(post, grant, reason, message)

    def start(self) -> None:
        self._task = tasks.start(self._task, self.run(), "drift-check")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    def request(self, key: Any, value: str) -> None:
        """Check this grant now, against fresh AWS reads, and echo `value` once done. Call from the loop."""
        self._requested[key] = value
        self._wakeup.set()

    def recheck(self, keys: Iterable[Any]) -> None:
        """Check these grants now, as a pass would (what judges them changed: `revocation`). Call
        from the loop."""
        now = self._clock()
        for key in keys:
            self._retry[key] = now
        self._wakeup.set()

    def recheck_account(self, account: str) -> None:
        """Check now the grants whose role or repositories are in `account` (it just became usable)."""
        if self._live is not None:
            self.recheck(grant.key for grant in self._live.everything() if accounts.touches(grant.spec, account))

    async def run(self) -> None:
        await self._ready.wait()
        next_pass = self._clock() + self.first_delay
        while True:
            wake = min([next_pass, *self._retry.values()])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(0.0, wake - self._clock()))
            self._wakeup.clear()
            if self._requested:
                keys = list(self._requested)
                try:
                    await self.check_requested()
                except Exception:  # like a failed pass: logged, and the loop goes on
                    logger.exception("Reconcile-now check of %s failed", ", ".join(map(str, keys)),
                                     extra=keys[0].log_ref() if len(keys) == 1 and isinstance(keys[0], GrantKey)
                                     else None)
                continue
            if self._clock() >= next_pass:
                next_pass = self._clock() + self.interval
                due = None  # everything
            else:
                due = {key for key, when in self._retry.items() if when <= self._clock()}
            try:
                report = await self.check(due)
            except Exception:  # a failed pass is retried on the next interval; it must not end the loop
                logger.exception("Drift check failed; retrying in %.0fs", self.interval)
                continue
            logger.info("Drift check: %d grants checked, %d statuses changed, %d retrying, %d failed, "
                        "%d left to their change handlers", report.checked, report.patched, report.retrying,
                        report.failed, report.left)

    def due_for_retry(self) -> set[Any]:
        """Grants whose last check failed transiently and is to be repeated before the next pass."""
        return set(self._retry)

    async def check_requested(self) -> PassReport:
        """Check the grants whose reconcile-now request is pending, with no cached AWS answer."""
        requested, self._requested = self._requested, {}
        with cause.acting_for(cause.CHANGE):  # a person asked: not what the periodic passes cost
            return await self._check(requested, handled=requested)

    async def check(self, only: Iterable[Any] | None = None, handled: Mapping[Any, str] | None = None) -> PassReport:
        """One pass over the live grants (or over the keys in `only`): each AWS answer read once,
        afresh, and shared by the pass. Its AWS calls, and those of the grants' changes that join
        its reads, are the drift pass's (`cause`)."""
        with cause.acting_for(cause.DRIFT):
            return await self._check(only, handled)

    async def _check(self, only: Iterable[Any] | None, handled: Mapping[Any, str] | None) -> PassReport:
        assert self._live is not None, "indexes_ready() first"
        live = self._live
        began = self.reconciler.clock()  # on the caches' clock: what the pass reads after this, it reuses
        grants = list(live.everything())
        if only is not None:
            keys = set(only)
            grants = [grant for grant in grants if grant.key in keys]
            for key in keys:
                self._retry.pop(key, None)
        else:
            self._retry.clear()
        report = PassReport()
        self.in_hand.prune()
        started = self._clock()
        # Inactive grants too (suspended, or their spec invalid): their frozen contribution is
        # judged again (`Reconciler.resync`). A grant handing over belongs to its delete handler.
        lanes: dict[frozenset[str], list[LiveGrant]] = {}
        for grant in grants:
            if not grant.handing_over:
                lanes.setdefault(_lane(grant), []).append(grant)

        async def worker(queue: Iterator[LiveGrant]) -> None:
            for grant in queue:  # the workers of a lane share its queue: a slot frees as its grant ends
                try:
                    result = await self._check_one(grant, live, began, (handled or {}).get(grant.key))
                except Exception as error:
                    report.checked += 1
                    report.failed += 1
                    logger.error("Drift check of %s failed: %r", grant.key, error, extra=grant.key.log_ref())
                    self._retry[grant.key] = self._clock() + self.retry_delay
                    continue
                if result == "left":
                    report.left += 1
                    if only is not None:
                        # Asked for by name (a retry, or a policy that changed: `revocation`): the
                        # handler may have judged it before the change, so check it again after.
                        self._retry[grant.key] = self._clock() + self.retry_delay
                    continue
                report.checked += 1
                if result == "retry":
                    report.retrying += 1
                    self._retry[grant.key] = self._clock() + self.retry_delay
                elif result == "patched":
                    report.patched += 1

        queues = [iter(lane) for lane in lanes.values()]
        await asyncio.gather(*(worker(queue) for queue, lane in zip(queues, lanes.values(), strict=True)
                               for _ in range(min(CONCURRENCY, len(lane)))))
        self.passes += 1
        if only is None:  # a whole pass: what the "no drift pass for a while" alert watches
            self.reconciler.metrics.drift_pass(self._clock() - started, time.time())
        return report

    async def _check_one(self, snapshot: LiveGrant, live: LiveGrants, began: float, handled: str | None = None) -> str:
        # The index entry as it is now: the grant may have changed, or begun deleting, since the pass
        # began (a deleting grant is gone from the index or handing over, and must not be applied again).
        grant = next((entry for entry in live.on_role(snapshot.spec.role.key) if entry.key == snapshot.key), None)
        if grant is None or grant.handing_over:  # deleting: its release handler is in charge
            return "gone"
        if handled is None and self.in_hand.owns(grant):  # its handler applies and reports it (`cycle.InHand`)
            return "left"  # (a reconcile-now request is checked all the same: its value must be echoed)
        if not grant.active:  # suspended or invalid: change nothing of it, but judge it as it stands
            await self.reconciler.resync(grant, live, math.inf, since=began)
            return "unchanged"
        mode = ApplyMode.requested() if handled else ApplyMode.drift(began)
        try:
            report = await cycle.apply_and_report(
                self.reconciler, grant.key, grant.spec, live, generation=grant.generation, previous=grant.status,
                applied=grant.applied, recorded=None, mode=mode, timing=self.timing, now=self.now, handled=handled)
        except GrantGone:
            return "gone"
        if report.status:
            await asyncio.to_thread(self.write_status, grant.key, report.status)
        for reason, message in report.notes:  # what is left of the previous spec is the handler's to report
            self._post(self.warn, grant, reason, message)
        for kind, reason, message in report.events:
            self._post(self.warn if kind == "Warning" else self.inform, grant, reason, message)
        if report.transient:
            return "retry"
        return "patched" if report.status else "unchanged"


def _lane(grant: LiveGrant) -> frozenset[str]:
    """The AWS accounts a grant's check works in (its role's and its repositories')."""
    return frozenset({grant.spec.role.account, *(repo.registry_id for repo in grant.spec.repositories)})


def jittered(interval: float, jitter: float) -> float:
    """A first-pass delay: one interval plus up to `jitter` of another, so that operators restarted
    together (one per cluster, sharing repositories) do not read the same policies in step."""
    return interval * (1 + random.uniform(0, jitter))
