"""The two ports through which the reconciler reaches AWS, and the one error type they raise.

The reconciler's parts (`roles`, `ownership`, `repositories`) depend on these Protocols, `aws/`
implements them with boto3, and unit tests implement them in memory (`tests/unit/fakes.py`). The
methods are coroutines: the adapter runs each blocking boto3 call in a thread, so that everything
else runs on the event loop and shares its state without locks.

"Not found" is data where the caller has a use for it (`get_role` and `get_repository_policy`
return None); every other failure is an `AwsFault` whose `kind` was decided once, in
`aws/errors.py`, and whose class (retried or not) once, by `FaultKind.transient`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ecr_access.model import RepositoryRef


class FaultKind(enum.Enum):
    """What an AWS failure means for the grant: retry it (transient) or wait for a person (terminal)."""

    THROTTLED = "Throttled"  # transient: slow down and retry
    UNAVAILABLE = "AwsUnavailable"  # transient: 5xx, timeouts, dropped connections
    PROPAGATING = "RolePropagating"  # transient for a while: ECR does not see a new role yet
    ACCESS_DENIED = "AccessDenied"  # terminal: the operator's own IAM permissions
    NOT_FOUND = "NotFound"  # terminal: a role or repository that does not exist
    LIMIT_EXCEEDED = "LimitExceeded"  # terminal: a quota such as managed policies per role
    INVALID = "InvalidRequest"  # terminal: AWS rejected what we sent
    ACCOUNT_NOT_CONFIGURED = "AccountNotConfigured"  # terminal: another account with no EcrAccessAccount
    ACCOUNT_UNAVAILABLE = "AccountUnavailable"  # transient: its role could not be assumed (or refreshed)

    @property
    def transient(self) -> bool:
        return self in (FaultKind.THROTTLED, FaultKind.UNAVAILABLE, FaultKind.PROPAGATING,
                        FaultKind.ACCOUNT_UNAVAILABLE)


class AwsFault(Exception):
    """A classified AWS failure, carrying the operation and the resource it concerned."""

    def __init__(self, kind: FaultKind, operation: str, resource: str, detail: str,
                 cause: FaultKind | None = None) -> None:
        """`cause`: for ACCOUNT_UNAVAILABLE, what assuming the account's role met (AccessDenied: its
        trust policy; Throttled or AwsUnavailable: try again soon)."""
        super().__init__(f"{operation} on {resource}: {detail}")
        self.kind = kind
        self.operation = operation
        self.resource = resource
        self.detail = detail
        self.cause = cause
        # The account it happened in, when that is another than the operator's own (where the
        # operator acts as the role an EcrAccessAccount names); set by the adapter of that account.
        self.account: str | None = None


@dataclasses.dataclass(frozen=True)
class RoleInfo:
    """What GetRole tells us: the ARN to use as a principal, the role's unique id, and its tags
    (where the managed-policy ledger lives, see `attachments`)."""

    arn: str
    role_id: str
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)


@dataclasses.dataclass(frozen=True)
class Simulated:
    """One answer of IAM's policy simulator: may the role call `action` on `resource`?"""

    action: str
    resource: str
    decision: str  # allowed | explicitDeny | implicitDeny


class IamPort(Protocol):
    async def get_role(self, name: str) -> RoleInfo | None: ...

    async def list_attached_role_policies(self, role_name: str) -> frozenset[str]: ...

    async def attach_role_policy(self, role_name: str, policy_arn: str) -> None: ...

    async def detach_role_policy(self, role_name: str, policy_arn: str) -> None:
        """Detach; a policy that is no longer attached is not an error (cleanup is idempotent)."""
        ...

    async def tag_role(self, role_name: str, tags: Mapping[str, str]) -> None: ...

    async def untag_role(self, role_name: str, keys: Iterable[str]) -> None: ...

    async def simulate_principal_policy(self, role_arn: str, actions: Sequence[str],
                                        resources: Sequence[str]) -> list[Simulated]:
        """What the role's identity policies (and boundary, and SCPs) decide for each action on each
        resource; read only (`ECR_ACCESS_VERIFY_IDENTITY`)."""
        ...


class EcrPort(Protocol):
    async def get_repository_policy(self, repo: RepositoryRef) -> str | None:
        """The policy text, or None when the repository has no policy.

        Raises AwsFault(NOT_FOUND) when the repository itself does not exist.
        """
        ...

    async def set_repository_policy(self, repo: RepositoryRef, text: str) -> None: ...

    async def delete_repository_policy(self, repo: RepositoryRef) -> None:
        """Delete; a policy that is already gone is not an error."""
        ...

    async def describe_repositories(self, region: str, registry_id: str) -> list[str]:
        """Names of every repository in one registry and region (paginated by the adapter)."""
        ...


class OtherAccounts(Protocol):
    """The AWS accounts other than the operator's own that it may act in (`EcrAccessAccount`,
    DESIGN §6), each with its own credentials, clients, rate limits and threads."""

    def reaches(self, account: str) -> bool:
        """Whether an EcrAccessAccount configures `account` (whether its role can be assumed is
        found out by using it: AwsFault(ACCOUNT_UNAVAILABLE))."""
        ...

    def configured(self) -> list[str]:
        """Every account an EcrAccessAccount configures now (where the orphan sweep looks too)."""
        ...

    def iam(self, account: str) -> IamPort:
        """IAM in that account; raises AwsFault(ACCOUNT_NOT_CONFIGURED) when none is configured."""
        ...

    def ecr(self, account: str) -> EcrPort:
        """ECR in that account; raises AwsFault(ACCOUNT_NOT_CONFIGURED) when none is configured."""
        ...


class NoOtherAccounts:
    """The operator acts in its own account only (no EcrAccessAccount, or tests of one account)."""

    def reaches(self, account: str) -> bool:
        return False

    def configured(self) -> list[str]:
        return []

    def iam(self, account: str) -> IamPort:
        raise not_configured(account, "IAM")

    def ecr(self, account: str) -> EcrPort:
        raise not_configured(account, "ECR")


def not_configured(account: str, service: str) -> AwsFault:
    return AwsFault(FaultKind.ACCOUNT_NOT_CONFIGURED, service, f"account {account}",
                    f"no EcrAccessAccount configures account {account}")


@dataclasses.dataclass(frozen=True)
class Accounts:
    """Routes each call to the port of the account it concerns: the operator's own, or another."""

    account: str  # the operator's own
    own_iam: IamPort
    own_ecr: EcrPort
    others: OtherAccounts = dataclasses.field(default_factory=NoOtherAccounts)

    def reaches(self, account: str) -> bool:
        return account == self.account or self.others.reaches(account)

    def configured(self) -> list[str]:
        """The other accounts EcrAccessAccounts configure (the operator's own is not among them)."""
        return [account for account in self.others.configured() if account != self.account]

    def iam(self, account: str) -> IamPort:
        return self.own_iam if account == self.account else self.others.iam(account)

    def ecr(self, account: str) -> EcrPort:
        return self.own_ecr if account == self.account else self.others.ecr(account)
