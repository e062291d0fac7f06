"""The values the rest of the operator trusts: a validated grant spec, as frozen dataclasses, and
the patterns and names they are checked against. `spec` turns raw input into these."""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import re
from collections.abc import Mapping

# The 12 pull actions of the reference procedure (shared/reference/access-amazon-ecr.md), in its order.
# That order happens to be sorted, which is why statements can always list actions sorted.
REFERENCE_ACTIONS: tuple[str, ...] = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview",
    "ecr:GetRepositoryPolicy",
    "ecr:ListImages",
    "ecr:ListTagsForResource",
)

# The API the operator serves (the CRD in crds/): fixed, since stored objects name it.
GROUP = "ecraccess.io"
VERSION = "v1alpha1"
PLURAL = "ecraccessgrants"
POLICY_PLURAL = "ecrgrantpolicies"  # EcrGrantPolicy, cluster-scoped (DESIGN §5)
ACCOUNT_PLURAL = "ecraccessaccounts"  # EcrAccessAccount, cluster-scoped (DESIGN §6)
# Where a JSON log line names the object it is about: kopf's `log_refkey` (`cli`) for kopf's own
# lines, and `GrantKey.log_ref` for ours. Fixed: log queries filter on it.
LOG_REFKEY = "grant"

MAX_REPOSITORIES = 100
MAX_ACTIONS = 64

_PARTITION = r"aws(?:-cn|-us-gov)?"
_REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]+"
_ROLE_NAME = r"[A-Za-z0-9_+=,.@-]{1,64}"
_REPO_NAME = r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"

ROLE_NAME_RE = re.compile(rf"^{_ROLE_NAME}$")
ROLE_ARN_RE = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):iam::(?P<account>[0-9]{{12}}):role/"
    rf"(?P<path>(?:[\x21-\x2e\x30-\x7e]+/)*)(?P<name>{_ROLE_NAME})$"
)
CLOUD_ID_RE = re.compile(r"^cld_[A-Za-z0-9]{1,42}$")
REPO_NAME_RE = re.compile(rf"^{_REPO_NAME}$")
REPO_ARN_RE = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):ecr:(?P<region>{_REGION}):(?P<registry>[0-9]{{12}}):"
    rf"repository/(?P<name>{_REPO_NAME})$"
)
REGION_RE = re.compile(rf"^{_REGION}$")
REGISTRY_ID_RE = re.compile(r"^[0-9]{12}$")
ACTION_RE = re.compile(r"^(?i:ecr):[A-Za-z*]{1,60}$")  # IAM service prefixes ignore case too

ANYSCALE_ROLE_SUFFIX = "-cluster_node_role"


class ManagedPolicy(enum.Enum):
    """Which AWS managed policy a grant attaches to its role."""

    READ_ONLY = "ReadOnly"
    PULL_ONLY = "PullOnly"
    NONE = "None"

    def arn(self, partition: str) -> str | None:
        """The policy's ARN in the role's partition, or None for `None`."""
        names = {
            ManagedPolicy.READ_ONLY: "AmazonEC2ContainerRegistryReadOnly",
            ManagedPolicy.PULL_ONLY: "AmazonEC2ContainerRegistryPullOnly",
        }
        name = names.get(self)
        return None if name is None else f"arn:{partition}:iam::aws:policy/{name}"


class DeletionPolicy(enum.Enum):
    """What happens to a grant's access when the grant is deleted (DESIGN §2.5)."""

    DELETE = "Delete"
    RETAIN = "Retain"


