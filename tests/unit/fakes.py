"""In-memory AWS at the ports (`IamPort`, `EcrPort`, coroutines as the real adapters are), for unit
tests of the reconciler and its parts.

IAM role names are case-insensitive here as in IAM (moto's are not), and the role's tags are kept,
since the managed-policy ledger lives in them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
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

    async def get_role(self, name: str) -> RoleInfo | None:
        self.calls.append("GetRole")
        role = self.roles.get(name.lower())
        return None if role is None else RoleInfo(role.arn, "AROA" + name.upper(), dict(role.tags))

    async def list_attached_role_policies(self, role_name: str) -> frozenset[str]:
        self.calls.append("ListAttachedRolePolicies")
        return frozenset(self._role(role_name).attached)

    async def attach_role_policy(self, role_name: str, policy_arn: str) -> None:
        self.calls.append("AttachRolePolicy")
        self._role(role_name).attached.add(policy_arn)

    async def detach_role_policy(self, role_name: str, policy_arn: str) -> None:
        self.calls.append("DetachRolePolicy")
        self._role(role_name).attached.discard(policy_arn)

    async def tag_role(self, role_name: str, tags: Mapping[str, str]) -> None:
        self.calls.append("TagRole")
        self._role(role_name).tags.update(tags)

    async def untag_role(self, role_name: str, keys: Iterable[str]) -> None:
        self.calls.append("UntagRole")
        for key in keys:
            self._role(role_name).tags.pop(key, None)


class FakeEcr:
    """EcrPort in memory, with the calls made. `refuse`: principals ECR refuses, as it refuses a
    role it cannot see (the whole document, `PROPAGATING`). `after_set`: run after each accepted
    SetRepositoryPolicy (a concurrent writer landing between the operator's write and its re-read)."""

    def __init__(self, *names: str) -> None:
        self.policies: dict[str, str | None] = dict.fromkeys(names)
        self.calls: list[str] = []
        self.refuse: set[str] = set()
        self.after_set: Callable[[str], None] | None = None
        self.down = False  # every call fails as AWS not answering
        self.silent: set[str] = set()  # repositories whose calls fail that way

    def _call(self, operation: str, repo: Any) -> None:
        self.calls.append(operation)
        if self.down or repo.name in self.silent:
            raise AwsFault(FaultKind.UNAVAILABLE, operation, repo.name, "connect timeout")
        if repo.name not in self.policies:
            raise AwsFault(FaultKind.NOT_FOUND, operation, repo.name, "RepositoryNotFoundException")

    async def get_repository_policy(self, repo: Any) -> str | None:
        self._call("GetRepositoryPolicy", repo)
        return self.policies[repo.name]

    async def set_repository_policy(self, repo: Any, text: str) -> None:
        self._call("SetRepositoryPolicy", repo)
        if any(arn in text for arn in self.refuse):
            raise AwsFault(FaultKind.PROPAGATING, "SetRepositoryPolicy", repo.name, "Invalid repository policy")
        self.policies[repo.name] = text
        if self.after_set is not None:
            self.after_set(repo.name)

    async def delete_repository_policy(self, repo: Any) -> None:
        self._call("DeleteRepositoryPolicy", repo)
        self.policies[repo.name] = None

    async def describe_repositories(self, region: str, registry_id: str) -> list[str]:
        self.calls.append("DescribeRepositories")
        return list(self.policies)
