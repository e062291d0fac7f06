"""`ecr-access-operator whoami`: who and where the operator would be, with these settings.

Why: a grant's Sid, its role tag and the session name its EcrAccessAccounts see in CloudTrail all
derive from the cluster id, and a spec's missing region and account from the AWS identity. When
a statement in a repository is not the one a person expected, the first question is which
cluster wrote it and as whom; this answers it, from the same settings as `run` (flags and
environment), without starting anything. For each EcrAccessAccount it assumes the role as the
operator would (the same RoleSessionName, `accounts.session_name`) and asks STS who it is now:
reads only, nothing is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ecr_access import accounts, policy
from ecr_access.aws.accounts import AssumedAccounts
from ecr_access.connect import Connection
from ecr_access.ports import AwsFault


@dataclasses.dataclass(frozen=True)
class AccountCheck:
    name: str  # the EcrAccessAccount
    account_id: str
    role_arn: str
    assumed: bool
    identity_arn: str | None = None
    problem: str = ""
    used: bool = True  # it configures its account (a malformed, duplicate or own-account one does not)


@dataclasses.dataclass(frozen=True)
class Identity:
    arn: str
    account: str
    partition: str
    region: str
    policy_mode: str
    cluster_id: str | None
    accounts: tuple[AccountCheck, ...]
    problems: tuple[str, ...] = ()

    @property
    def prefix(self) -> str | None:
        return policy.cluster_prefix(self.cluster_id) if self.cluster_id is not None else None

    @property
    def session_name(self) -> str | None:
        return accounts.session_name(self.cluster_id) if self.cluster_id is not None else None


def collect(connection: Connection,
            identify: Callable[[AssumedAccounts, str], tuple[str, str]] | None = None) -> Identity:
    """What `whoami` prints (blocking: it calls STS). `identify(others, account)`: (account, ARN) as
    STS answers with that account's credentials (`AssumedAccounts.identity`; tests stub it)."""
    defaults, problems = connection.defaults, []
    _, arn = connection.session.caller_identity(defaults.region)
    if connection.cluster_error:
        problems.append(connection.cluster_error)
    checks: list[AccountCheck] = []
    if connection.live is not None and connection.cluster_id is not None:
        entries: dict[str, list[accounts.Entry]] = {}
        for body in connection.live.accounts.values():
            item = accounts.entry(body)
            entries.setdefault(getattr(item, "account_id", ""), []).append(item)
        others = AssumedAccounts(connection.session, accounts.session_name(connection.cluster_id),
                                 lambda account: accounts.chosen(entries.get(account, ()), defaults.partition))
        for rivals in entries.values():
            for item in sorted(rivals, key=lambda entry: entry.name):
                checks.append(_check(item, rivals, others, defaults.account, defaults.partition,
                                     identify or AssumedAccounts.identity))
    return Identity(arn, defaults.account, defaults.partition, defaults.region, connection.config.policy_mode,
                    connection.cluster_id, tuple(sorted(checks, key=lambda item: item.name)), tuple(problems))


def _check(item: accounts.Entry, rivals: list[accounts.Entry], others: AssumedAccounts, own: str, partition: str,
           identify: Callable[[AssumedAccounts, str], tuple[str, str]]) -> AccountCheck:
    account_id, role_arn = getattr(item, "account_id", ""), getattr(item, "role_arn", "")
    refused = accounts.refusal(item, rivals, own, partition)
    if refused is not None:
        return AccountCheck(item.name, account_id, role_arn, False, problem=f"{refused.reason}: {refused.message}",
                            used=False)
    assert isinstance(item, accounts.AccountSpec)  # `refusal` refuses every malformed one
    try:
        answered, identity = identify(others, item.account_id)
    except AwsFault as fault:
        return AccountCheck(item.name, account_id, role_arn, False, problem=f"{fault.kind.value}: {fault.detail}")
    if answered != item.account_id:
        return AccountCheck(item.name, account_id, role_arn, False, identity, problem=(
            f"AccountMismatch: assuming it acts as {identity}, in account {answered}, not {item.account_id}"))
    return AccountCheck(item.name, account_id, role_arn, True, identity)


def to_json(identity: Identity) -> dict[str, Any]:
    return {
        "arn": identity.arn, "account": identity.account, "partition": identity.partition,
        "region": identity.region, "policyMode": identity.policy_mode, "clusterId": identity.cluster_id,
        "sidPrefix": identity.prefix, "sessionName": identity.session_name,
        "accounts": [{"name": item.name, "accountId": item.account_id, "roleArn": item.role_arn,
                      "used": item.used, "assumed": item.assumed, "identityArn": item.identity_arn,
                      "problem": item.problem or None}
                     for item in identity.accounts],
        "problems": list(identity.problems),
    }


def to_text(identity: Identity) -> str:
    lines = [f"AWS identity:  {identity.arn}",
             f"Account:       {identity.account} (partition {identity.partition})",
             f"Region:        {identity.region}",
             f"Cluster id:    {identity.cluster_id if identity.cluster_id is not None else '(unknown)'}",
             f"Sid prefix:    {identity.prefix or '(unknown)'}",
             f"Session name:  {identity.session_name or '(unknown)'} (for the roles of EcrAccessAccounts)",
             f"Policy mode:   {identity.policy_mode}"]
    if identity.accounts:
        lines.append("EcrAccessAccounts:")
        for item in identity.accounts:
            state = f"assumed, acts as {item.identity_arn}" if item.assumed else f"not assumed: {item.problem}"
            lines.append(f"  {item.name}: account {item.account_id or '?'} via {item.role_arn or '?'}: {state}")
    elif identity.cluster_id is not None and not identity.problems:
        lines.append("EcrAccessAccounts: none (the operator acts in its own account only)")
    lines += [f"error: {problem}" for problem in identity.problems]
    return "\n".join(lines) + "\n"
