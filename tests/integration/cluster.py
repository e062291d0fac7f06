"""Just enough of a cluster to call the kopf handlers directly: bodies, kopf-shaped indexes built
with the real index functions, and patches applied the way a merge patch would apply them."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from typing import Any

import kopf

from ecr_access import handlers, watches
from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.model import GrantKey
from ecr_access.sweep import Sweeper
from tests.integration.conftest import ACCOUNT, CLOUD_ID, DEFAULTS, HOME, REGION, World

TRAINER_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/trainer"


class Cluster:
    """Just enough of a cluster for handlers: bodies, kopf-shaped indexes, and applying patches."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.bodies: dict[str, dict[str, Any]] = {}
        sweeper = Sweeper(world.reconciler.repositories, HOME, interval=0)
        # A tiny resync interval: each drift check reads AWS afresh, as one a whole interval later would.
        # A tiny stalled delay: a stalled delete waits that long for a change before kopf retries it.
        # Policy mode Open, unless a test calls `enforce`.
        self.config = Config(resync_interval=0.01, stalled_retry_delay=0.05, policy_mode="Open")
        self.policies: dict[str, dict[str, Any]] = {}  # EcrGrantPolicy bodies by name
        self.namespaces: dict[str, dict[str, str]] = {}  # namespace labels
        self.memo = kopf.Memo(runtime=handlers.Runtime(self.config, DEFAULTS, world.reconciler, sweeper,
                                                       patch_status=self.patch_status,
                                                       read_grant=lambda key: copy.deepcopy(self.bodies.get(key.name))))
        self.patches: list[dict[str, Any]] = []
        self.direct: list[tuple[str, dict[str, Any]]] = []  # status written at once, outside kopf's patch
        self.loop = world.loop  # one loop for the handlers and the world's own calls, as under kopf

    def runtime_config(self, **settings: Any) -> None:
        """Change settings of the runtime the handlers see."""
        self.config = dataclasses.replace(self.config, **settings)
        self.memo.runtime = dataclasses.replace(self.memo.runtime, config=self.config)

    def put(self, name: str, spec: dict[str, Any], generation: int = 1, uid: str | None = None) -> dict[str, Any]:
        old = self.bodies.get(name, {})
        meta = {"name": name, "namespace": "default", "generation": generation, "uid": uid or f"uid-{name}",
                "annotations": old.get("metadata", {}).get("annotations", {}),
                "finalizers": [watches.FINALIZER]}
        body = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant", "metadata": meta,
                "spec": spec, "status": old.get("status", {})}
        self.bodies[name] = body
        return body

    def patch_status(self, key: GrantKey, status: Any) -> None:
        """`Runtime.patch_status`: a merge patch of the status, written at once (and kept in `direct`)."""
        self.direct.append((key.name, copy.deepcopy(dict(status))))
        self._merge(self.bodies[key.name]["status"], status)

    @staticmethod
    def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
        for key, value in patch.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value

    def enforce(self, **policies: dict[str, Any]) -> None:
        """Policy mode Enforce, with these EcrGrantPolicy specs by name."""
        self.runtime_config(policy_mode="Enforce")
        self.policies = {name: {"metadata": {"name": name, "generation": 1}, "spec": spec}
                         for name, spec in policies.items()}

    def indexes(self) -> dict[str, dict[Any, list[Any]]]:
        by_repo: dict[Any, list[Any]] = {}
        by_role: dict[Any, list[Any]] = {}
        for body in self.bodies.values():
            for key, value in watches.index_by_repository(kopf.Body(body), self.memo).items():
                by_repo.setdefault(key, []).append(value)
            for key, value in watches.index_by_role(kopf.Body(body), self.memo).items():
                by_role.setdefault(key, []).append(value)
        policies = {name: [watches.index_policies(kopf.Body(body))[name]] for name, body in self.policies.items()}
        namespaces = {name: [labels] for name, labels in self.namespaces.items()}
        return {watches.BY_REPOSITORY: by_repo, watches.BY_ROLE: by_role, watches.POLICIES: policies,
                watches.NAMESPACES: namespaces}

    async def handler_call(self, handler: Any, name: str) -> None:
        """Await a handler inside a running loop (for tests that do something else meanwhile); its
        status written at once (`patch_status`) lands, kopf's patch is dropped."""
        await handler(body=kopf.Body(copy.deepcopy(self.bodies[name])), patch=kopf.Patch(), memo=self.memo,
                      **self.indexes())

    def call(self, handler: Any, name: str) -> dict[str, Any]:
        """Run a handler, apply its status patch the way a merge patch would, and return the patch."""
        body = self.bodies[name]
        patch = kopf.Patch()
        try:
            result = handler(body=kopf.Body(copy.deepcopy(body)), patch=patch, memo=self.memo, **self.indexes())
            if inspect.iscoroutine(result):  # the resource handlers are coroutines, as kopf runs them
                self.loop.run_until_complete(result)
        finally:
            raw = dict(patch)
            self.patches.append(raw)
            self._merge(body["status"], raw.get("status", {}))
            self._merge(body["metadata"].setdefault("annotations", {}),
                        raw.get("metadata", {}).get("annotations", {}))
        return raw

    def drift(self, name: str, interval: float | None = None) -> dict[str, Any]:
        """One drift-check pass over this grant, its status write applied to the body; the patch."""
        written: dict[str, Any] = {}

        def write_status(key: GrantKey, status: Any) -> None:
            assert key == GrantKey("default", name)
            written.update(status)

        checker = DriftChecker(self.world.reconciler, interval=interval or self.config.resync_interval,
                               retry_delay=15, write_status=write_status, warn=lambda grant, reason, message: None,
                               now=lambda: handlers.now())  # noqa: PLW0108 - the test's clock is patched in later
        checker.indexes_ready(watches.live(self.indexes(), self.config))
        self.loop.run_until_complete(checker.check(only=[GrantKey("default", name)]))
        for key, value in written.items():
            if value is None:
                self.bodies[name]["status"].pop(key, None)
            else:
                self.bodies[name]["status"][key] = value
        return {"status": written} if written else {}

    def conditions(self, name: str) -> dict[str, dict[str, Any]]:
        return {item["type"]: item for item in self.bodies[name]["status"].get("conditions", [])}


def spec(*repos: str, **extra: Any) -> dict[str, Any]:
    return {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [{"name": name} for name in repos], **extra}


