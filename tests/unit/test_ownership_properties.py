"""A property of the managed-policy ledger (issue 10), over the real handlers and reconciler:

    for any sequence of grant creates, edits, suspends, invalid edits, deletes, forged statuses and
    people attaching or detaching by hand (a drift pass apart), once the operator has settled, each
    role has each ECR managed policy attached exactly when a live grant wants it, or someone other
    than the operator attached it (a person, or a Retain grant that handed it over). One allowance:
    what only a suspended (or refused) grant still wants, frozen, is kept but not repaired if a person
    detaches it, since suspend means "change nothing for me".

The handlers run as kopf would call them (real `kopf.Patch`, the real index functions); AWS is an
in-memory IAM and ECR at the ports, case-insensitive about role names as IAM is. The oracle below
keeps its own model of what each grant contributes (DESIGN §2.5: the spec while valid and not
suspended, else what it last applied), written from the design and not from the operator's code.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
from typing import Any

import kopf
from hypothesis import given, settings
from hypothesis import strategies as st

from ecr_access import handlers, watches
from ecr_access.config import Config
from ecr_access.model import Defaults
from ecr_access.reconcile import Reconciler
from ecr_access.sweep import Registry, Sweeper
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
POLICIES = {"ReadOnly": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
            "PullOnly": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly"}
ROLES = ("node-a", "node-b")
SPELLINGS = {"node-a": "node-a", "Node-A": "node-a", "node-b": "node-b", "missing": None}
NAMES = ("g1", "g2", "g3")


@dataclasses.dataclass
class Model:
    """The oracle's own view: each live grant's spec fields, and what it last applied."""

    spec: dict[str, Any]
    applied: dict[str, Any] | None = None

    def contribution(self) -> dict[str, Any] | None:
        if self.spec["valid"] and not self.spec["suspend"]:
            return self.spec
        return self.applied


async def no_sleep(_: float) -> None:
    """The pause between writes against a concurrent writer, skipped."""


class World:
    def __init__(self) -> None:
        self.iam = FakeIam(ACCOUNT, ROLES)
        self.ecr = FakeEcr("ml/a", "ml/b")
        config = Config(cache_ttl=0.0, role_cache_ttl=0.0, coalesce_window=0.0)
        reconciler = Reconciler(self.iam, self.ecr, cluster_id="prop-cluster", account=ACCOUNT,  # type: ignore[arg-type]
                                config=config, sleep=no_sleep)
        sweeper = Sweeper(reconciler.repositories, Registry("aws", "us-west-2", ACCOUNT), interval=0)
        runtime = handlers.Runtime(Config(stalled_retry_delay=0.0, policy_mode="Open"), DEFAULTS, reconciler, sweeper)
        self.memo = kopf.Memo(runtime=runtime)
        self.bodies: dict[str, dict[str, Any]] = {}
        self.models: dict[str, Model] = {}
        self.others: set[tuple[str, str]] = set()  # (role, policy) attached by someone other than the operator
        self.uids = itertools.count()
        self.loop = asyncio.new_event_loop()

    # -- the cluster, as kopf would drive the handlers --------------------------------------------

    def indexes(self) -> dict[str, dict[Any, list[Any]]]:
        by_repo: dict[Any, list[Any]] = {}
        by_role: dict[Any, list[Any]] = {}
        for body in self.bodies.values():
            for key, value in watches.index_by_repository(kopf.Body(body), self.memo).items():
                by_repo.setdefault(key, []).append(value)
            for key, value in watches.index_by_role(kopf.Body(body), self.memo).items():
                by_role.setdefault(key, []).append(value)
        return {watches.BY_REPOSITORY: by_repo, watches.BY_ROLE: by_role}

    def call(self, handler: Any, name: str) -> bool:
        """Run one handler; apply its patch as a merge patch. False if it asked kopf to retry."""
        body = self.bodies[name]
        patch = kopf.Patch()
        try:
            self.loop.run_until_complete(handler(body=kopf.Body(copy.deepcopy(body)), patch=patch, memo=self.memo,
                                                 **self.indexes()))
            done = True
        except kopf.TemporaryError:
            done = False
        raw = dict(patch)
        for target, changes in ((body.setdefault("status", {}), raw.get("status", {})),
                                (body["metadata"].setdefault("annotations", {}),
                                 raw.get("metadata", {}).get("annotations", {}))):
            for key, value in changes.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        return done

    def put(self, name: str, spec: dict[str, Any]) -> None:
        old = self.bodies.get(name)
        meta = copy.deepcopy(old["metadata"]) if old else {
            "name": name, "namespace": "default", "uid": f"uid-{next(self.uids)}", "generation": 0,
            "finalizers": [watches.FINALIZER]}
        meta["generation"] += 1
        repos: list[dict[str, str]] = [{"name": repo} for repo in spec["repos"]]
        if not spec["valid"]:  # the same repository twice: the schema lets it through, the operator refuses it
            repos = [{"name": "ml/a"}, {"arn": f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository/ml/a"}]
        self.bodies[name] = {"metadata": meta, "status": old["status"] if old else {}, "spec": {
            "role": {"name": spec["role"]}, "managedPolicy": spec["policy"], "repositories": repos,
            "suspend": spec["suspend"], "deletionPolicy": spec["deletion"]}}
        model = self.models.setdefault(name, Model(spec))
        model.spec = spec
        self.call(handlers.on_grant_create if old is None else handlers.on_grant_update, name)
        if spec["valid"] and not spec["suspend"]:
            model.applied = spec  # the handler records what it applied, whatever AWS answered

    def delete(self, name: str) -> None:
        body = self.bodies[name]
        body["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
        model = self.models[name]
        given = model.contribution()
        deletion = (model.spec if model.spec["valid"] else (model.applied or model.spec))["deletion"]
        role = SPELLINGS[given["role"]] if given is not None else None
        handing = role is not None and given is not None and given["policy"] != "None" and deletion == "Retain" and (
            POLICIES[given["policy"]] in self.iam.roles[role].attached)
        if self.call(handlers.on_grant_delete, name):
            del self.bodies[name]
            del self.models[name]
            if handing and role is not None and given is not None:
                self.others.add((role, given["policy"]))  # handed over: no operator detaches it now

    def settle(self) -> None:
        """What a restart (resume handlers) and the retries of pending deletes do."""
        for _ in range(2):
            for name in list(self.bodies):
                if "deletionTimestamp" in self.bodies[name]["metadata"]:
                    self.delete(name)
                else:
                    self.call(handlers.on_grant_resume, name)

    # -- the oracle -----------------------------------------------------------------------------

    def wanted(self, *, frozen: bool = True) -> set[tuple[str, str]]:
        """What live grants want; `frozen=False`: only grants whose own spec is applied (not a
        suspended or refused one's frozen contribution, which the operator keeps but does not repair:
        suspend means change nothing)."""
        found = set()
        for model in self.models.values():
            given = model.contribution()
            if given is None or given["policy"] == "None" or SPELLINGS[given["role"]] is None:
                continue
            if frozen or given is model.spec:
                found.add((SPELLINGS[given["role"]], given["policy"]))
        return found


specs = st.fixed_dictionaries({
    "role": st.sampled_from(list(SPELLINGS)),
    "policy": st.sampled_from(["ReadOnly", "PullOnly", "None"]),
    "repos": st.lists(st.sampled_from(["ml/a", "ml/b"]), min_size=1, max_size=2, unique=True),
    "suspend": st.booleans(),
    "deletion": st.sampled_from(["Delete", "Retain"]),
    "valid": st.sampled_from([True, True, True, False]),  # False: an edit the operator refuses (InvalidSpec)
})
forged = st.fixed_dictionaries({
    "roleArn": st.sampled_from([f"arn:aws:iam::{ACCOUNT}:role/{name}" for name in ROLES]),
    "managedPolicyArn": st.sampled_from(list(POLICIES.values())),
    "managedPolicyOwned": st.booleans(),
})
operations = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(NAMES), specs),
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.none()),
    st.tuples(st.just("forge"), st.sampled_from(NAMES), forged),
    st.tuples(st.just("attach"), st.sampled_from(ROLES), st.sampled_from(list(POLICIES))),
    st.tuples(st.just("detach"), st.sampled_from(ROLES), st.sampled_from(list(POLICIES))),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(operations, min_size=1, max_size=12))
def test_a_policy_is_attached_exactly_when_a_live_grant_wants_it_or_someone_else_attached_it(
    steps: list[tuple[str, str, Any]],
) -> None:
    world = World()
    try:
        for kind, target, value in steps:
            if kind == "put":
                world.put(target, value)
            elif kind == "delete" and target in world.bodies:
                world.delete(target)
            elif kind == "forge" and target in world.bodies:
                world.bodies[target]["status"] = dict(value)  # anyone with patch on ecraccessgrants/status
            elif kind == "attach":
                role = world.iam.roles[target]
                if POLICIES[value] not in role.attached:
                    role.attached.add(POLICIES[value])
                    world.others.add((target, value))
            elif kind == "detach":
                world.iam.roles[target].attached.discard(POLICIES[value])
                world.others.discard((target, value))
                # The operator notices before anyone attaches it again. (A detach and a re-attach by hand
                # within one drift interval are indistinguishable, in AWS, from no change at all.)
                world.settle()
        world.settle()

        expected = world.wanted() | world.others
        unrepaired = world.wanted() - world.wanted(frozen=False) - world.others  # may have been detached by hand
        for role_name, role in world.iam.roles.items():
            for short, arn in POLICIES.items():
                if (role_name, short) in unrepaired and arn not in role.attached:
                    continue
                assert (arn in role.attached) == ((role_name, short) in expected), (
                    f"{short} on {role_name}: attached={arn in role.attached}, wanted={world.wanted()}, "
                    f"others={world.others}, tags={role.tags}")
    finally:
        world.loop.close()
