"""Every sentence a user reads about a grant's AWS side: pure functions from what the syncs found.

A verdict is a `conditions.Finding`: a CamelCase reason, a sentence that says what to do, and a
severity. Whether a fault is retried (transient) or waits for a person (terminal) is decided once,
by `FaultKind.transient` (`ports`); a few results become terminal with time, from clocks the
caller reads and passes in (a principal still refused after the propagation window, a repository
silent for `unreachable_after`).
"""

from __future__ import annotations

from ecr_access import access, policy
from ecr_access.conditions import APPLIED, Finding, Outcome, RepositoryResult, Severity
from ecr_access.model import GrantSpec, RepositoryRef, RoleRef
from ecr_access.ports import AwsFault, FaultKind, Simulated
from ecr_access.repositories import Result

# A repository policy cannot grant ecr:GetAuthorizationToken (it is not a repository's action): without
# it a node cannot even log in to the registry.
TOKEN_FROM_IDENTITY = ("With managedPolicy: None the role needs ecr:GetAuthorizationToken from an identity policy "
                       "of its own, or nodes cannot log in to ECR.")


def severity(fault: AwsFault) -> Severity:
    return Severity.TRANSIENT if fault.kind.transient else Severity.TERMINAL


def for_fault(fault: AwsFault, subject: str, not_found: str = "NotFound") -> Finding:
    """A classified AWS fault about `subject` (a role or repository) as a status verdict."""
    kind, grade = fault.kind, severity(fault)
    if kind is FaultKind.NOT_FOUND:
        return Finding(not_found, f"{subject} was not found ({fault.operation}).", grade)
    if kind is FaultKind.ACCESS_DENIED and fault.account:
        return Finding("AccessDenied", f"In account {fault.account} the operator acts as the role its "
                       f"EcrAccessAccount names, which is not allowed to call {fault.operation} on {subject}: add it "
                       "to that role's policy (deploy/iam: registry-account-policy.json for repositories, "
                       "cloud-account-policy.json for roles).", grade)
    if kind is FaultKind.ACCESS_DENIED:
        return Finding("AccessDenied", f"The operator is not allowed to call {fault.operation} on {subject}: "
                       "add it to the operator's IAM policy (deploy/iam).", grade)
    if kind is FaultKind.LIMIT_EXCEEDED:
        return Finding(
            "ManagedPolicyQuotaExceeded" if fault.operation == "AttachRolePolicy" else "LimitExceeded",
            f"{fault.operation} on {subject} exceeds an AWS quota ({fault.detail}): "
            "detach a managed policy from the role or raise the quota.", grade)
    if kind is FaultKind.INVALID:
        return Finding("InvalidRequest", f"AWS rejected {fault.operation} on {subject}: {fault.detail}", grade)
    if kind is FaultKind.PROPAGATING:
        return Finding("RolePropagating", f"ECR does not accept a principal in the policy of {subject} yet (a new "
                       "IAM role takes a while to propagate); retrying.", grade)
    if kind is FaultKind.ACCOUNT_NOT_CONFIGURED:
        return Finding("AccountNotConfigured", f"{subject} is in account {fault.resource.removeprefix('account ')}, "
                       "which no EcrAccessAccount configures: create one for it (see deploy/iam).", grade)
    if kind is FaultKind.ACCOUNT_UNAVAILABLE:
        return Finding("AccountUnavailable", f"The operator could not act in the account of {subject}: "
                       f"{fault.detail}; see its EcrAccessAccount. Retrying.", grade)
    if kind is FaultKind.THROTTLED:
        return Finding("Throttled", f"AWS throttled {fault.operation} on {subject}; retrying.", grade)
    return Finding("AwsUnavailable", f"AWS did not answer {fault.operation} on {subject}; retrying.", grade)


def label(repo: RepositoryRef) -> str:
    return f"Repository {repo.name} ({repo.arn})"


def role_label(spec: GrantSpec) -> str:
    return f"IAM role {spec.role.describe()}"


def role_missing(spec: GrantSpec) -> Finding:
    return Finding("RoleNotFound", f"{role_label(spec)} was not found in account {spec.role.account}: create it "
                   "or fix spec.role.", Severity.TERMINAL)


def account_not_configured(spec: GrantSpec) -> Finding:
    """A managed policy to attach to a role in an account no EcrAccessAccount configures."""
    return Finding("AccountNotConfigured", f"{role_label(spec)} is in account {spec.role.account}, which no "
                   f"EcrAccessAccount configures, so the operator cannot attach {spec.managed_policy.value} to it: "
                   "create an EcrAccessAccount for that account, or set spec.managedPolicy to None and attach "
                   "the policy there yourself.", Severity.TERMINAL)


