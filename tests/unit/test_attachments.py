"""The managed-policy ledger on the role's tags: which writes, in which order (table-driven)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import pytest

from ecr_access import attachments
from ecr_access.attachments import ATTACHED_TAG, Ledger, Step
from ecr_access.ports import AwsFault, FaultKind

MINE = "ecraccess.io/0a1b2c3d"
OTHER = "ecraccess.io/ffff0000"
RO = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
PO = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly"


def ledger(tags: Mapping[str, str]) -> Ledger:
    return Ledger.from_tags(tags, MINE)


def test_ledger_reads_this_cluster_other_clusters_and_the_record_apart() -> None:
    found = ledger({MINE: "ReadOnly", OTHER: "PullOnly ReadOnly", ATTACHED_TAG: "ReadOnly",
                    "ecraccess.io/cafe0001": "PullOnly", "team": "ml"})
    assert found == Ledger(frozenset({"ReadOnly"}), frozenset({"PullOnly", "ReadOnly"}), frozenset({"ReadOnly"}))


def test_cluster_tag_is_the_prefix_and_eight_hex_digits_of_the_cluster_id() -> None:
    tag = attachments.cluster_tag("some-cluster-uid")
    assert tag.startswith("ecraccess.io/") and len(tag) == len("ecraccess.io/") + 8
    assert tag != attachments.cluster_tag("another-cluster-uid")


@pytest.mark.parametrize(("tags", "attached", "wanted", "hand_over", "expected"), [
    pytest.param({}, set(), {"ReadOnly"}, set(),
                 [Step("tag", MINE, "ReadOnly"), Step("tag", ATTACHED_TAG, "ReadOnly"),
                  Step("attach", "ReadOnly", recorded=True)],
                 id="first-attach-records-before-attaching"),
    pytest.param({}, {"ReadOnly"}, {"ReadOnly"}, set(), [Step("tag", MINE, "ReadOnly")],
                 id="someone-else-attached-it-so-no-record"),
    pytest.param({MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}, {"ReadOnly"}, {"ReadOnly"}, set(), [],
                 id="steady-state-writes-nothing"),
    pytest.param({MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}, set(), {"ReadOnly"}, set(),
                 [Step("attach", "ReadOnly")], id="detached-by-hand-is-reattached-and-stays-recorded"),
    pytest.param({MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}, {"ReadOnly"}, set(), set(),
                 [Step("tag", MINE, None), Step("detach", "ReadOnly"), Step("tag", ATTACHED_TAG, None)],
                 id="last-want-gone-detaches-what-an-operator-attached-then-clears-the-record"),
    pytest.param({MINE: "ReadOnly"}, {"ReadOnly"}, set(), set(), [Step("tag", MINE, None)],
                 id="never-detaches-what-no-operator-attached"),
    pytest.param({MINE: "ReadOnly", OTHER: "ReadOnly", ATTACHED_TAG: "ReadOnly"}, {"ReadOnly"}, set(), set(),
                 [Step("tag", MINE, None)], id="another-cluster-still-wants-it"),
    pytest.param({MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}, set(), set(), set(),
                 [Step("tag", MINE, None), Step("tag", ATTACHED_TAG, None)],
                 id="a-record-of-a-policy-already-gone-is-cleared"),
    pytest.param({MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}, {"ReadOnly"}, set(), {"ReadOnly"},
                 [Step("tag", MINE, None), Step("tag", ATTACHED_TAG, None)],
                 id="retain-hands-it-over-attached-and-unrecorded"),
    pytest.param({MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly PullOnly"}, {"ReadOnly", "PullOnly"}, {"PullOnly"},
                 set(),
                 [Step("tag", MINE, "PullOnly"), Step("detach", "ReadOnly"), Step("tag", ATTACHED_TAG, "PullOnly")],
                 id="switching-policies-detaches-only-the-one-no-longer-wanted"),
    pytest.param({ATTACHED_TAG: "ReadOnly FutureOnly"}, set(), set(), set(), [Step("tag", ATTACHED_TAG, "FutureOnly")],
                 id="an-unknown-name-in-the-record-is-kept"),
])
def test_plan(tags: Mapping[str, str], attached: Iterable[str], wanted: Iterable[str], hand_over: Iterable[str],
              expected: list[Step]) -> None:
    steps = attachments.plan(ledger(tags), MINE, frozenset(attached), frozenset(wanted), frozenset(hand_over))
    assert steps == expected


class FakeIam:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    async def tag_role(self, role_name: str, tags: Mapping[str, str]) -> None:
        self.calls.append(("TagRole", dict(tags)))

    async def untag_role(self, role_name: str, keys: Iterable[str]) -> None:
        self.calls.append(("UntagRole", sorted(keys)))

    async def attach_role_policy(self, role_name: str, policy_arn: str) -> None:
        self.calls.append(("AttachRolePolicy", policy_arn))

    async def detach_role_policy(self, role_name: str, policy_arn: str) -> None:
        self.calls.append(("DetachRolePolicy", policy_arn))


def test_execute_sends_consecutive_tags_as_one_call_before_the_attach() -> None:
    iam = FakeIam()
    steps = attachments.plan(ledger({}), MINE, frozenset(), frozenset({"ReadOnly"}))

    tags = asyncio.run(attachments.execute(iam, "node", "aws", {"team": "ml"}, steps))  # type: ignore[arg-type]

    assert iam.calls == [("TagRole", {MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}), ("AttachRolePolicy", RO)]
    assert tags == {"team": "ml", MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}


def test_execute_clears_the_record_only_after_the_detach() -> None:
    iam = FakeIam()
    steps = attachments.plan(ledger({MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}), MINE, frozenset({"ReadOnly"}),
                             frozenset())

    tags = asyncio.run(attachments.execute(iam, "node", "aws", {MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}, steps))  # type: ignore[arg-type]

    assert iam.calls == [("UntagRole", [MINE]), ("DetachRolePolicy", RO), ("UntagRole", [ATTACHED_TAG])]
    assert tags == {}


def test_a_failed_attach_leaves_the_record_written() -> None:
    class Failing(FakeIam):
        async def attach_role_policy(self, role_name: str, policy_arn: str) -> None:
            raise TimeoutError("the answer was lost")

    iam = Failing()
    with pytest.raises(TimeoutError):
        asyncio.run(attachments.execute(iam, "node", "aws", {}, attachments.plan(ledger({}), MINE, frozenset(),  # type: ignore[arg-type]
                                                                      frozenset({"PullOnly"}))))
    assert iam.calls == [("TagRole", {MINE: "PullOnly", ATTACHED_TAG: "PullOnly"})]


def test_short_names_know_only_the_ecr_managed_policies_of_the_partition() -> None:
    assert attachments.short_names({RO, PO, "arn:aws:iam::aws:policy/AdministratorAccess"}, "aws") == {
        "ReadOnly", "PullOnly"}
    assert attachments.short_names({RO}, "aws-cn") == frozenset()


@pytest.mark.parametrize(("kind", "kept"), [
    pytest.param(FaultKind.ACCESS_DENIED, False, id="refused-for-good-the-record-is-taken-back"),
    pytest.param(FaultKind.LIMIT_EXCEEDED, False, id="a-quota-too"),
    pytest.param(FaultKind.UNAVAILABLE, True, id="a-lost-answer-keeps-the-record"),
])
def test_a_refused_attach_takes_its_record_back(kind: FaultKind, kept: bool) -> None:
    class Refusing(FakeIam):
        async def attach_role_policy(self, role_name: str, policy_arn: str) -> None:
            self.calls.append(("AttachRolePolicy", policy_arn))
            raise AwsFault(kind, "AttachRolePolicy", role_name, "no")

    iam = Refusing()
    with pytest.raises(AwsFault):
        asyncio.run(attachments.execute(iam, "node", "aws", {}, attachments.plan(ledger({}), MINE, frozenset(),  # type: ignore[arg-type]
                                                                      frozenset({"ReadOnly"}))))
    undo = [] if kept else [("UntagRole", [ATTACHED_TAG])]
    assert iam.calls == [("TagRole", {MINE: "ReadOnly", ATTACHED_TAG: "ReadOnly"}), ("AttachRolePolicy", RO), *undo]
