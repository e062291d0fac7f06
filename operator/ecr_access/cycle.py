"""One grant cycle, shared by the kopf handlers and the drift loop: apply a grant, and report it.

"Apply, build the status, patch it, post Events, decide the retry" used to be written twice, once
per caller, and drifted apart. Here it is once, and it writes nothing itself: it returns a `Report`
that each caller carries out with its own writer (kopf's patch in a handler, the Kubernetes adapter
in the drift loop), so that a handler's status and its applied record land in kopf's one patch.
The drift loop writes no record, so what is left of a grant's previous contribution stays with the
grant's handler, which kopf retries until the record can move on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from ecr_access import grants, status
from ecr_access.conditions import Severity
from ecr_access.grants import LiveGrant, LiveGrants
from ecr_access.model import GrantKey, GrantSpec
from ecr_access.reconcile import ApplyMode, Reconciler
from ecr_access.status import Event

# While the apply runs: report progress, and return the status as it then is on the API server.
Watch = Callable[[asyncio.Future[Any]], Awaitable[Mapping[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Report:
    """What one cycle asks its caller to write and do."""

    status: status.StatusPatch  # the status merge patch; empty when nothing changed
    record: str | None = None  # the applied record's new value (`grants.APPLIED_ANNOTATION`), if it moves on
    # Warning Events, (reason, message): about this apply (a concurrent policy edit), and about what is
    # left of the previous contribution, which only whoever writes the record can settle.
    notes: tuple[tuple[str, str], ...] = ()
    unsettled: tuple[tuple[str, str], ...] = ()
    transient: bool = False  # what the spec asks for is retried soon (Reconciling)
    # Seconds until the grant's handler should run again (the spec's transient failures, or what is
    # left of the previous contribution); None: nothing to retry.
    retry: float | None = None
    message: str = ""  # the Ready condition's message
    events: tuple[Event, ...] = ()  # (type, reason, message): Normal or Warning Events to post


class InHand:
    """The grants a change handler has in hand, in this process: a pass of the drift loop leaves
    those to their handler, so that one grant is not in two cycles at once.

    Two cycles of one grant each report it from their own `previous` status. The drift loop's is
    the index's, which under a burst lags behind the handler's writes by seconds: at N=1,000 a pass
    that ran through the burst checked grants whose create handler had not begun or was still
    applying, or whose handler's patch had not reached the index, and wrote their status again (a
    new lastTransitionTime) and posted a second `Applied` Event, in what the benchmark had counted
    as the steady state.

    A grant is its handler's from the moment the index shows a spec not yet applied (`expect`: kopf
    indexes an object before it runs its handlers), while the handler runs (`holding`), and after
    it, until the index shows the handler's whole patch: the applied record and the conditions the
    handler reported (`writes`). kopf writes them in two requests, the object's metadata and then
    its status subresource, and the index may see the first seconds before the second. Never for
    more than `settle` seconds after the last of these: a record that does not move on (what the
    previous spec left is unsettled, and kopf retries later), or one edited by hand, must not keep
    drift repair away for long. In-process state, not the grant's status; nothing written to AWS
    depends on it, only which cycle reports the grant.
    """

    def __init__(self, settle: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle = settle
        self._clock = clock
        self._running: collections.Counter[Any] = collections.Counter()
        self._handed: dict[Any, float] = {}  # grant key -> when it was last its handler's
        self._written: dict[Any, tuple[Any, ...]] = {}  # grant key -> the conditions its handler reported

    def expect(self, key: Any) -> None:
        """The index shows grant `key` with a spec not yet applied: its change handler comes next."""
        self._handed[key] = self._clock()

    @contextlib.contextmanager
    def holding(self, key: Any) -> Iterator[None]:
        """While the handler's cycle of grant `key` runs."""
        self._running[key] += 1
        try:
            yield
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
            self._handed[key] = self._clock()

    def writes(self, key: Any, patch: Mapping[str, Any]) -> None:
        """The handler of grant `key` reports the status merge `patch`: the index must show its
        conditions before the grant is the drift loop's again (none: it changes none)."""
        if patch.get("conditions") is not None:
            self._written[key] = _conditions(patch)
        else:
            self._written.pop(key, None)

    def owns(self, grant: LiveGrant) -> bool:
        """Whether `grant`, as the index holds it now, is still its handler's to report."""
        if grant.key in self._running:
            return True
        handed = self._handed.get(grant.key)
        if handed is None:
            return False
        shown = grant.applied == grant.spec and self._written.get(grant.key, ()) in ((), _conditions(grant.status))
        if shown or self._clock() - handed > self.settle:
            self._forget(grant.key)
            return False
        return True

    def prune(self) -> None:
        """Forget grants handed over more than `settle` seconds ago (a pass calls it: deleted grants)."""
        now = self._clock()
        for key in [key for key, handed in self._handed.items() if now - handed > self.settle]:
            self._forget(key)

    def _forget(self, key: Any) -> None:
        del self._handed[key]
        self._written.pop(key, None)


