"""Which other AWS accounts the operator may act in, and as whom: `EcrAccessAccount` (pure; DESIGN §6).

A central registry account is the common layout: repositories in account B, the clouds' node
roles in account A. Only credentials in B can write B's repository policies, so an
`EcrAccessAccount` names a role in B for the operator to assume. The operator's own account needs
none; every other account a grant touches does, or that part of the grant is `AccountNotConfigured`.

This module judges the objects: is a spec well formed, which object configures an account when
two name it (the older one: a newcomer cannot take over an account in use), and what the status
says. Assuming the role is the AWS adapter's (`aws/accounts`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ecr_access import policy
from ecr_access.conditions import Finding, Severity, kstatus
from ecr_access.model import ROLE_ARN_RE, GrantSpec

ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
# STS's own rule for ExternalId: 2 to 1,224 of these characters.
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$")  # ASCII: Python's \w would take any letter


class AccountError(ValueError):
    """A malformed EcrAccessAccount: `field` is the path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclasses.dataclass(frozen=True)
class AccountSpec:
    """One EcrAccessAccount, validated: assume `role_arn` to act in `account_id`."""

    name: str  # the object's name
    account_id: str
    role_arn: str
    external_id: str = ""
    created: str = ""  # metadata.creationTimestamp: the older of two objects for one account wins

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]


@dataclasses.dataclass(frozen=True)
class Invalid:
    """An EcrAccessAccount whose spec is malformed: it configures nothing."""

    name: str
    error: AccountError
    created: str = ""


Entry = AccountSpec | Invalid


def session_name(cluster_id: str) -> str:
    """The RoleSessionName of every assumed session: the registry owner finds this cluster's calls
    in CloudTrail by it (`ecr-access-` and the 8 hex digits that name the cluster in Sids and tags)."""
    return f"ecr-access-{policy.cluster_digest(cluster_id)}"


def touches(spec: GrantSpec, account: str) -> bool:
    """Whether a grant's role or one of its repositories is in `account`."""
    return spec.role.account == account or any(repo.registry_id == account for repo in spec.repositories)


def parse(name: str, spec: Any, created: str = "") -> AccountSpec:
    """Validate a spec, as the CRD's schema should have but a hand-made object may not."""
    if not isinstance(spec, Mapping):
        raise AccountError("spec", "must be an object")
    account = spec.get("accountId")
    if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
        raise AccountError("spec.accountId", f"{account!r} is not a 12-digit AWS account id")
    assume = spec.get("assumeRole")
    if not isinstance(assume, Mapping):
        raise AccountError("spec.assumeRole", "must be an object with roleArn")
    role_arn = assume.get("roleArn")
    match = ROLE_ARN_RE.fullmatch(role_arn) if isinstance(role_arn, str) else None
    if match is None:
        raise AccountError("spec.assumeRole.roleArn", f"{role_arn!r} is not an IAM role ARN")
    if match["account"] != account:
        raise AccountError("spec.assumeRole.roleArn", f"the role is in account {match['account']}, not in "
                           f"spec.accountId {account}: the role to assume must be in the account it acts in")
    external = assume.get("externalId", "")
    if external is None:
        external = ""
    if not isinstance(external, str) or (external and not EXTERNAL_ID.fullmatch(external)):
        raise AccountError("spec.assumeRole.externalId", "must be 2 to 1,224 letters, digits or +=,.@:/-_")
    return AccountSpec(name, account, str(role_arn), external, created)


def entry(body: Mapping[str, Any]) -> Entry:
    """What one object says, valid or not (for the kopf index of accounts)."""
    meta = body.get("metadata") or {}
    name, created = str(meta.get("name", "")), str(meta.get("creationTimestamp") or "")
    try:
        return parse(name, body.get("spec"), created)
    except AccountError as error:
        return Invalid(name, error, created)


def chosen(entries: Iterable[Entry], partition: str) -> AccountSpec | None:
    """Of the objects that name one account, the one that configures it: the oldest valid one
    (then by name), so that a second object cannot take over an account in use. Valid means in
    the operator's `partition` too: an object `refusal` calls InvalidSpec configures nothing, so it
    is neither used nor keeps a valid one out."""
    valid = [item for item in entries if isinstance(item, AccountSpec) and item.partition == partition]
    return min(valid, key=lambda item: (item.created, item.name), default=None)


def refusal(item: Entry, rivals: Iterable[Entry], own_account: str, own_partition: str) -> Finding | None:
    """Why this object configures nothing, if it does not; `rivals`: every object naming its account."""
    if isinstance(item, Invalid):
        return Finding("InvalidSpec", f"{item.error}; this EcrAccessAccount configures nothing until it is fixed.",
                       Severity.TERMINAL)
    if item.account_id == own_account:
        return Finding("OwnAccount", f"Account {own_account} is the operator's own: it acts there with its own "
                       "credentials and needs no EcrAccessAccount. Delete this one.", Severity.TERMINAL)
    if item.partition != own_partition:
        return Finding("InvalidSpec", f"spec.assumeRole.roleArn is in partition {item.partition}, but the operator "
                       f"runs in {own_partition}.", Severity.TERMINAL)
    winner = chosen(rivals, own_partition)
    if winner is not None and winner.name != item.name:
        return Finding("DuplicateAccount", f"EcrAccessAccount {winner.name} already configures account "
                       f"{item.account_id}; this one is not used. Delete one of them.", Severity.TERMINAL)
    return None


def status(item: Entry, generation: int, problem: Finding | None, identity_arn: str | None,
           previous: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """The account's status: Ready once its role was assumed and GetCallerIdentity answered with
    the account; otherwise why not. No timestamps that change on refresh: a condition's
    lastTransitionTime changes only when its status flips."""
    if problem is None and identity_arn:
        ready = ("True", "Assumed", f"The operator acts in account {getattr(item, 'account_id', '')} as "
                 f"{identity_arn}.")
        problems: list[Finding] = []
    else:
        problem = problem or Finding("Unknown", "The role has not been assumed yet.", Severity.TRANSIENT)
        ready = ("False", problem.reason, problem.message)
        problems = [problem]
    result: dict[str, Any] = {"observedGeneration": generation,
                              "conditions": kstatus(ready, problems, generation, previous, now)}
    result["identityArn"] = identity_arn if problem is None else None
    return result
