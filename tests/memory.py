"""In-memory stand-ins shared by the unit and integration tests: a set of live grants as kopf's
indexes would hold them, and a driver for the reconciler's async API on one event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from ecr_access import tenancy
from ecr_access.conditions import Outcome
from ecr_access.grants import LiveGrant, LiveGrants
from ecr_access.model import Defaults, GrantKey, GrantSpec, RepositoryRef, RoleKey
from ecr_access.reconcile import ApplyMode, Reconciler
from ecr_access.spec import parse_spec


class Grants:
    """An in-memory `LiveGrants`: the set of live grants as kopf's indexes would hold them, and the
    EcrGrantPolicies and namespace labels that judge them (`policies` None: policy mode Open)."""

    def __init__(self, defaults: Defaults, policies: list[tenancy.GrantPolicy] | None = None) -> None:
        self.defaults = defaults
        self.live: dict[GrantKey, LiveGrant] = {}
        self.policies = policies
        self.labels: dict[str, dict[str, str]] = {}  # namespace -> labels

    def verdict(self, grant: LiveGrant, role_arn: str) -> tenancy.Verdict:
        if self.policies is None:
            return tenancy.open_verdict(grant.spec)
        namespace = grant.key.namespace
        return tenancy.judge(self.policies, namespace, self.labels.get(namespace, {}), role_arn, grant.spec)

    def add(self, name: str, spec: dict[str, Any] | GrantSpec, namespace: str = "default",
            **fields: Any) -> tuple[GrantKey, GrantSpec]:
        parsed = spec if isinstance(spec, GrantSpec) else parse_spec(spec, self.defaults)
        key = GrantKey(namespace, name)
        self.live[key] = LiveGrant(key, parsed, **fields)
        return key, parsed

    def remove(self, key: GrantKey) -> LiveGrant:
        return self.live.pop(key)

    def naming_repository(self, repo: RepositoryRef) -> list[LiveGrant]:
        return [grant for grant in self.live.values() if repo in grant.spec.repositories]

    def on_role(self, role: RoleKey) -> list[LiveGrant]:
        return [grant for grant in self.live.values() if grant.spec.role.key == role]

    def everything(self) -> list[LiveGrant]:
        return list(self.live.values())


class Driver:
    """Steps through a reconciler's async API from a plain test, on one event loop (as under kopf)."""

    def __init__(self, reconciler: Reconciler, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.reconciler = reconciler
        self.loop = loop or asyncio.new_event_loop()

    def run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(work)

    def apply(self, key: GrantKey, spec: GrantSpec, applied: GrantSpec | None, live: LiveGrants,
              mode: ApplyMode = ApplyMode()) -> Outcome:  # noqa: B008 - frozen
        outcome: Outcome = self.run(self.reconciler.apply(key, spec, applied, live, mode))
        return outcome

    def release(self, key: GrantKey, spec: GrantSpec | None, applied: GrantSpec | None, live: LiveGrants,
                uid: str = "") -> Outcome:
        outcome: Outcome = self.run(self.reconciler.release(key, spec, applied, live, uid))
        return outcome
