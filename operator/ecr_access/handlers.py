"""kopf wiring, and only wiring: each handler is a few lines around `cycle` (apply) or `reconcile`
(release), putting what they report into kopf's patch.

Decisions that belong to kopf live here:
- two indexes of live grants (by repository and by role): kopf fills them completely before any
  handler runs, so a repository's statements are always derived from every live grant;
- our own finalizer (`ecraccess.io/finalizer`) and annotation prefix (`ecraccess.io`), and explicit
  handler ids, none of which may change later (they key state stored in etcd);
- how a report becomes a kopf retry: transient failures raise `kopf.TemporaryError`; failures that
  need a person are reported as `Stalled` and re-checked by the drift check (`drift`, one loop for
  all grants, started here at start-up, beside the orphan sweep).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ecr_access import cycle, events, grants, progress, status, watches
from ecr_access.config import Config
from ecr_access.events import inform, warn
from ecr_access.model import GROUP, PLURAL, VERSION, DeletionPolicy, GrantKey
from ecr_access.reconcile import ApplyMode
from ecr_access.runtime import Runtime
from ecr_access.spec import SpecError, parse_spec
from ecr_access.watches import FINALIZER, RESOURCE, now

ANNOTATION_PREFIX = "ecraccess.io"
# Set to any new value (as Flux's reconcile.fluxcd.io/requestedAt) to re-check a grant now, against
# fresh AWS reads; the value handled is echoed in status.lastHandledReconcileAt.
RECONCILE_REQUESTED = "ecraccess.io/reconcile-requested-at"


logger = logging.getLogger(__name__)

# On a grant's own kopf memo: (uid, generation, hash of the applied record) its change handler last had
# kopf write (a hash: the record itself is a few hundred bytes per grant, kept for the grant's life).
_WROTE = "ecr_access_wrote"

# What the rest of the code, the tests and deploy/ name here (some are defined in `watches` and `model`).
__all__ = [
    "ANNOTATION_PREFIX",
    "FINALIZER",
    "GROUP",
    "PLURAL",
    "RECONCILE_REQUESTED",
    "RESOURCE",
    "VERSION",
    "Runtime",
    "configure",
    "inform",
    "now",
    "on_grant_create",
    "on_grant_delete",
    "on_grant_event",
    "on_grant_resume",
    "on_grant_update",
    "register",
    "warn",
]


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings that are part of our contract with the cluster."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # Only warnings become Kubernetes Events: a quiet steady state makes no API writes at all.
    settings.posting.level = logging.WARNING
    # A drift check running when its grant is deleted holds up the finalizer until kopf polls again
    # (default 60 s): poll every second so that `kubectl delete` returns promptly.
    settings.background.cancellation_polling = 1.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


# -- handlers -----------------------------------------------------------------------------------------


# Handlers are coroutines: while a grant waits for its repositories' shared sync (a burst of a
# thousand grants may wait on one repository), it holds no thread. Blocking AWS calls run in threads
# inside the AWS adapter (`aws/`).


async def on_grant_create(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    await _apply(body, patch, memo, kwargs)


async def on_grant_update(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    await _apply(body, patch, memo, kwargs)


async def on_grant_resume(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    await _apply(body, patch, memo, kwargs)


async def on_grant_delete(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    runtime: Runtime = memo.runtime
    live = watches.live(kwargs, runtime.config)
    _indexes_ready(runtime, live, kwargs)
    meta = body.get("metadata", {})
    key = GrantKey(meta.get("namespace", ""), meta.get("name", ""))
    # What to release comes from the spec and from what the grant last applied, never from status:
    # a spec made invalid before the delete still releases what was applied.
    spec = grants.parse_own_spec(body.get("spec"), runtime.defaults)
    applied = grants.parse_applied((meta.get("annotations") or {}).get(grants.APPLIED_ANNOTATION), runtime.defaults,
                                   key)
    if spec is None and applied is None:
        logger.info("Grant %s never applied anything: nothing to release", key, extra=key.log_ref())
        runtime.reconciler.metrics.grant_gone(key)
        return
    previous = dict(body.get("status") or {})
    outcome = await runtime.reconciler.release(key, spec, applied, live, str(meta.get("uid", "")))
    for left in outcome.unsettled:  # what the delete could not check, and does not wait for
        events.post(body, "Warning", left.reason, left.message)
    if not (outcome.transient or outcome.terminal):
        runtime.reconciler.metrics.grant_gone(key)
        given = spec or applied
        if given is not None and given.deletion_policy is DeletionPolicy.DELETE:
            role = outcome.role_arn or given.role.describe()
            events.post(body, "Normal", "AccessRemoved", f"IAM role {role} was taken out of the policies of "
                        f"{len(given.repositories)} repositories; a managed policy the operator attached is "
                        "detached unless another grant wants it.")
        return
    new, changes = status.for_outcome(outcome, meta.get("generation", 0), previous, now())
    message = new["conditions"][0]["message"]
    if outcome.transient:
        _write_status(patch, changes)
        raise kopf.TemporaryError(message, delay=runtime.config.retry_delay)
    # Stalled, e.g. a Retain hand-over that does not fit. Report it now, then wait for a person: a
    # change to the grant (deletionPolicy: Delete, a smaller spec) is acted on at once, not after a
    # kopf delay; otherwise it is re-checked after stalled_retry_delay.
    if changes:
        await progress.write_now(runtime.patch_status, key, changes, "the stalled delete")
    await progress.wait_for_change(runtime.read_spec, key, body.get("spec"), runtime.config.stalled_retry_delay)
    raise kopf.TemporaryError(message, delay=0)


async def _apply(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, kwargs: Mapping[str, Any]) -> None:
    runtime: Runtime = memo.runtime
    live = watches.live(kwargs, runtime.config)
    _indexes_ready(runtime, live, kwargs)
    meta = body.get("metadata", {})
    generation = int(meta.get("generation") or 0)
    previous = dict(body.get("status") or {})
    try:
        spec = parse_spec(body.get("spec"), runtime.defaults)
    except SpecError as error:
        # Nothing changes in AWS: the grant's last applied contribution stays (see `grants`).
        invalid = status.invalid_spec_status(str(error), generation, previous, now())
        _write_status(patch, status.status_patch(previous, invalid))
        runtime.reconciler.metrics.grant_state(_key(meta), "False", "InvalidSpec", stalled=True)
        return
    key = GrantKey(meta.get("namespace", ""), meta.get("name", ""))
    recorded = (meta.get("annotations") or {}).get(grants.APPLIED_ANNOTATION)
    wrote = (meta.get("uid"), generation, hash(grants.applied_annotation(spec)))
    if getattr(memo, _WROTE, None) == wrote and hash(recorded) != wrote[2] and runtime.read_grant is not None:
        # This process had kopf write this spec's record, and the body lacks it: kopf handed over an
        # event from before its own patch (its watch lagged longer than it waits for that patch).
        # Apply as always (what AWS gets is never decided from status), but report from the grant
        # as the API server has it now: from the stale body, the report was a second `Applied`
        # Event and a status written again.
        fresh = await asyncio.to_thread(runtime.read_grant, key)
        fresh_meta = (fresh or {}).get("metadata") or {}
        if fresh is None or fresh_meta.get("uid") != wrote[0] or fresh_meta.get("generation") != generation:
            return  # gone, or its spec changed since: kopf has newer events to hand over
        logger.info("Grant %s: kopf handed over a body older than its last patch; reporting from the grant "
                    "read afresh", key, extra=key.log_ref())
        previous = dict(fresh.get("status") or {})
        recorded = (fresh_meta.get("annotations") or {}).get(grants.APPLIED_ANNOTATION)

    async def watch(work: asyncio.Future[Any]) -> Mapping[str, Any]:
        if generation == previous.get("observedGeneration"):  # a resume or a label edit, not a new spec
            return previous
        return await progress.report_progress(runtime.patch_status, key, generation, previous, work,
                                              after=runtime.config.progress_after, now=now)

    with runtime.in_hand.holding(key):  # the drift loop leaves the grant to this handler meanwhile
        report = await cycle.apply_and_report(
            runtime.reconciler, key, spec, live, generation=generation, previous=previous,
            applied=grants.parse_applied(recorded, runtime.defaults, key), recorded=recorded,
            mode=ApplyMode.change(runtime.reconciler.clock()),
            timing=_timing(runtime.config), now=now, watch=watch)
        runtime.in_hand.writes(key, report.status)
    _write_status(patch, report.status)
    if report.record is not None:
        patch.metadata.annotations[grants.APPLIED_ANNOTATION] = report.record
    setattr(memo, _WROTE, (meta.get("uid"), generation, hash(report.record or recorded)))  # this object's memo
    for reason, message in (*report.notes, *report.unsettled):
        events.post(body, "Warning", reason, message)
    for kind, reason, message in report.events:
        events.post(body, kind, reason, message)
    if report.retry is not None:
        raise kopf.TemporaryError(report.message, delay=report.retry)


def _key(meta: Mapping[str, Any]) -> GrantKey:
    return GrantKey(meta.get("namespace", ""), meta.get("name", ""))


def _timing(config: Config) -> cycle.Timing:
    return cycle.Timing(config.retry_delay, config.stalled_retry_delay)


async def on_grant_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Every watch event: a new reconcile-now value asks the drift check to check this grant now.

    Our annotations do not count as changes to kopf (its diff ignores the prefix it stores state
    under), so this cannot be an update handler. The echo in status only spares a second check of
    a value already handled; the check itself is safe to repeat.
    """
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:
        # kopf runs this handler too only once its indexes are complete, and for every grant it
        # lists, where it runs no changing handler for one being deleted without our finalizer, nor
        # for one whose handler waits out a delay from before a restart: readiness must not wait for those.
        _indexes_ready(runtime, watches.live(kwargs, runtime.config), kwargs)
    meta = body.get("metadata", {})
    value = (meta.get("annotations") or {}).get(RECONCILE_REQUESTED)
    if runtime is None or runtime.drift is None or not value or meta.get("deletionTimestamp"):
        return
    if value == (body.get("status") or {}).get("lastHandledReconcileAt"):
        return
    key = GrantKey(meta.get("namespace", ""), meta.get("name", ""))
    spec = grants.parse_own_spec(body.get("spec"), runtime.defaults)
    if spec is None or spec.suspend:
        # Nothing to check (suspended: change nothing; invalid: its status says why); acknowledge it,
        # so that `kubectl wait` on the echo does not wait forever.
        await progress.write_now(runtime.patch_status, key, {"lastHandledReconcileAt": str(value)},
                                 "a reconcile request")
        return
    runtime.drift.request(key, str(value))


