"""Turn what a reconcile found into `status`: kstatus conditions and per-repository entries.

The rules (DESIGN §1) are what Argo CD, Flux and `kubectl wait` read:
- `Ready` is always there, True only when everything the grant asks for holds in AWS;
- `Reconciling=True` is there only while a transient failure is being retried, or while work on a
  new spec outlasts a couple of seconds (`Progressing`, see `progress_status`);
- `Stalled=True` is there only when a person must act (bad spec, missing role or repository,
  AccessDenied, a quota, a policy too large);
- `lastTransitionTime` moves only when a condition's status flips, and nothing else here reads
  the clock, so that an unchanged world produces a byte-identical status and no write.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any

from ecr_access.model import REFERENCE_ACTIONS
from ecr_access.ports import AwsFault, FaultKind

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"

# The status keys this operator writes; anything else under status is not ours to remove.
STATUS_KEYS = (
    "observedGeneration",
    "roleArn",
    "managedPolicyArn",
    "managedPolicyOwned",
    "readyRepositories",
    "repositories",
    "conditions",
    "lastHandledReconcileAt",
)


class Severity(enum.Enum):
    OK = "OK"
    TRANSIENT = "Transient"  # -> Reconciling, retried soon
    TERMINAL = "Terminal"  # -> Stalled, re-checked on the resync interval


@dataclasses.dataclass(frozen=True)
class Finding:
    """One verdict with a CamelCase reason and a sentence a user can act on."""

    reason: str
    message: str
    severity: Severity = Severity.OK

    @property
    def ok(self) -> bool:
        return self.severity is Severity.OK


APPLIED = Finding("Applied", "")


@dataclasses.dataclass(frozen=True)
class RepositoryResult:
    arn: str
    sid: str
    finding: Finding


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one apply found: the role side, then each repository in spec order."""

    role_arn: str | None
    managed_policy_arn: str | None
    # A mirror of the role's ledger tag (`attachments`), for people to read. None: not learned this
    # time (the role step failed, or a release), so the report keeps its last answer.
    managed_policy_owned: bool | None
    role: Finding
    repositories: tuple[RepositoryResult, ...]
    # Things worth a Kubernetes Event but not a status change (status must stay deterministic),
    # e.g. a concurrent writer that changed a policy while we wrote it.
    notes: tuple[str, ...] = ()
    # The grant's actions, for a Ready message that says what was granted; () for the reference's.
    actions: tuple[str, ...] = ()
    # What is left of the grant's previous contribution: a repository it dropped, or the role it
    # left, that could not be recomputed without it yet. While any is left, the applied record must
    # keep naming them (so that a retry, or the delete, gets to them).
    unsettled: tuple[Finding, ...] = ()

    @property
    def findings(self) -> list[Finding]:
        return [self.role, *(repo.finding for repo in self.repositories)]

    @property
    def transient(self) -> bool:
        return any(item.severity is Severity.TRANSIENT for item in self.findings)

    @property
    def terminal(self) -> bool:
        return any(item.severity is Severity.TERMINAL for item in self.findings)


def finding_for_fault(fault: AwsFault, subject: str, not_found: str = "NotFound") -> Finding:
    """Map a classified AWS fault about `subject` (a role or repository) to a status verdict."""
    kind = fault.kind
    if kind is FaultKind.NOT_FOUND:
        return Finding(not_found, f"{subject} was not found ({fault.operation}).", Severity.TERMINAL)
    if kind is FaultKind.ACCESS_DENIED:
        return Finding(
            "AccessDenied",
            f"The operator is not allowed to call {fault.operation} on {subject}: "
            "add it to the operator's IAM policy (deploy/iam).",
            Severity.TERMINAL,
        )
    if kind is FaultKind.LIMIT_EXCEEDED:
        return Finding(
            "ManagedPolicyQuotaExceeded" if fault.operation == "AttachRolePolicy" else "LimitExceeded",
            f"{fault.operation} on {subject} exceeds an AWS quota ({fault.detail}): "
            "detach a managed policy from the role or raise the quota.",
            Severity.TERMINAL,
        )
    if kind is FaultKind.INVALID:
        return Finding("InvalidRequest", f"AWS rejected {fault.operation} on {subject}: {fault.detail}",
                       Severity.TERMINAL)
    if kind is FaultKind.PROPAGATING:
        return Finding(
            "RolePropagating",
            f"ECR does not accept a principal in the policy of {subject} yet (a new IAM role takes a while to "
            "propagate); retrying.",
            Severity.TRANSIENT,
        )
    if kind is FaultKind.THROTTLED:
        return Finding("Throttled", f"AWS throttled {fault.operation} on {subject}; retrying.", Severity.TRANSIENT)
    return Finding(
        "AwsUnavailable", f"AWS did not answer {fault.operation} on {subject}; retrying.", Severity.TRANSIENT
    )


