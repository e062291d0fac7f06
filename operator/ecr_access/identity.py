"""The optional identity check (`ECR_ACCESS_VERIFY_IDENTITY`, issue 16): may the grant's role log in
to ECR and pull, by its own identity policies? The repository side is the access check (`access`);
this asks IAM's policy simulator about the other side, which no repository policy can settle:
`ecr:GetAuthorizationToken`, an explicit Deny in an identity policy, a permissions boundary or an
SCP, and the identity half of a pull across accounts.

Off by default: it costs one `iam:SimulatePrincipalPolicy` per grant per check, a permission the
operator's policy must then have (deploy/iam/README.md).
"""

from __future__ import annotations

import logging

from ecr_access import access, verdicts
from ecr_access.conditions import APPLIED, Finding
from ecr_access.config import Config
from ecr_access.model import GrantSpec, RepositoryRef
from ecr_access.ports import AwsFault, FaultKind
from ecr_access.roles import RoleDirectory

logger = logging.getLogger(__name__)


async def verify_identity(config: Config, roles: RoleDirectory, spec: GrantSpec, role_arn: str,
                          repositories: list[RepositoryRef]) -> Finding:
    """The role's verdict: APPLIED, `IdentityDenied` naming the action, or the fault that kept the
    simulator from answering (AccessDenied without the permission). Simulated on each permitted
    repository; a role in an account the operator cannot reach is not simulated (logged)."""
    if not config.verify_identity or not repositories:
        return APPLIED
    if not roles.reaches(spec.role.account):
        logger.info("Not simulating %s: no EcrAccessAccount configures account %s", role_arn, spec.role.account)
        return APPLIED
    try:
        simulated = await roles.iam(spec.role.account).simulate_principal_policy(
            role_arn, (access.TOKEN_ACTION, *spec.actions), [repo.arn for repo in repositories])
    except AwsFault as fault:
        if fault.kind is FaultKind.ACCESS_DENIED:  # the generic hint names files that lack the action
            return _not_allowed(fault, role_arn)
        return verdicts.for_fault(fault, f"IAM's policy simulation of role {role_arn}")
    return verdicts.identity_denied(role_arn, access.identity_denials(simulated, role_arn))


def _not_allowed(fault: AwsFault, role_arn: str) -> Finding:
    """AccessDenied from the simulator: only deploy/iam/verify-identity-policy.json holds the action."""
    who = (f"In account {fault.account} the operator acts as the role its EcrAccessAccount names, which"
           if fault.account else "The operator")
    where = "that role" if fault.account else "the operator's role"
    return Finding("AccessDenied", f"{who} is not allowed to call SimulatePrincipalPolicy on role {role_arn} "
                   f"(ECR_ACCESS_VERIFY_IDENTITY is on): attach deploy/iam/verify-identity-policy.json to {where}, "
                   "or turn the setting off.", verdicts.severity(fault))
