"""The managed-policy ledger at the ports: IAM in memory, a clock the test moves, no sleeps.

What it must show: the first attach costs one TagRole and one AttachRolePolicy and the steady state
nothing; a detach is decided on tags read just now; a grant that left the index is not acted for;
and a failed write makes the next sync read the role afresh."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ecr_access import attachments
from ecr_access.grants import LiveGrant
from ecr_access.model import Defaults, GrantKey
from ecr_access.ownership import GrantGone, ManagedPolicyLedger
from ecr_access.ports import Accounts, AwsFault, FaultKind
from ecr_access.roles import RoleDirectory
from tests.memory import Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
MINE = attachments.cluster_tag("c")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup() -> tuple[ManagedPolicyLedger, FakeIam, Grants, Clock]:
    clock = Clock()
    iam = FakeIam(ACCOUNT, ["node"])
    directory = RoleDirectory(Accounts(ACCOUNT, iam, FakeEcr()), cache_ttl=60.0, clock=clock)
    return ManagedPolicyLedger(directory, MINE), iam, Grants(DEFAULTS), clock


def grant(live: Grants, name: str = "g", managed: str = "ReadOnly") -> LiveGrant:
    key, _ = live.add(name, {"role": {"name": "node"}, "repositories": [{"name": "ml/a"}], "managedPolicy": managed})
    return live.live[key]


ROLE = grant(Grants(DEFAULTS)).spec.role


def sync(ledger: ManagedPolicyLedger, live: Grants, max_age: float = 60.0, **kwargs: Any) -> Any:
    return asyncio.run(ledger.sync(ROLE, live.everything, lambda grant, arn: True, max_age=max_age, **kwargs))


def test_the_first_attach_is_recorded_first_in_one_tag_call_and_the_steady_state_costs_nothing() -> None:
    ledger, iam, live, _ = setup()
    grant(live)

    state = sync(ledger, live)

    assert iam.calls == ["GetRole", "ListAttachedRolePolicies", "TagRole", "AttachRolePolicy"]
    assert state.attached == {"ReadOnly"} and state.ledger.attached == {"ReadOnly"}
    assert iam.roles["node"].tags == {MINE: "ReadOnly", attachments.ATTACHED_TAG: "ReadOnly"}
    iam.calls.clear()
    sync(ledger, live)
    assert iam.calls == [], "what the writes left is cached: nothing to read, nothing to write"


def test_a_detach_is_decided_on_tags_read_just_now_and_spares_another_clusters_want() -> None:
    ledger, iam, live, clock = setup()
    mine = grant(live)
    sync(ledger, live)
    iam.roles["node"].tags["ecraccess.io/ffff0000"] = "ReadOnly"  # another cluster now wants it too
    clock.now += 30  # the cached role is within its age, but not "just now"
    del live.live[mine.key]
    iam.calls.clear()

    sync(ledger, live)

    assert iam.calls[:1] == ["GetRole"], "the cached tags were not trusted for a detach"
    assert "DetachRolePolicy" not in iam.calls
    assert READ_ONLY in iam.roles["node"].attached
    assert MINE not in iam.roles["node"].tags, "this cluster no longer wants it"


def test_the_last_want_gone_detaches_and_clears_the_record_after_the_detach() -> None:
    ledger, iam, live, clock = setup()
    mine = grant(live)
    sync(ledger, live)
    del live.live[mine.key]
    clock.now += 30
    iam.calls.clear()

    sync(ledger, live)

    assert iam.calls == ["GetRole", "ListAttachedRolePolicies", "UntagRole", "DetachRolePolicy", "UntagRole"]
    assert iam.roles["node"].attached == set() and iam.roles["node"].tags == {}


def test_a_grant_that_left_the_index_is_not_acted_for() -> None:
    ledger, iam, live, _ = setup()
    grant(live)

    with pytest.raises(GrantGone):
        sync(ledger, live, require=GrantKey("default", "deleting"))
    assert iam.calls == [], "checked under the role's lock, before any read or write"


def test_a_failed_write_makes_the_next_sync_read_the_role_afresh() -> None:
    ledger, iam, live, _ = setup()
    grant(live)

    async def refuse(role_name: str, policy_arn: str) -> None:
        iam.calls.append("AttachRolePolicy")
        raise AwsFault(FaultKind.UNAVAILABLE, "AttachRolePolicy", role_name, "timeout")

    iam.attach_role_policy = refuse  # type: ignore[method-assign]
    with pytest.raises(AwsFault):
        sync(ledger, live)
    iam.calls.clear()
    del iam.attach_role_policy  # the real one again

    sync(ledger, live)

    assert iam.calls[:2] == ["GetRole", "ListAttachedRolePolicies"], "read afresh: some steps may have landed"
    assert READ_ONLY in iam.roles["node"].attached
    assert iam.roles["node"].tags[attachments.ATTACHED_TAG] == "ReadOnly", "the lost answer kept its record"


def test_a_grant_that_arrives_while_the_role_is_read_again_counts_before_any_detach() -> None:
    """The last want seems gone, so the detach is decided on the role read just now; a grant that
    entered the index during that read wants the policy too: nothing may be detached."""
    ledger, iam, live, clock = setup()
    first = grant(live, "a")
    sync(ledger, live)
    del live.live[first.key]  # a is released...
    clock.now += 30
    read = iam.get_role

    async def get_role_while_c_arrives(name: str) -> Any:
        grant(live, "c")  # ...and c, ReadOnly on the same role, is created meanwhile
        return await read(name)

    iam.get_role = get_role_while_c_arrives  # type: ignore[method-assign]
    iam.calls.clear()

    sync(ledger, live)

    assert "DetachRolePolicy" not in iam.calls
    assert READ_ONLY in iam.roles["node"].attached
    assert iam.roles["node"].tags[MINE] == "ReadOnly"
