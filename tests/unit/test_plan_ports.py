"""`planning`: reads reach the real port, writes land in an overlay that later reads see, and no
write ever reaches the real port, whatever method a port grows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ecr_access.model import RepositoryRef
from ecr_access.planning import Journal, PlanningAccounts, PlanningEcr, PlanningIam
from ecr_access.ports import AwsFault, FaultKind, NoOtherAccounts
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
REPO = RepositoryRef("aws", "us-west-2", ACCOUNT, "ml/a")
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"


def run(work: Any) -> Any:
    return asyncio.run(work)


def test_a_written_policy_is_what_later_reads_see_and_aws_keeps_its_own() -> None:
    real = FakeEcr("ml/a")
    real.policies["ml/a"] = '{"Statement": []}'
    journal = Journal()
    port = PlanningEcr(real, ACCOUNT, journal)

    async def scenario() -> list[str | None]:
        first = await port.get_repository_policy(REPO)
        await port.set_repository_policy(REPO, '{"Statement": [1]}')
        second = await port.get_repository_policy(REPO)
        await port.delete_repository_policy(REPO)
        return [first, second, await port.get_repository_policy(REPO)]

    assert run(scenario()) == ['{"Statement": []}', '{"Statement": [1]}', None]
    assert real.policies["ml/a"] == '{"Statement": []}'
    assert real.calls == ["GetRepositoryPolicy"]  # one read, no write, and reads of the overlay are free
    assert port.baseline == {REPO: '{"Statement": []}'}
    assert [(item.operation, item.resource) for item in journal.writes] == [
        ("SetRepositoryPolicy", REPO.arn), ("DeleteRepositoryPolicy", REPO.arn)]


def test_a_write_before_any_read_reads_first_so_the_diff_has_a_baseline() -> None:
    real = FakeEcr("ml/a")
    port = PlanningEcr(real, ACCOUNT, Journal())
    run(port.set_repository_policy(REPO, "{}"))
    assert port.baseline == {REPO: None} and real.calls == ["GetRepositoryPolicy"]


def test_role_writes_land_in_the_overlay_and_reads_see_them() -> None:
    real = FakeIam(ACCOUNT, ["node"])
    real.roles["node"].tags["team"] = "ml"
    real.roles["node"].attached.add("arn:other")
    journal = Journal()
    port = PlanningIam(real, ACCOUNT, journal)

    async def scenario() -> tuple[Any, frozenset[str]]:
        await port.get_role("Node")
        await port.tag_role("node", {"ecraccess.io/attached": "ReadOnly"})
        await port.attach_role_policy("node", READ_ONLY)
        await port.detach_role_policy("node", "arn:other")
        await port.untag_role("node", ["team"])
        return await port.get_role("node"), await port.list_attached_role_policies("node")

    info, attached = run(scenario())
    assert info.tags == {"ecraccess.io/attached": "ReadOnly"} and attached == {READ_ONLY}
    assert real.roles["node"].tags == {"team": "ml"} and real.roles["node"].attached == {"arn:other"}
    assert not {"TagRole", "UntagRole", "AttachRolePolicy", "DetachRolePolicy"} & set(real.calls)
    entry = port.roles["node"]
    assert entry.info is not None and entry.info.tags == {"team": "ml"}  # the baseline, as AWS had it
    assert entry.attached == {"arn:other"}
    assert [item.operation for item in journal.writes] == ["TagRole", "AttachRolePolicy", "DetachRolePolicy",
                                                           "UntagRole"]


class _Grown(FakeIam):
    """A port that grew methods since the planning port was written."""

    async def simulate_principal_policy(self, role_arn: str, actions: list[str]) -> str:
        return f"allowed {role_arn}"

    async def put_role_policy(self, role_name: str, document: str) -> None:
        raise AssertionError("a plan must never write")


def test_new_read_methods_pass_through_and_new_write_methods_are_refused() -> None:
    port = PlanningIam(_Grown(ACCOUNT, ["node"]), ACCOUNT, Journal())
    assert run(port.simulate_principal_policy("arn:r", ["ecr:BatchGetImage"])) == "allowed arn:r"
    with pytest.raises(AttributeError, match="passes only reads"):
        port.put_role_policy  # noqa: B018 - the attribute lookup is what is refused


def test_failed_reads_are_journaled_and_not_found_is_data() -> None:
    real = FakeEcr("ml/a")
    journal = Journal()
    port = PlanningEcr(real, ACCOUNT, journal)
    with pytest.raises(AwsFault):
        run(port.get_repository_policy(RepositoryRef("aws", "us-west-2", ACCOUNT, "missing")))
    real.down = True
    with pytest.raises(AwsFault):
        run(port.get_repository_policy(REPO))
    assert [fault.kind for fault in journal.failed_reads] == [FaultKind.UNAVAILABLE]


def test_other_accounts_get_planning_ports_and_an_unconfigured_one_fails_as_before() -> None:
    class One(NoOtherAccounts):
        def reaches(self, account: str) -> bool:
            return account == "210987654321"

        def iam(self, account: str) -> Any:
            return FakeIam(account, []) if self.reaches(account) else super().iam(account)

        def ecr(self, account: str) -> Any:
            return FakeEcr() if self.reaches(account) else super().ecr(account)

    reach = PlanningAccounts(One(), Journal())
    other = "210987654321"
    assert isinstance(reach.ecr(other), PlanningEcr) and reach.ecr(other) is reach.ecrs[other]
    assert isinstance(reach.iam(other), PlanningIam)
    with pytest.raises(AwsFault) as raised:
        reach.ecr("333333333333")
    assert raised.value.kind is FaultKind.ACCOUNT_NOT_CONFIGURED