def not_permitted(message: str) -> Finding:
    """No EcrGrantPolicy permits the grant (`tenancy.Verdict.message` names what): a person must act."""
    return Finding("NotPermitted", f"{message} Nothing is granted in AWS for it.", Severity.TERMINAL)


def repository_not_permitted(repo: RepositoryRef, namespace: str) -> Finding:
    return Finding("NotPermitted", f"{label(repo)}: no EcrGrantPolicy selecting namespace {namespace} allows this "
                   "repository for this grant; nothing is granted on it.", Severity.TERMINAL)


def revoking(repo: RepositoryRef, result: Result | None) -> Finding | None:
    """A repository the policies no longer permit, whose removal failed (None: removed, or nothing
    to remove)."""
    subject = f"{label(repo)}, where no EcrGrantPolicy permits this grant any more,"
    if isinstance(result, AwsFault):
        return None if result.kind is FaultKind.NOT_FOUND else for_fault(result, subject)
    if isinstance(result, Exception):
        return Finding("PolicyUnreadable", f"{subject} could not be cleaned: {result}", Severity.TERMINAL)
    return None


def blocked(spec: GrantSpec, sid: str, role_arn: str | None, finding: Finding, *, unsettled: bool) -> Outcome:
    """The role side failed: nothing is written for this grant's repositories. What the role has
    attached was not learned, so the report keeps its last answer (`managed_policy_owned=None`)."""
    repos = tuple(RepositoryResult(repo.arn, sid, Finding(finding.reason, "Not applied: the role step failed.",
                                                          finding.severity))
                  for repo in spec.repositories)
    return Outcome(role_arn, None, None, finding, repos, unsettled=(finding,) if unsettled else ())


def unreachable(repo: RepositoryRef, fault: AwsFault, silent: float | None, after: float) -> Finding | None:
    """A repository that has not answered for `after` seconds needs a person (a region not enabled,
    or not reachable from the cluster), so it stops counting as transient."""
    if fault.kind is not FaultKind.UNAVAILABLE or silent is None or silent < after:
        return None
    return Finding("RepositoryUnreachable",
                   f"{label(repo)} in region {repo.region} has not answered for {silent:.0f}s ({fault.detail}): check "
                   f"that the region is enabled for account {repo.registry_id} and reachable from the cluster; "
                   "the operator keeps trying.", Severity.TERMINAL)


def unreadable(repo: RepositoryRef, problem: Exception, hint: str = "") -> Finding:
    return Finding("PolicyUnreadable", f"{label(repo)}: {problem}{hint}", Severity.TERMINAL)


def foreign_edits(repo: RepositoryRef, times: int) -> str:
    return (f"{label(repo)}: someone else changed the policy while the operator wrote it ({times}x); merged their "
            "change and wrote again.")


def granted(
    repo: RepositoryRef, result: Result, *, role_arn: str | None, role_finding: Finding, sid: str,
    silent: float | None, unreachable_after: float, since_refused: float | None, propagation_window: float,
    actions: tuple[str, ...] = (),
) -> Finding:
    """One repository's verdict for a grant being applied. `since_refused`: seconds since ECR first
    refused the grant's role as a principal there, if it did. `actions`: the grant's, for the access
    check of the policy now in AWS (`access`)."""
    if isinstance(result, AwsFault):
        return unreachable(repo, result, silent, unreachable_after) or for_fault(result, label(repo),
                                                                                "RepositoryNotFound")
    if isinstance(result, Exception):
        return unreadable(repo, result, "; fix or delete that policy.")
    if role_arn is None:
        return Finding(role_finding.reason, f"{label(repo)} cannot grant a role that does not exist.",
                       role_finding.severity)
    if since_refused is not None:
        if since_refused < propagation_window:
            return Finding("RolePropagating", f"{label(repo)}: ECR does not accept {role_arn} as a principal yet "
                           "(a new IAM role takes a while to propagate); retrying.", Severity.TRANSIENT)
        return Finding("PrincipalRejected", f"{label(repo)}: ECR refuses {role_arn} as a principal: check that "
                       "the role exists and that spec.role names it exactly.", Severity.TERMINAL)
    if role_arn in result.rejected.get(sid, frozenset()):
        return Finding("PolicyTooLarge", f"{label(repo)}: adding {role_arn} would take its policy over "
                       f"{policy.MAX_POLICY_CHARS} characters; remove statements or grants from it.", Severity.TERMINAL)
    return denied(repo, access.denials(result.document, role_arn, actions), role_arn)


