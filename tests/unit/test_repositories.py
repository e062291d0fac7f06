"""The repository sync at the ports: AWS in memory (`tests.unit.fakes`), a clock the test moves, and
no sleeps. What it must show: a burst costs one read-merge-write, a write is verified and a
concurrent writer merged, a refused principal is held back alone, and answers are reused only
while young enough."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ecr_access import grants, policy
from ecr_access.config import Config
from ecr_access.model import Defaults, RepositoryRef
from ecr_access.ports import Accounts, AwsFault, FaultKind
from ecr_access.repositories import RepositorySync, Synced
from ecr_access.roles import RoleDirectory
from tests.memory import Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
REPO = RepositoryRef("aws", "us-west-2", ACCOUNT, "ml/a")
FOREIGN = {"Sid": "TheirPush", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
           "Action": ["ecr:PutImage"]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def no_sleep(_: float) -> None:
    """The jittered pause before merging again, skipped."""


def setup(*roles: str, **settings: Any) -> tuple[RepositorySync, FakeEcr, Grants, Clock]:
    clock = Clock()
    iam, ecr = FakeIam(ACCOUNT, roles or ("node",)), FakeEcr("ml/a")
    config = Config(**{"coalesce_window": 0.0, **settings})
    accounts = Accounts(ACCOUNT, iam, ecr)
    directory = RoleDirectory(accounts, cache_ttl=60.0, clock=clock)
    sync = RepositorySync(accounts, directory, cluster_id="c", config=config, clock=clock, sleep=no_sleep)
    return sync, ecr, Grants(DEFAULTS), clock


def add(live: Grants, name: str, role: str) -> grants.LiveGrant:
    key, _ = live.add(name, {"role": {"name": role}, "repositories": [{"name": "ml/a"}]})
    return live.live[key]


def principals(ecr: FakeEcr) -> set[str]:
    doc = policy.parse(ecr.policies["ml/a"])
    return set().union(*policy.owned_principals(doc, policy.cluster_prefix("c")).values()) if doc else set()


def arn(role: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{role}"


def sync_now(repositories: RepositorySync, live: Grants, max_age: float = 0.0, changes: Any = None) -> Any:
    async def once() -> Any:
        return await repositories.sync(REPO, live, repositories.request(REPO, changes or {}), max_age)
    return asyncio.run(once())


def test_a_burst_of_requests_shares_one_read_merge_write() -> None:
    repositories, ecr, live, _ = setup(*[f"r{i}" for i in range(10)])
    grants_added = [add(live, f"g{i}", f"r{i}") for i in range(10)]

    async def burst() -> list[Any]:
        tickets = [repositories.request(REPO, grants.changes(include=grant)) for grant in grants_added]
        return list(await asyncio.gather(*(repositories.sync(REPO, live, ticket, 0.0) for ticket in tickets)))

    results = asyncio.run(burst())

    assert all(isinstance(result, Synced) for result in results)
    assert ecr.calls == ["GetRepositoryPolicy", "SetRepositoryPolicy", "GetRepositoryPolicy"], "read, write, verify"
    assert principals(ecr) == {arn(f"r{i}") for i in range(10)}


def test_a_policy_that_already_holds_what_is_wanted_is_only_read() -> None:
    repositories, ecr, live, clock = setup()
    add(live, "g", "node")
    sync_now(repositories, live)
    ecr.calls.clear()

    assert isinstance(sync_now(repositories, live, max_age=60.0), Synced)
    assert ecr.calls == [], "read 0 s ago: young enough, and it holds what the grants want"
    clock.now += 61
    sync_now(repositories, live, max_age=60.0)
    assert ecr.calls == ["GetRepositoryPolicy"], "61 s old: read again, and nothing to write"


def their_copy(ecr: FakeEcr, name: str) -> None:
    """Someone who read the policy before our write writes their edit of it: ours is lost."""
    ecr.policies[name] = json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]})


def test_a_writer_between_our_write_and_its_re_read_is_merged_and_kept() -> None:
    repositories, ecr, live, _ = setup()
    add(live, "g", "node")

    def someone_else(name: str) -> None:
        ecr.after_set = None  # once
        their_copy(ecr, name)

    ecr.after_set = someone_else
    result = sync_now(repositories, live)

    assert isinstance(result, Synced) and result.foreign_edits == 1
    doc = json.loads(ecr.policies["ml/a"] or "{}")
    assert FOREIGN in doc["Statement"] and principals(ecr) == {arn("node")}
    assert ecr.calls.count("SetRepositoryPolicy") == 2, "merged into their edit and written again"


def test_a_policy_that_keeps_changing_gives_up_for_now_after_the_write_attempts() -> None:
    repositories, ecr, live, _ = setup(write_attempts=3)
    add(live, "g", "node")

    ecr.after_set = lambda name: their_copy(ecr, name)
    result = sync_now(repositories, live)

    assert isinstance(result, AwsFault) and result.kind is FaultKind.UNAVAILABLE
    assert "kept changing" in result.detail
    assert ecr.calls.count("SetRepositoryPolicy") == 3


def test_a_refused_principal_is_held_back_alone_until_its_back_off_ends() -> None:
    repositories, ecr, live, clock = setup("good", "bad", refused_retry=60.0, refused_retry_max=3600.0)
    add(live, "good", "good")
    add(live, "bad", "bad")
    ecr.refuse.add(arn("bad"))

    first = sync_now(repositories, live)

    assert isinstance(first, Synced) and first.refused == {arn("bad"): 1000.0}
    assert principals(ecr) == {arn("good")}, "everyone ECR accepts lands"
    ecr.calls.clear()
    clock.now += 59
    sync_now(repositories, live)
    assert "SetRepositoryPolicy" not in ecr.calls, "held back: not offered again within its back-off"
    ecr.refuse.clear()  # the role propagated
    clock.now += 2
    offered = sync_now(repositories, live)
    assert isinstance(offered, Synced) and offered.refused == {}
    assert principals(ecr) == {arn("good"), arn("bad")}


def test_a_repository_that_does_not_answer_counts_its_silence_on_the_clock() -> None:
    repositories, ecr, live, clock = setup()
    add(live, "g", "node")
    ecr.down = True

    assert isinstance(sync_now(repositories, live), AwsFault)
    clock.now += 301
    assert isinstance(sync_now(repositories, live), AwsFault)
    assert repositories.silent_for(REPO) == 301.0
    ecr.down = False
    assert isinstance(sync_now(repositories, live), Synced)
    assert repositories.silent_for(REPO) is None, "it answered: the silence is over"


def test_an_excluded_grant_is_left_out_even_while_the_index_still_holds_it() -> None:
    repositories, ecr, live, _ = setup("a", "b")
    add(live, "a", "a")
    gone = add(live, "b", "b")
    sync_now(repositories, live)
    assert principals(ecr) == {arn("a"), arn("b")}

    sync_now(repositories, live, changes=grants.changes(exclude=gone.key))  # a stale index: b is being released

    assert principals(ecr) == {arn("a")}
