"""What the operator's indexes would hold for a set of cluster objects, built without kopf.

The running operator judges every grant against kopf's indexes: live grants by repository and by
role (`grants.from_body` decides what each contributes), the EcrGrantPolicies, the namespaces'
labels and the EcrAccessAccounts. The commands that answer for the operator from outside it
(`plan`, `adopt`) must judge against the same thing, built from a listing of the cluster and the
files, or their answers would differ from the operator's. So this builds exactly those indexes,
with the same functions the index handlers call, into `grants.IndexedGrants`, and the account
lookup the operator binds its assumed sessions to (`accounts.chosen`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ecr_access import accounts, grants, tenancy
from ecr_access.manifests import Objects
from ecr_access.model import Defaults, GrantKey, RepositoryRef, RoleKey


class View:
    """The indexes the operator would have for `objects` (namespaces outside `watched` are not
    watched, as with `--namespace`), in policy mode Enforce or Open."""

    def __init__(self, objects: Objects, defaults: Defaults, *, enforce: bool, finalizer: str,
                 watched: Sequence[str] = ()) -> None:
        self.objects = objects
        self.partition = defaults.partition
        self.watched = tuple(watched)
        self.entries: dict[GrantKey, grants.LiveGrant] = {}
        by_repository: dict[RepositoryRef, list[grants.LiveGrant]] = {}
        by_role: dict[RoleKey, list[grants.LiveGrant]] = {}
        for key, body in sorted(objects.grants.items(), key=lambda item: (item[0].namespace, item[0].name)):
            if not self.watches(key.namespace):
                continue
            entry = grants.from_body(body, defaults, finalizer)
            if entry is None:
                continue
            self.entries[key] = entry
            for repo in entry.spec.repositories:
                by_repository.setdefault(repo, []).append(entry)
            by_role.setdefault(entry.spec.role.key, []).append(entry)
        self.policies: dict[str, list[tenancy.GrantPolicy | tenancy.PolicyError]] = {
            name: [_parsed(name, body)] for name, body in objects.policies.items()}
        self.labels: dict[str, list[dict[str, str]]] = {
            name: [dict((body.get("metadata") or {}).get("labels") or {})] for name, body in objects.namespaces.items()}
        self.live = grants.IndexedGrants(by_repository, by_role, self.policies if enforce else None, self.labels)
        self.accounts: dict[str, list[accounts.Entry]] = {}
        for body in objects.accounts.values():
            item = accounts.entry(body)
            self.accounts.setdefault(item.account_id if isinstance(item, accounts.AccountSpec) else "", []).append(item)

    def watches(self, namespace: str) -> bool:
        return not self.watched or namespace in self.watched

    def account(self, account_id: str) -> accounts.AccountSpec | None:
        """The EcrAccessAccount that configures `account_id` (the older of two), as the operator's
        assumed sessions look it up."""
        return accounts.chosen(self.accounts.get(account_id, ()), self.partition)

    def account_ids(self) -> list[str]:
        return sorted(account for account in self.accounts if account)

    def grant_policies(self) -> list[tenancy.GrantPolicy]:
        """The valid policies (a malformed one permits nothing)."""
        return [item for items in self.policies.values() for item in items if isinstance(item, tenancy.GrantPolicy)]

    def labels_of(self, namespace: str) -> dict[str, str]:
        return next(iter(self.labels.get(namespace, ())), {})


def _parsed(name: str, body: dict[str, Any]) -> tenancy.GrantPolicy | tenancy.PolicyError:
    try:
        return tenancy.parse_policy(name, body.get("spec"))
    except tenancy.PolicyError as error:
        return error