def identity_denied(role_arn: str, found: list[Simulated]) -> Finding:
    """The optional identity check's verdict (`access.identity_denials`): APPLIED when nothing a
    pull needs is denied."""
    if not found:
        return APPLIED
    first = found[0]
    where = "" if first.resource == "*" else f" on {first.resource}"
    more = f" ({len(found) - 1} more denied)" if len(found) > 1 else ""
    return Finding("IdentityDenied", f"IAM's policy simulator says role {role_arn} may not call {first.action}{where} "
                   f"({first.decision}){more}: give the role an identity policy that allows it, or remove the Deny "
                   "(identity policy, permissions boundary or SCP) that blocks it.", Severity.TERMINAL)


def denied(repo: RepositoryRef, found: list[access.Denial], role_arn: str) -> Finding:
    """The access check's verdict: the grant's statement is in place, but a foreign Deny beside it
    blocks the pull (`DeniedByPolicy`, a person must act), or may block it under a condition that
    cannot be judged here (`MayBeDenied`, still ready)."""
    if not found:
        return APPLIED
    first = found[0]
    if not first.conditional:
        return Finding("DeniedByPolicy", f"{label(repo)}: its policy's Deny ({first.named}) denies {first.action} "
                       f"to {role_arn}, whatever Allow is beside it. The grant's statement is in place and takes "
                       "effect once that Deny no longer covers the role.", Severity.TERMINAL)
    return Finding("MayBeDenied", f"{label(repo)}: {first.action} may be denied to {role_arn} by {first.named} "
                   f"{first.because}, which the operator cannot judge.")


def dropped(repo: RepositoryRef, result: Result) -> Finding | None:
    """A repository dropped from the spec that could not be recomputed without the grant (a
    repository that is gone has nothing left to drop)."""
    if isinstance(result, AwsFault):
        return None if result.kind is FaultKind.NOT_FOUND else for_fault(
            result, f"{label(repo)}, dropped from the spec,")
    if isinstance(result, Exception):
        return Finding("PolicyUnreadable", f"{label(repo)}, dropped from the spec: {result}", Severity.TERMINAL)
    return None


def left_behind(repo: RepositoryRef, result: Result, sid: str) -> Finding | None:
    """What a release could not check: a repository in an account no EcrAccessAccount configures.
    The operator can never act there, so the delete does not wait for it (a grant whose registryId
    was a typo must stay deletable); but if it wrote there while an EcrAccessAccount configured the
    account, that statement is left, and a person must know."""
    if isinstance(result, AwsFault) and result.kind is FaultKind.ACCOUNT_NOT_CONFIGURED:
        return Finding("AccountNotConfigured", f"{label(repo)} is in account {repo.registry_id}, which no "
                       "EcrAccessAccount configures, so the operator could not remove this grant from it: if "
                       f"statement {sid} is there, remove the grant's role from it by hand, or re-create the "
                       "EcrAccessAccount.", Severity.TERMINAL)
    return None


def role_left_behind(role: RoleRef, policies: list[str]) -> Finding:
    """What a release could not check on a role: one in an account no EcrAccessAccount configures
    (any more), whose grant attaches a managed policy. As for a repository (`left_behind`), the
    delete does not wait, but what an operator attached there while the account was configured,
    and the ledger tags that record it, stay on the role, and a person must know."""
    names = " and ".join(policies)
    return Finding("AccountNotConfigured", f"IAM role {role.describe()} is in account {role.account}, which no "
                   f"EcrAccessAccount configures, so the operator could not detach {names} for this grant: if "
                   f"the ecraccess.io/attached tag on the role lists it, detach it and remove the ecraccess.io/ "
                   "tags by hand, or re-create the EcrAccessAccount.", Severity.TERMINAL)


def released(repo: RepositoryRef, result: Result, handover_sid: str | None, *, silent: float | None,
             unreachable_after: float) -> Finding:
    """One repository's verdict for a grant being released (or handing its access over)."""
    if isinstance(result, AwsFault):
        if result.kind in (FaultKind.NOT_FOUND, FaultKind.ACCOUNT_NOT_CONFIGURED):  # see `left_behind`
            return APPLIED
        return unreachable(repo, result, silent, unreachable_after) or for_fault(result, label(repo))
    if isinstance(result, Exception):
        return unreadable(repo, result)
    if handover_sid in result.pending:
        return Finding("PolicyTooLarge", f"{label(repo)}: the Retain hand-over statement does not fit in its policy, "
                       "so the role keeps its access through the shared statement; make room or set "
                       "deletionPolicy: Delete.", Severity.TERMINAL)
    return APPLIED