@dataclasses.dataclass(frozen=True)
class Catalog:
    """What AWS itself knows, for judging input the schema's patterns let through: the ECR actions
    (their canonical spelling) and the regions ECR has in each partition. The AWS adapter fills it
    from botocore's service model and endpoint data (`aws.catalog`); the model stays pure."""

    actions: frozenset[str]  # e.g. "ecr:BatchGetImage"
    regions: Mapping[str, frozenset[str]]  # partition -> region names

    def canonical_action(self, action: str) -> str | None:
        """The action as IAM spells it, or None if ECR has no such action. A glob keeps its form,
        lower case (IAM matches actions ignoring case), if it matches at least one action."""
        lowered = action.lower()
        if "*" in lowered:
            return lowered if any(fnmatch.fnmatchcase(known.lower(), lowered) for known in self.actions) else None
        return next((known for known in self.actions if known.lower() == lowered), None)


@dataclasses.dataclass(frozen=True)
class Defaults:
    """What a spec leaves to the operator: its own partition, region and account, and what AWS
    knows (`Catalog`; None only where a caller judges syntax alone, as some tests do)."""

    partition: str
    region: str
    account: str
    catalog: Catalog | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True, order=True)
class RoleKey:
    """Identifies one IAM role: role names are unique within an account, ignoring case (IAM treats
    `MyRole` and `myrole` as one role), so `name` is always lower case here. Build it with
    `RoleKey.of`, or from a `RoleRef`, so that two spellings of one role share one record."""

    account: str
    name: str

    @classmethod
    def of(cls, account: str, name: str) -> RoleKey:
        return cls(account, name.lower())


@dataclasses.dataclass(frozen=True)
class RoleRef:
    """The role a grant names, however it was spelled in the spec."""

    name: str
    account: str
    partition: str
    arn: str | None = None  # only when the spec gave an ARN (it may carry a path)

    @property
    def key(self) -> RoleKey:
        return RoleKey.of(self.account, self.name)

    def describe(self) -> str:
        """The role as the spec gave it, for messages that already say "IAM role"."""
        return self.arn or self.name

    def matches(self, resolved_arn: str) -> bool:
        """Whether the role IAM returned for this name is the one the spec names.

        A name (or cloud id) matches any role of that name in the operator's account. An ARN must
        match in partition, account and path exactly, and in name ignoring case (IAM role names
        are case-insensitive): `role/a/x` in the spec is not the role `role/b/x` that GetRole
        finds for the name `x`.
        """
        if self.arn is None:
            return True
        wanted, found = ROLE_ARN_RE.fullmatch(self.arn), ROLE_ARN_RE.fullmatch(resolved_arn)
        if wanted is None or found is None:
            return False
        same = all(wanted[part] == found[part] for part in ("partition", "account", "path"))
        return same and wanted["name"].lower() == found["name"].lower()


@dataclasses.dataclass(frozen=True, order=True)
class RepositoryRef:
    """One ECR repository, fully qualified so that it can be used as a dictionary key."""

    partition: str
    region: str
    registry_id: str
    name: str

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:ecr:{self.region}:{self.registry_id}:repository/{self.name}"

    @classmethod
    def from_arn(cls, arn: object) -> RepositoryRef | None:
        """The repository an ECR repository ARN names, or None if it is not one."""
        match = REPO_ARN_RE.fullmatch(arn) if isinstance(arn, str) else None
        return None if match is None else cls(match["partition"], match["region"], match["registry"], match["name"])


@dataclasses.dataclass(frozen=True)
class GrantKey:
    """A grant's identity in the cluster."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def log_ref(self) -> dict[str, dict[str, str]]:
        """`extra` for a log line about this grant: a JSON line carries it under LOG_REFKEY, where
        kopf's own lines carry their object (its JSON formatter adds a record's extra fields). Text
        lines name the grant in the message."""
        return {LOG_REFKEY: {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EcrAccessGrant",
                             "namespace": self.namespace, "name": self.name}}


@dataclasses.dataclass(frozen=True)
class GrantSpec:
    """A validated spec: what one EcrAccessGrant asks for."""

    role: RoleRef
    managed_policy: ManagedPolicy
    repositories: tuple[RepositoryRef, ...]
    actions: tuple[str, ...]  # sorted, de-duplicated; never empty
    deletion_policy: DeletionPolicy
    suspend: bool