def _conditions(status: Mapping[str, Any]) -> tuple[Any, ...]:
    """What is compared of a status the handler wrote and the one the index shows: each condition's
    type, status and reason, not a message or a time the API server may store otherwise."""
    return tuple((item.get("type"), item.get("status"), item.get("reason"))
                 for item in status.get("conditions") or () if isinstance(item, Mapping))


@dataclasses.dataclass(frozen=True)
class Timing:
    """The retry delays, from `Config`."""

    retry_delay: float
    stalled_retry_delay: float


async def apply_and_report(
    reconciler: Reconciler, key: GrantKey, spec: GrantSpec, live: LiveGrants, *, generation: int,
    previous: Mapping[str, Any], applied: GrantSpec | None, recorded: str | None, mode: ApplyMode, timing: Timing,
    now: Callable[[], str],
    handled: str | None = None, watch: Watch | None = None,
) -> Report:
    """Apply one grant and say what to report. `applied`: its applied record, parsed; `recorded`:
    that record as written (None when the caller does not write records).

    A suspended grant changes nothing and is only acknowledged. `handled`: a reconcile-now value to
    echo in status. `watch`: a handler's progress report while a new spec's work outlasts a moment.
    """
    if spec.suspend:
        # Counted as its status last said (a report of a report: nothing is decided from it), so that
        # a suspended grant does not vanish from ecr_access_grants when the operator restarts.
        kept = {item.get("type"): item for item in (previous or {}).get("conditions") or []
                if isinstance(item, Mapping)}
        last = kept.get("Ready") or {"status": "Unknown", "reason": "Suspended"}
        reconciler.metrics.grant_state(key, str(last.get("status")), str(last.get("reason")),
                                       (kept.get("Stalled") or {}).get("status") == "True")
        return Report(status.status_patch(previous, status.suspended_status(generation, previous)))
    started = time.monotonic()
    work = asyncio.ensure_future(reconciler.apply(key, spec, applied, live, mode))
    try:
        if watch is not None:
            previous = await watch(work)
        outcome = await work
    except Exception:
        reconciler.metrics.reconciled("error", time.monotonic() - started)
        raise
    finally:
        work.cancel()  # a no-op once done; stops the work if the caller is cancelled (operator stop)
    new, patch = status.for_outcome(outcome, generation, previous, now(), handled)
    ready = new["conditions"][0]
    stalled = any(c["type"] == "Stalled" and c["status"] == "True" for c in new["conditions"])
    reconciler.metrics.grant_state(key, ready["status"], ready["reason"], stalled)
    # What a suspend freezes and a delete releases (metadata, judged like the spec). It moves on only
    # once nothing of the previous contribution is left, so that a retry or the delete still names it.
    record = grants.applied_annotation(spec)
    retry = None
    if outcome.transient or outcome.unsettled:
        soon = outcome.transient or any(item.severity is Severity.TRANSIENT for item in outcome.unsettled)
        retry = timing.retry_delay if soon else timing.stalled_retry_delay
    reconciler.metrics.reconciled("success" if retry is None else "requeue_after", time.monotonic() - started)
    events = status.transition_events(previous, new, generation)
    if outcome.repaired:
        events.append(("Normal", "DriftRepaired", "; ".join(outcome.repaired) + "."))
    return Report(
        patch, record if record != recorded and not outcome.unsettled else None,
        notes=tuple(("ConcurrentPolicyEdit", note) for note in outcome.notes),
        unsettled=tuple(("PreviousSpecNotReleased", left.message) for left in outcome.unsettled),
        transient=outcome.transient, retry=retry, message=new["conditions"][0]["message"], events=tuple(events))
