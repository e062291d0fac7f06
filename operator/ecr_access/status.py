"""`status`: its shape, and the one place where what a reconcile found becomes a status patch (pure).

The shape is `GrantStatus`, and `STATUS_KEYS` (the keys this operator writes; anything else under
status is not ours to remove) is read off it, so a new field is declared once. Everything that
writes status, the kopf handlers and the drift loop, gets its patch from `status_patch`, which is
empty when nothing changed: a quiet steady state writes nothing. These fields only report; nothing
the operator writes to AWS or detaches is decided from them (DESIGN §2.7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from ecr_access.conditions import READY, STALLED, Condition, Finding, Outcome, Severity, kstatus
from ecr_access.model import REFERENCE_ACTIONS, GrantKey


class RepositoryStatus(TypedDict):
    arn: str
    sid: str
    ready: bool
    reason: str
    message: str


class GrantStatus(TypedDict, total=False):
    observedGeneration: int
    roleArn: str
    managedPolicyArn: str
    managedPolicyOwned: bool
    readyRepositories: str  # "2/3", for kubectl get
    repositories: list[RepositoryStatus]
    conditions: list[Condition]
    lastHandledReconcileAt: str  # the last `ecraccess.io/reconcile-requested-at` value handled


class GrantMetadata(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    generation: int
    annotations: dict[str, str]
    finalizers: list[str]
    deletionTimestamp: str


class GrantBody(TypedDict, total=False):
    """An `EcrAccessGrant` as the API server returns it (the spec is judged by `spec.parse_spec`)."""

    apiVersion: str
    kind: str
    metadata: GrantMetadata
    spec: dict[str, Any]
    status: GrantStatus


STATUS_KEYS: tuple[str, ...] = tuple(GrantStatus.__annotations__)

# A JSON merge patch of the status: a key's new value, or None to delete it.
StatusPatch = dict[str, Any]
# The one status writer outside kopf's own patch (`kube.patch_status` in production): merge-patch
# one grant's status at once. Blocking; callers run it in a thread.
PatchStatus = Callable[[GrantKey, Mapping[str, Any]], None]


def ours(status: Mapping[str, Any] | None) -> GrantStatus:
    """Our keys of a status as read (whatever else is there is someone else's)."""
    return {key: value for key, value in (status or {}).items() if key in STATUS_KEYS}  # type: ignore[return-value]


def for_outcome(
    outcome: Outcome, generation: int, previous: Mapping[str, Any] | None, now: str, handled: str | None = None
) -> tuple[GrantStatus, StatusPatch]:
    """The status that reports `outcome` for `generation`, and the patch from `previous` to it
    (`handled`: a reconcile-now value to echo)."""
    new = build_status(outcome, generation, previous, now)
    if handled:
        new["lastHandledReconcileAt"] = handled
    return new, status_patch(previous, new)


def suspended_status(generation: int, previous: Mapping[str, Any] | None) -> GrantStatus:
    """A suspended grant: observe nothing, change nothing; only acknowledge the generation."""
    return {**ours(previous), "observedGeneration": generation}


def build_status(
    outcome: Outcome, generation: int, previous: Mapping[str, Any] | None, now: str
) -> GrantStatus:
    """The full status for an outcome. `now` is used only for conditions that flip."""
    ready_count = sum(1 for repo in outcome.repositories if repo.finding.ok)
    problems = [item for item in outcome.findings if not item.ok]
    if problems:
        first = problems[0]
        more = len(problems) - 1
        message = first.message + (f" ({more} more problem{'s' if more > 1 else ''} in status.repositories.)"
                                   if more else "")
        ready = ("False", first.reason, message)
    else:
        # The first conditional Deny only, as for problems: one per repository would take the message
        # past the CRD's maxLength with many repositories (the API server would refuse every write).
        maybe = [repo.finding.message for repo in outcome.repositories if repo.finding.reason == "MayBeDenied"]
        cautions = maybe[:1] + ([f"({len(maybe) - 1} more repositor{'y' if len(maybe) == 2 else 'ies'} may be "
                                 "denied under a condition: see status.repositories.)"] if len(maybe) > 1 else [])
        ready = ("True", "Reconciled", " ".join([_ready_message(outcome), *cautions, *outcome.cautions]))
    report = _role_report(outcome, previous)
    status: GrantStatus = {
        "observedGeneration": generation,
        **report,
        "readyRepositories": f"{ready_count}/{len(outcome.repositories)}",
        "repositories": [
            RepositoryStatus(arn=repo.arn, sid=repo.sid, ready=repo.finding.ok, reason=repo.finding.reason,
                             message=repo.finding.message)
            for repo in outcome.repositories
        ],
    }
    status["conditions"] = kstatus(ready, problems, generation, previous, now)
    if (previous or {}).get("lastHandledReconcileAt"):  # the last reconcile-now request handled
        status["lastHandledReconcileAt"] = (previous or {})["lastHandledReconcileAt"]
    return status


def _role_report(outcome: Outcome, previous: Mapping[str, Any] | None) -> GrantStatus:
    """roleArn, managedPolicyArn and managedPolicyOwned. These only report: nothing the operator
    writes to AWS or detaches is decided from them (the role's tags decide, see `attachments`)."""
    if outcome.managed_policy_owned is None:
        previous = previous or {}
        return {"roleArn": outcome.role_arn or previous.get("roleArn", ""),
                "managedPolicyArn": previous.get("managedPolicyArn", ""),
                "managedPolicyOwned": bool(previous.get("managedPolicyOwned", False))}
    return {"roleArn": outcome.role_arn or "", "managedPolicyArn": outcome.managed_policy_arn or "",
            "managedPolicyOwned": outcome.managed_policy_owned}


def invalid_spec_status(
    message: str, generation: int, previous: Mapping[str, Any] | None, now: str
) -> GrantStatus:
    """Status for a spec the operator cannot act on. What AWS holds is unchanged, so the fields
    that describe it (role, managed-policy ownership, repositories) are kept as they were."""
    finding = Finding("InvalidSpec", f"The spec is invalid: {message}", Severity.TERMINAL)
    status = ours(previous)
    status["observedGeneration"] = generation
    status["conditions"] = kstatus(("False", finding.reason, finding.message), [finding], generation,
                                       previous, now)
    return status


def progress_status(generation: int, previous: Mapping[str, Any] | None, now: str) -> GrantStatus:
    """Status while a new generation is being applied and AWS has not answered yet: Ready=False and
    Reconciling=True for that generation. What AWS holds is not known yet, so the fields that
    describe it are kept as they were, observedGeneration included (it has not been acted on)."""
    status = ours(previous)
    message = f"The operator is applying generation {generation}; AWS has not answered yet."
    progressing = Finding("Progressing", message, Severity.TRANSIENT)
    status["conditions"] = kstatus(("False", progressing.reason, message), [progressing], generation, previous,
                                       now)
    return status


def _ready_message(outcome: Outcome) -> str:
    count = len(outcome.repositories)
    policy = (
        f" and has {outcome.managed_policy_arn.rsplit('/', 1)[-1]} attached" if outcome.managed_policy_arn else ""
    )
    repositories = f"{count} repositor{'y' if count == 1 else 'ies'}"
    actions = [action for action in outcome.actions if action not in REFERENCE_ACTIONS]
    if not actions:  # the reference's pull actions, or some of them: read-only
        return f"Role {outcome.role_arn} may pull from {repositories}{policy}."
    named = ", ".join(sorted(outcome.actions)[:3])
    more = len(outcome.actions) - 3
    named += f" and {more} more actions" if more > 0 else ""
    return f"Role {outcome.role_arn} is allowed {named} on {repositories}{policy}."


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> StatusPatch:
    """The JSON merge patch that turns our keys of `old` into `new`; empty when nothing changed.

    Lists (conditions, repositories) are replaced whole, as merge patches do, which is what
    DESIGN §1 asks: the full conditions list on every status change.
    """
    old = old or {}
    patch = {key: value for key, value in new.items() if old.get(key) != value}
    patch.update({key: None for key in STATUS_KEYS if key in old and key not in new})
    return patch


Event = tuple[str, str, str]  # (type, reason, message), as the Kubernetes event style guide has them


def _condition(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any]:
    found = [item for item in (status or {}).get("conditions") or [] if isinstance(item, Mapping)]
    return next((item for item in found if item.get("type") == kind), {})


def transition_events(previous: Mapping[str, Any] | None, new: Mapping[str, Any], generation: int) -> list[Event]:
    """The Events a status change deserves: one per change, never one per pass (a pass that changes
    nothing changes no condition). `Applied`: the first Ready of a generation. `Stalled`: once per
    transition into Stalled, or to another reason. `AccessRemoved`: a grant that the policies no
    longer permit, once (its access was undone as a delete would). Read from the previous status
    for the report only: nothing written to AWS depends on it."""
    events: list[Event] = []
    ready, was_ready = _condition(new, READY), _condition(previous, READY)
    if ready.get("status") == "True" and not (
            was_ready.get("status") == "True" and (previous or {}).get("observedGeneration") == generation):
        events.append(("Normal", "Applied", str(ready.get("message", ""))))
    stalled, was_stalled = _condition(new, STALLED), _condition(previous, STALLED)
    if stalled.get("status") == "True" and (
            was_stalled.get("status") != "True" or was_stalled.get("reason") != stalled.get("reason")):
        events.append(("Warning", "Stalled", f"{stalled.get('reason')}: {stalled.get('message')}"))
        if stalled.get("reason") == "NotPermitted" and was_ready.get("status") == "True":
            events.append(("Normal", "AccessRemoved", "No EcrGrantPolicy permits this grant any more: its role was "
                           "taken out of its repositories' policies, as a delete would."))
    # A conditional Deny the access check cannot judge: once, when a repository first says so; one
    # Event for all the repositories that do at once (an organisation's template on each of 100
    # repositories is not 100 Events), naming the first and how many more.
    before = {repo.get("arn"): repo for repo in (previous or {}).get("repositories") or [] if isinstance(repo, Mapping)}
    newly = [str(repo.get("message", "")) for repo in new.get("repositories") or [] if isinstance(repo, Mapping)
             and repo.get("reason") == "MayBeDenied" and before.get(repo.get("arn"), {}).get("reason") != "MayBeDenied"]
    if newly:
        more = len(newly) - 1
        events.append(("Warning", "MayBeDenied", newly[0] + (f" ({more} more repositor{'y' if more == 1 else 'ies'} "
                                                             "likewise: see status.repositories.)" if more else "")))
    return events
