"""What one apply found for a grant, as its verdicts (`Outcome`): from what each repository's sync
found and what the EcrGrantPolicies permit (pure given its inputs; the sentences are `verdicts`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from ecr_access import verdicts
from ecr_access.conditions import Finding, Outcome, RepositoryResult
from ecr_access.config import Config
from ecr_access.model import GrantKey, GrantSpec, ManagedPolicy, RepositoryRef, RoleRef
from ecr_access.ports import AwsFault, FaultKind
from ecr_access.repositories import Result, Synced
from ecr_access.tenancy import Verdict

logger = logging.getLogger(__name__)


def grant_outcome(
    key: GrantKey, spec: GrantSpec, sid: str, role_arn: str | None, role_finding: Finding,
    policy_arn: str | None, owned: bool, synced: Mapping[RepositoryRef, Result], permits: Verdict | None, *,
    silent_for: Callable[[RepositoryRef], float | None], now: float, config: Config,
) -> Outcome:
    """Each repository's verdict for this grant, from what its sync found and what the policies
    permit (`permits`; None when the role was not found). `silent_for(repo)`: seconds since the
    repository last answered, while it does not; `now`: the clock refusals were timed on."""
    results, notes, unsettled = [], [], []
    for repo, result in synced.items():
        if repo not in spec.repositories:
            left = verdicts.dropped(repo, result)
            if left is not None:
                logger.warning("Could not drop %s from %s: %s", key, repo.arn, result, extra=key.log_ref())
                unsettled.append(left)
    for repo in spec.repositories:
        if permits is not None and not permits.allows(repo):
            # Its access is undone by the sync, if it had any; a failed removal is reported (and
            # retried when transient), never passed off as "nothing is granted". Whether the
            # repository exists is not said: NotPermitted either way.
            finding = verdicts.revoking(repo, synced.get(repo)) or (
                role_finding if not permits.permitted else verdicts.repository_not_permitted(repo, key.namespace))
            results.append(RepositoryResult(repo.arn, sid, finding))
            continue
        result = synced[repo]
        first = None
        if isinstance(result, Synced):
            if result.foreign_edits:
                notes.append(verdicts.foreign_edits(repo, result.foreign_edits))
            first = result.refused.get(role_arn) if role_arn else None
        finding = verdicts.granted(
            repo, result, role_arn=role_arn, role_finding=role_finding, sid=sid,
            silent=silent_for(repo), unreachable_after=config.unreachable_after,
            since_refused=None if first is None else now - first,
            propagation_window=config.propagation_window, actions=spec.actions)
        results.append(RepositoryResult(repo.arn, sid, finding))
    cautions = (verdicts.TOKEN_FROM_IDENTITY,) if spec.managed_policy is ManagedPolicy.NONE else ()
    return Outcome(role_arn, policy_arn, owned, role_finding, tuple(results), tuple(notes), spec.actions,
                   tuple(unsettled), cautions=cautions)


def repaired(spec: GrantSpec, sid: str, role_arn: str, synced: Mapping[RepositoryRef, Result],
             reattached: str | None) -> tuple[str, ...]:
    """The drift this apply repaired for the grant, one sentence each (its DriftRepaired Event): its
    own statement's principal put back in a repository, and the managed policy `reattached`."""
    found = [f"IAM role {role_arn}: {reattached} is attached again (someone had detached it)"] if reattached else []
    found += [f"{verdicts.label(repo)}: its policy holds the role again (someone had removed it)"
              for repo, result in synced.items()
              if repo in spec.repositories and isinstance(result, Synced) and (sid, role_arn) in result.repaired]
    return tuple(found)


def iam_optional(fault: AwsFault, role: RoleRef, specs: Iterable[GrantSpec | None], own_account: str) -> bool:
    """Whether IAM refusing the operator (AccessDenied) in the role's account may be passed over:
    the role is named by ARN in another account, and none of `specs` (the grant's spec and its
    applied record) attaches a managed policy to it. Then the operator needs nothing of IAM
    there, as in an account no EcrAccessAccount configures: a central registry's role has the
    ECR actions only (deploy/iam/registry-account-policy.json), and a role of that account with
    `managedPolicy: None` is written as a principal as the spec gives it."""
    return (fault.kind is FaultKind.ACCESS_DENIED and role.arn is not None and role.account != own_account
            and all(item.managed_policy is ManagedPolicy.NONE for item in specs
                    if item is not None and item.role.key == role.key))
