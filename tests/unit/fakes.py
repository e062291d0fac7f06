"""In-memory AWS at the ports (`IamPort`, `EcrPort`), for unit tests of the reconciler.

IAM role names are case-insensitive here as in IAM (moto's are not), and the role's tags are kept,
since the managed-policy ledger lives in them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ecr_access.ports import AwsFault, FaultKind, RoleInfo


@dataclasses.dataclass
class Role:
    arn: str
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    attached: set[str] = dataclasses.field(default_factory=set)


class FakeIam:
    """IamPort in memory. Role names are case-insensitive, as in IAM."""

    def __init__(self, account: str, names: Iterable[str], paths: Mapping[str, str] | None = None) -> None:
        self.account = account
        self.roles = {name.lower(): Role(f"arn:aws:iam::{account}:role{(paths or {}).get(name, '/')}{name}")
                      for name in names}
        self.calls: list[str] = []

    def _role(self, name: str) -> Role:
        role = self.roles.get(name.lower())
        if role is None:
            raise AwsFault(FaultKind.NOT_FOUND, "IAM", name, "NoSuchEntity")
        return role

    def get_role(self, name: str) -> RoleInfo | None:
        self.calls.append("GetRole")
        role = self.roles.get(name.lower())
        return None if role is None else RoleInfo(role.arn, "AROA" + name.upper(), dict(role.tags))

    def list_attached_role_policies(self, role_name: str) -> frozenset[str]:
        self.calls.append("ListAttachedRolePolicies")
        return frozenset(self._role(role_name).attached)

    def attach_role_policy(self, role_name: str, policy_arn: str) -> None:
        self.calls.append("AttachRolePolicy")
        self._role(role_name).attached.add(policy_arn)

    def detach_role_policy(self, role_name: str, policy_arn: str) -> None:
        self.calls.append("DetachRolePolicy")
        self._role(role_name).attached.discard(policy_arn)

    def tag_role(self, role_name: str, tags: Mapping[str, str]) -> None:
        self.calls.append("TagRole")
        self._role(role_name).tags.update(tags)

    def untag_role(self, role_name: str, keys: Iterable[str]) -> None:
        self.calls.append("UntagRole")
        for key in keys:
            self._role(role_name).tags.pop(key, None)


class FakeEcr:
    def __init__(self, *names: str) -> None:
        self.policies: dict[str, str | None] = dict.fromkeys(names)

    def get_repository_policy(self, repo: Any) -> str | None:
        return self.policies[repo.name]

    def set_repository_policy(self, repo: Any, text: str) -> None:
        self.policies[repo.name] = text

    def delete_repository_policy(self, repo: Any) -> None:
        self.policies[repo.name] = None

    def describe_repositories(self, region: str, registry_id: str) -> list[str]:
        return list(self.policies)