def build_status(
    outcome: Outcome, generation: int, previous: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
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
        ready = ("True", "Reconciled", _ready_message(outcome))
    report = _role_report(outcome, previous)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        **report,
        "readyRepositories": f"{ready_count}/{len(outcome.repositories)}",
        "repositories": [
            {
                "arn": repo.arn,
                "sid": repo.sid,
                "ready": repo.finding.ok,
                "reason": repo.finding.reason,
                "message": repo.finding.message,
            }
            for repo in outcome.repositories
        ],
    }
    status["conditions"] = _conditions(ready, problems, generation, previous, now)
    if (previous or {}).get("lastHandledReconcileAt"):  # the last reconcile-now request handled
        status["lastHandledReconcileAt"] = (previous or {})["lastHandledReconcileAt"]
    return status


def _role_report(outcome: Outcome, previous: Mapping[str, Any] | None) -> dict[str, Any]:
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
) -> dict[str, Any]:
    """Status for a spec the operator cannot act on. What AWS holds is unchanged, so the fields
    that describe it (role, managed-policy ownership, repositories) are kept as they were."""
    finding = Finding("InvalidSpec", f"The spec is invalid: {message}", Severity.TERMINAL)
    status = {key: value for key, value in (previous or {}).items() if key in STATUS_KEYS}
    status["observedGeneration"] = generation
    status["conditions"] = _conditions(("False", finding.reason, finding.message), [finding], generation,
                                       previous, now)
    return status


def progress_status(generation: int, previous: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """Status while a new generation is being applied and AWS has not answered yet: Ready=False and
    Reconciling=True for that generation. What AWS holds is not known yet, so the fields that
    describe it are kept as they were, observedGeneration included (it has not been acted on)."""
    status = {key: value for key, value in (previous or {}).items() if key in STATUS_KEYS}
    message = f"The operator is applying generation {generation}; AWS has not answered yet."
    progressing = Finding("Progressing", message, Severity.TRANSIENT)
    status["conditions"] = _conditions(("False", progressing.reason, message), [progressing], generation, previous,
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


def _conditions(
    ready: tuple[str, str, str],
    problems: Sequence[Finding],
    generation: int,
    previous: Mapping[str, Any] | None,
    now: str,
) -> list[dict[str, Any]]:
    transient = [item for item in problems if item.severity is Severity.TRANSIENT]
    terminal = [item for item in problems if item.severity is Severity.TERMINAL]
    wanted: list[tuple[str, str, str, str]] = [(READY, *ready)]
    if transient:
        wanted.append((RECONCILING, "True", transient[0].reason, transient[0].message))
    elif terminal:
        wanted.append((STALLED, "True", terminal[0].reason, terminal[0].message))
    before = {
        item.get("type"): item
        for item in (previous or {}).get("conditions") or []
        if isinstance(item, Mapping)
    }
    result = []
    for kind, value, reason, message in wanted:
        old = before.get(kind)
        since = old.get("lastTransitionTime") if old and old.get("status") == value else None
        result.append(
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": since or now,
            }
        )
    return result


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns our keys of `old` into `new`; empty when nothing changed.

    Lists (conditions, repositories) are replaced whole, as merge patches do, which is what
    DESIGN §1 asks: the full conditions list on every status change.
    """
    old = old or {}
    patch = {key: value for key, value in new.items() if old.get(key) != value}
    patch.update({key: None for key in STATUS_KEYS if key in old and key not in new})
    return patch