def _indexes_ready(runtime: Runtime, live: grants.IndexedGrants, kwargs: Mapping[str, Any],
                   resource_handler: bool = True) -> None:
    """kopf runs no resource handler before its indexes are complete: the first call is the signal
    that the orphan sweep and the drift check may start, and that the operator is ready."""
    runtime.readiness.indexes_complete = True
    runtime.sweeper.indexes_ready(live)
    if runtime.drift is not None:
        if resource_handler:
            # kopf's event queue lives in its resource handlers' context, not in start-up's nor in the
            # loop started there: the drift loop posts its Events in a copy of this one (every
            # handler's queue is the operator's one queue).
            runtime.drift.post_within(contextvars.copy_context)
        runtime.drift.indexes_ready(live)
    if runtime.others is not None:
        runtime.others.bind(watches.account_lookup(kwargs, runtime.defaults.partition), watches.account_listing(kwargs))


def _write_status(patch: kopf.Patch, changes: Mapping[str, Any]) -> None:
    """Put a status patch into kopf's patch; nothing at all when nothing changed (no heartbeats in etcd)."""
    for key, value in changes.items():
        patch.status[key] = value


# -- registration ------------------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, config: Config, build_runtime: Any) -> None:
    """Register every handler on `registry` with its fixed id.

    `build_runtime(config) -> Runtime` is called in kopf's start-up phase, once. `cli.run_operator`
    builds the runtime before kopf starts (a failure to reach AWS or the cluster exits at once, with
    the reason) and hands that one over; tests build theirs here.
    """

    async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
        # Asks the API server nothing (the grants were counted before kopf started), and may run
        # again (kopf retries a start-up handler that failed): the runtime is built once, into the
        # memo, and each loop starts once.
        configure(settings)
        if getattr(memo, "runtime", None) is None:
            memo.runtime = await asyncio.to_thread(build_runtime, config)
        runtime: Runtime = memo.runtime
        if runtime.account_checker is not None:
            runtime.account_checker.attach(asyncio.get_running_loop())
        runtime.sweeper.start()
        if runtime.drift is not None:
            runtime.drift.start()
        if runtime.grants_at_start == 0:
            _indexes_ready(runtime, watches.live(kwargs, runtime.config), kwargs, resource_handler=False)

    async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime | None = getattr(memo, "runtime", None)
        if runtime is not None:
            if runtime.drift is not None:
                await runtime.drift.stop()
            await runtime.sweeper.stop()

    def on_login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A custom registry gets none of kopf's default login handlers: in a pod, the service
        # account; elsewhere, the kubeconfig (KUBECONFIG or ~/.kube/config).
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(
            **kwargs)
        return info

    kopf.on.startup(registry=registry, id="startup")(on_startup)
    kopf.on.login(registry=registry, id="login")(on_login)
    kopf.on.cleanup(registry=registry, id="cleanup")(on_cleanup)
    watches.register(registry, config)
    kopf.on.create(*RESOURCE, registry=registry, id="apply-on-create")(on_grant_create)
    kopf.on.update(*RESOURCE, registry=registry, id="apply-on-update")(on_grant_update)
    kopf.on.resume(*RESOURCE, registry=registry, id="apply-on-resume")(on_grant_resume)
    kopf.on.delete(*RESOURCE, registry=registry, id="release")(on_grant_delete)
    kopf.on.event(*RESOURCE, registry=registry, id="reconcile-request")(on_grant_event)
