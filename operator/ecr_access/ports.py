"""The two ports through which `reconcile` reaches AWS, and the one error type they raise.

`reconcile` depends on these Protocols, `aws/` implements them with boto3, and unit tests implement
them with small fakes. "Not found" is data where the caller has a use for it (`get_role` and
`get_repository_policy` return None); every other failure is an `AwsFault` whose `kind` was decided
once, in `aws/errors.py`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
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

    @property
    def transient(self) -> bool:
        return self in (FaultKind.THROTTLED, FaultKind.UNAVAILABLE, FaultKind.PROPAGATING)


class AwsFault(Exception):
    """A classified AWS failure, carrying the operation and the resource it concerned."""

    def __init__(self, kind: FaultKind, operation: str, resource: str, detail: str) -> None:
        super().__init__(f"{operation} on {resource}: {detail}")
        self.kind = kind
        self.operation = operation
        self.resource = resource
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class RoleInfo:
    """What GetRole tells us: the ARN to use as a principal, the role's unique id, and its tags
    (where the managed-policy ledger lives, see `attachments`)."""

    arn: str
    role_id: str
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)


class IamPort(Protocol):
    def get_role(self, name: str) -> RoleInfo | None: ...

    def list_attached_role_policies(self, role_name: str) -> frozenset[str]: ...

    def attach_role_policy(self, role_name: str, policy_arn: str) -> None: ...

    def detach_role_policy(self, role_name: str, policy_arn: str) -> None:
        """Detach; a policy that is no longer attached is not an error (cleanup is idempotent)."""
        ...

    def tag_role(self, role_name: str, tags: Mapping[str, str]) -> None: ...

    def untag_role(self, role_name: str, keys: Iterable[str]) -> None: ...


class EcrPort(Protocol):
    def get_repository_policy(self, repo: RepositoryRef) -> str | None:
        """The policy text, or None when the repository has no policy.

        Raises AwsFault(NOT_FOUND) when the repository itself does not exist.
        """
        ...

    def set_repository_policy(self, repo: RepositoryRef, text: str) -> None: ...

    def delete_repository_policy(self, repo: RepositoryRef) -> None:
        """Delete; a policy that is already gone is not an error."""
        ...

    def describe_repositories(self, region: str, registry_id: str) -> Iterable[str]:
        """Names of every repository in one registry and region (paginated by the adapter)."""
        ...
