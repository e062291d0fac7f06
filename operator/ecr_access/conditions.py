"""What a reconcile found, and the kstatus conditions it becomes (pure).

`Finding` is one verdict (the sentences are in `verdicts`), `Outcome` is what one apply or release
found, and `kstatus` turns the findings into the conditions Argo CD, Flux and `kubectl wait` read
(DESIGN §1):
- `Ready` is always there, True only when everything the grant asks for holds in AWS;
- `Reconciling=True` is there only while a transient failure is being retried, or while work on a
  new spec outlasts a couple of seconds (`Progressing`, see `status.progress_status`);
- `Stalled=True` is there only when a person must act (bad spec, missing role or repository,
  AccessDenied, a quota, a policy too large);
- `lastTransitionTime` moves only when a condition's status flips, and nothing else here reads
  the clock, so that an unchanged world produces a byte-identical status and no write.

The status around the conditions is `status`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


class Condition(TypedDict):
    """One kstatus condition, as it is written under `status.conditions`."""

    type: str
    status: str  # "True" | "False"
    reason: str
    message: str
    observedGeneration: int
    lastTransitionTime: str


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
    # Drift this apply repaired for the grant, one sentence each (a DriftRepaired Event).
    repaired: tuple[str, ...] = ()
    # What a Ready grant's message must also say: what the operator cannot see to (the role's own
    # permission to log in to ECR when it attaches no managed policy).
    cautions: tuple[str, ...] = ()

    @property
    def findings(self) -> list[Finding]:
        return [self.role, *(repo.finding for repo in self.repositories)]

    @property
    def transient(self) -> bool:
        return any(item.severity is Severity.TRANSIENT for item in self.findings)

    @property
    def terminal(self) -> bool:
        return any(item.severity is Severity.TERMINAL for item in self.findings)


def kstatus(
    ready: tuple[str, str, str],
    problems: Sequence[Finding],
    generation: int,
    previous: Mapping[str, Any] | None,
    now: str,
) -> list[Condition]:
    """The conditions for the Ready verdict and the problems found; a condition keeps its
    lastTransitionTime from `previous` unless its status flipped."""
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
    result: list[Condition] = []
    for kind, value, reason, message in wanted:
        old = before.get(kind)
        since = old.get("lastTransitionTime") if old and old.get("status") == value else None
        result.append(Condition(type=kind, status=value, reason=reason, message=message,
                                observedGeneration=generation, lastTransitionTime=since or now))
    return result
