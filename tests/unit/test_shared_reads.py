"""A drift pass in flight and a burst of grant changes share AWS answers (issue 17): what one of
them read after the other asked, the other does not read again. Calls are counted at the ports,
each attributed to the cause in effect when it was made (`ecr_access.cause`); nothing is timed.

AWS is in memory; each call yields to the event loop a few times, as a real call awaits its
thread, so that the pass and the burst interleave as they do in the operator."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from ecr_access import cause
from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.model import Defaults
from ecr_access.ports import RoleInfo
from ecr_access.reconcile import Reconciler
from tests.memory import Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
YIELDS = 3  # event-loop turns per AWS call


class Calls:
    """(cause, operation) of every call at the ports, in order."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []

    def note(self, operation: str) -> None:
        self.made.append((cause.current(), operation))

    def take(self) -> list[tuple[str, str]]:
        made, self.made = self.made, []
        return made


async def _turns() -> None:
    for _ in range(YIELDS):
        await asyncio.sleep(0)


class YieldingIam(FakeIam):
    def __init__(self, calls: Calls, names: list[str]) -> None:
        super().__init__(ACCOUNT, names)
        self.log = calls

    async def get_role(self, name: str) -> RoleInfo | None:
        self.log.note("GetRole")
        await _turns()
        return await super().get_role(name)

    async def list_attached_role_policies(self, role_name: str) -> frozenset[str]:
        self.log.note("ListAttachedRolePolicies")
        await _turns()
        return await super().list_attached_role_policies(role_name)

    async def attach_role_policy(self, role_name: str, policy_arn: str) -> None:
        self.log.note("AttachRolePolicy")
        await _turns()
        await super().attach_role_policy(role_name, policy_arn)

    async def tag_role(self, role_name: str, tags: Any) -> None:
        self.log.note("TagRole")
        await _turns()
        await super().tag_role(role_name, tags)


class YieldingEcr(FakeEcr):
    def __init__(self, calls: Calls, *names: str) -> None:
        super().__init__(*names)
        self.log = calls

    async def get_repository_policy(self, repo: Any) -> str | None:
        self.log.note("GetRepositoryPolicy")
        await _turns()
        return await super().get_repository_policy(repo)

    async def set_repository_policy(self, repo: Any, text: str) -> None:
        self.log.note("SetRepositoryPolicy")
        await _turns()
        await super().set_repository_policy(repo, text)


ROLES = ["node-a", "node-b", "node-c"]
REPOS = ["ml/a", "ml/b", "ml/c", "ml/d"]
STEADY = [("node-a", "ml/a"), ("node-b", "ml/b"), ("node-a", "ml/c"), ("node-b", "ml/d")]
# The burst: a new role on two repositories the pass is about to read, and an existing role on a third.
BURST = [("node-c", "ml/a"), ("node-c", "ml/b"), ("node-a", "ml/b")]


def world() -> tuple[Calls, YieldingIam, YieldingEcr, Reconciler, Grants, DriftChecker]:
    calls = Calls()
    iam, ecr = YieldingIam(calls, ROLES), YieldingEcr(calls, *REPOS)
    reconciler = Reconciler(iam, ecr, cluster_id="c", account=ACCOUNT,  # type: ignore[arg-type]
                            config=Config(coalesce_window=0.0, cache_ttl=60.0))
    live = Grants(DEFAULTS)
    for index, (role, repo) in enumerate(STEADY):
        live.add(f"s{index}", {"role": {"name": role}, "repositories": [{"name": repo}]})
    drift = DriftChecker(reconciler, interval=300.0, retry_delay=15.0, write_status=lambda key, patch: None,
                         warn=lambda grant, reason, message: None, now=lambda: "T")
    drift.indexes_ready(live)
    return calls, iam, ecr, reconciler, live, drift


def principals(ecr: FakeEcr, name: str) -> set[str]:
    text = ecr.policies[name]
    found: set[str] = set()
    for item in json.loads(text or '{"Statement": []}')["Statement"]:
        if item["Sid"].startswith("EcrAccessGrant"):
            aws = item["Principal"]["AWS"]
            found |= {aws} if isinstance(aws, str) else set(aws)
    return found


@pytest.mark.parametrize("first", ["pass", "burst"])
def test_a_drift_pass_and_a_concurrent_burst_read_each_answer_once(first: str) -> None:
    """`pass`: the burst arrives while a pass is under way (after its first call); `burst`: a pass
    begins while the burst is under way. Either way, what one read after the other began, the
    other reuses: the pass, what the burst read since the pass began (`ApplyMode.drift`); the
    burst, whatever the pass reads, or is reading, that is young enough (`Config.cache_ttl`)."""
    calls, iam, ecr, reconciler, live, drift = world()

    async def scenario() -> None:
        await drift.check()  # the first pass applies the steady grants
        calls.take()

        def burst() -> asyncio.Future[list[Any]]:
            added = [live.add(f"b{index}", {"role": {"name": role}, "repositories": [{"name": repo}]})
                     for index, (role, repo) in enumerate(BURST)]
            return asyncio.gather(*(reconciler.apply(key, spec, None, live) for key, spec in added))

        async def under_way() -> None:
            while not calls.made:
                await asyncio.sleep(0)

        if first == "pass":
            passing: asyncio.Future[Any] = asyncio.ensure_future(drift.check())
            await under_way()
            applying = burst()
        else:
            applying = burst()
            await under_way()
            passing = asyncio.ensure_future(drift.check())
        outcomes = await applying
        assert all(not o.transient and not o.terminal for o in outcomes), outcomes
        await passing

    asyncio.run(scenario())
    made = calls.take()
    by_operation = Counter(operation for _, operation in made)
    reads = Counter(operation for _, operation in made if operation.startswith(("Get", "List")))

    assert principals(ecr, "ml/a") == {iam.roles["node-a"].arn, iam.roles["node-c"].arn}
    assert principals(ecr, "ml/b") == {iam.roles[name].arn for name in ("node-a", "node-b", "node-c")}
    # Together, the pass and the burst read each role once and each repository once, plus one
    # verifying re-read of each repository written: no answer is read twice.
    written = by_operation["SetRepositoryPolicy"]
    assert written == 2, made  # ml/a and ml/b: the burst's changes, in one write each
    assert reads == Counter({"GetRole": 3, "ListAttachedRolePolicies": 3,
                             "GetRepositoryPolicy": len(REPOS) + written}), made
    assert by_operation["TagRole"] == by_operation["AttachRolePolicy"] == 1, made  # node-c, once
    assert {who for who, _ in made} == {cause.DRIFT, cause.CHANGE}, "both the pass and the burst called AWS"
