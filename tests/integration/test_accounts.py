"""Accounts (DESIGN §6): grants whose repositories or roles live in other AWS accounts, against moto.

moto routes calls made with assumed-role credentials to the role's account, so account B here is
real moto state reached only through the credentials `AssumedAccounts` assumes, as in AWS. moto
checks no trust policy or external id: those are tested with a stub at the STS port
(`tests/integration/test_assumed_sessions.py`), and here by making AssumeRole fail where it is sent.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from ecr_access import accounts, policy
from ecr_access.account_check import AccountChecker
from ecr_access.accounts import AccountSpec
from ecr_access.aws.accounts import AssumedAccounts
from ecr_access.model import RepositoryRef
from ecr_access.ports import AwsFault, FaultKind
from ecr_access.reconcile import ApplyMode, Reconciler
from ecr_sandbox import seed
from tests.integration.conftest import (
    ACCOUNT,
    CLUSTER_ID,
    DEFAULTS,
    NODE_ROLE,
    READ_ONLY,
    REGION,
    Grants,
    World,
    _Http,
    no_sleep,
    settings,
)

CENTRAL = "210987654321"
OTHER = "333333333333"  # an account no EcrAccessAccount configures
OPERATOR_ROLE = f"arn:aws:iam::{CENTRAL}:role/ecr-access-operator"
SESSION = accounts.session_name(CLUSTER_ID)
CENTRAL_FOREIGN = {"Sid": "CentralCiPush", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{CENTRAL}:root"},
                   "Action": "ecr:PutImage"}


class Central:
    """Account B, seen by an admin there, and the operator's reach into it."""

    def __init__(self, world: World, configured: dict[str, AccountSpec], **assume: Any) -> None:
        self.world = world
        self.configured = configured
        self.admin = world.session.assume(f"arn:aws:iam::{CENTRAL}:role/admin", session_name="admin")
        self.others = AssumedAccounts(world.session, SESSION, configured.get, **assume)
        self.reconciler = Reconciler(world.reconciler.accounts.own_iam, world.reconciler.accounts.own_ecr,
                                     cluster_id=CLUSTER_ID, account=ACCOUNT, config=settings(), sleep=no_sleep,
                                     others=self.others)

    def ecr(self) -> Any:
        return self.admin.ecr(REGION)

    def create_repository(self, name: str, statements: list[dict[str, Any]] | None = None) -> RepositoryRef:
        self.ecr().create_repository(repositoryName=name)
        if statements:
            self.ecr().set_repository_policy(repositoryName=name, policyText=json.dumps(
                {"Version": "2012-10-17", "Statement": statements}))
        return RepositoryRef("aws", REGION, CENTRAL, name)

    def policy(self, name: str) -> dict[str, Any] | None:
        return seed.repository_policy(self.ecr(), name)

    def ours(self, name: str) -> list[dict[str, Any]]:
        document = self.policy(name) or {"Statement": []}
        return [item for item in document["Statement"] if str(item.get("Sid", "")).startswith(self.reconciler.prefix)]


def configured(account: str = CENTRAL, role_arn: str = OPERATOR_ROLE, external_id: str = "") -> dict[str, AccountSpec]:
    return {account: AccountSpec("central", account, role_arn, external_id)}


@pytest.fixture
def central(world: World) -> Central:
    return Central(world, configured())


def ready(outcome: Any) -> bool:
    return all(finding.ok for finding in outcome.findings)


def principals(statement: dict[str, Any]) -> list[str]:
    found = statement["Principal"]["AWS"]
    return [found] if isinstance(found, str) else list(found)


def test_a_role_in_a_and_repositories_in_b_go_ready_and_a_delete_restores_b_exactly(
        world: World, central: Central, grants: Grants) -> None:
    role_arn = world.create_role()
    central.create_repository("central/base", [CENTRAL_FOREIGN])
    before = central.policy("central/base")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "managedPolicy": "None",
                                 "repositories": [{"name": "central/base", "registryId": CENTRAL}]})

    outcome = world.apply(key, spec, None, grants, reconciler=central.reconciler)

    assert ready(outcome), outcome
    [ours] = central.ours("central/base")
    assert principals(ours) == [role_arn]
    assert [item for item in central.policy("central/base")["Statement"] if item != ours] == [CENTRAL_FOREIGN]
    assert world.ecr().describe_repositories()["repositories"] == []  # nothing was created in A

    # Drift in B (someone rewrites the policy without our statement) is repaired by the next pass.
    central.ecr().set_repository_policy(repositoryName="central/base", policyText=json.dumps(before))
    outcome = world.apply(key, spec, spec, grants, ApplyMode.drift(since=central.reconciler.clock()),
                          reconciler=central.reconciler)
    assert ready(outcome) and principals(central.ours("central/base")[0]) == [role_arn]

    grants.remove(key)
    released = world.release(key, spec, spec, grants, reconciler=central.reconciler)
    assert not released.terminal and not released.transient
    assert central.policy("central/base") == before


def test_a_role_in_b_gets_its_managed_policy_in_b_with_the_ledger_in_b_and_loses_it_on_delete(
        world: World, central: Central, grants: Grants) -> None:
    role_arn = central.admin.iam().create_role(RoleName="central-node", AssumeRolePolicyDocument=json.dumps(
        seed.NODE_TRUST_POLICY))["Role"]["Arn"]
    central.create_repository("central/base")
    key, spec = grants.add("g", {"role": {"arn": role_arn}, "managedPolicy": "ReadOnly",
                                 "repositories": [{"name": "central/base", "registryId": CENTRAL}]})

    outcome = world.apply(key, spec, None, grants, reconciler=central.reconciler)

    assert ready(outcome), outcome
    assert outcome.managed_policy_arn == READ_ONLY and outcome.managed_policy_owned
    iam_b = central.admin.iam()
    attached = {item["PolicyArn"] for item in iam_b.list_attached_role_policies(RoleName="central-node")[
        "AttachedPolicies"]}
    assert attached == {READ_ONLY}
    tags = {item["Key"]: item["Value"] for item in iam_b.get_role(RoleName="central-node")["Role"]["Tags"]}
    assert tags["ecraccess.io/attached"] == "ReadOnly"
    assert tags[f"ecraccess.io/{policy.cluster_digest(CLUSTER_ID)}"] == "ReadOnly"

    grants.remove(key)
    world.release(key, spec, spec, grants, reconciler=central.reconciler)
    assert iam_b.list_attached_role_policies(RoleName="central-node")["AttachedPolicies"] == []
    left = {item["Key"] for item in iam_b.get_role(RoleName="central-node")["Role"].get("Tags", [])}
    assert not {tag for tag in left if tag.startswith("ecraccess.io/")}


def test_a_repository_in_an_unconfigured_account_is_account_not_configured_and_the_others_are_applied(
        world: World, central: Central, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a")
    central.create_repository("central/base")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [
        {"name": "ml/a"}, {"name": "central/base", "registryId": CENTRAL}, {"name": "x/y", "registryId": OTHER}]})

    outcome = world.apply(key, spec, None, grants, reconciler=central.reconciler)

    by_arn = {item.arn: item.finding for item in outcome.repositories}
    assert by_arn[f"arn:aws:ecr:{REGION}:{OTHER}:repository/x/y"].reason == "AccountNotConfigured"
    assert OTHER in by_arn[f"arn:aws:ecr:{REGION}:{OTHER}:repository/x/y"].message
    assert by_arn[f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/a"].ok
    assert by_arn[f"arn:aws:ecr:{REGION}:{CENTRAL}:repository/central/base"].ok
    assert principals(world.ours("ml/a")[0]) == [role_arn]
    assert principals(central.ours("central/base")[0]) == [role_arn]
    assert outcome.terminal and not outcome.transient

    # The delete does not wait for an account the operator can never act in (a typo in registryId
    # must stay deletable), and says what it could not check.
    grants.remove(key)
    released = world.release(key, spec, spec, grants, reconciler=central.reconciler)
    assert not released.terminal and not released.transient, released
    [left] = released.unsettled
    assert left.reason == "AccountNotConfigured" and "x/y" in left.message
    assert world.policy("ml/a") is None and central.policy("central/base") is None


def test_a_role_in_an_unconfigured_account_is_account_not_configured_only_for_a_managed_policy(
        world: World, central: Central, grants: Grants) -> None:
    world.create_repository("ml/a")
    foreign_role = f"arn:aws:iam::{OTHER}:role/node"
    key, spec = grants.add("g", {"role": {"arn": foreign_role}, "repositories": [{"name": "ml/a"}]})

    outcome = world.apply(key, spec, None, grants, reconciler=central.reconciler)
    assert outcome.role.reason == "AccountNotConfigured", outcome
    assert "EcrAccessAccount" in outcome.role.message

    key, spec = grants.add("g", {"role": {"arn": foreign_role}, "managedPolicy": "None",
                                 "repositories": [{"name": "ml/a"}]})
    world.calls.clear()
    outcome = world.apply(key, spec, spec, grants, reconciler=central.reconciler)
    assert ready(outcome), outcome
    assert principals(world.ours("ml/a")[0]) == [foreign_role]
    assert "GetRole" not in world.calls.made  # written as the spec gives it, without a lookup


def test_an_account_whose_role_cannot_be_assumed_is_not_ready_and_its_grants_are_account_unavailable(
        world: World, grants: Grants) -> None:
    refused = threading.Event()
    refused.set()

    def access_denied(model: Any, **_: Any) -> Any:
        if model.name == "AssumeRole" and refused.is_set():
            error = {"Code": "AccessDenied", "Message": "not authorized to perform sts:AssumeRole"}
            return _Http(403), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return None

    world.session.core.register("before-call.sts.AssumeRole", access_denied)
    central = Central.__new__(Central)
    central.world, central.configured = world, configured()
    central.others = AssumedAccounts(world.session, SESSION, central.configured.get)
    central.reconciler = Reconciler(world.reconciler.accounts.own_iam, world.reconciler.accounts.own_ecr,
                                    cluster_id=CLUSTER_ID, account=ACCOUNT, config=settings(), sleep=no_sleep,
                                    others=central.others)
    world.create_role()
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [
        {"name": "central/base", "registryId": CENTRAL}]})

    outcome = world.apply(key, spec, None, grants, reconciler=central.reconciler)

    [repo] = outcome.repositories
    assert repo.finding.reason == "AccountUnavailable", repo.finding
    assert "AccessDenied" in repo.finding.message
    assert outcome.transient  # Reconciling and retried, not AccessDenied and Stalled

    written: list[tuple[str, Any]] = []
    checker = AccountChecker(central.others, DEFAULTS, retry_delay=15, stalled_retry_delay=300, now=lambda: "T",
                             patch_status=lambda name, changes: written.append((name, changes)),
                             recheck=lambda account: written.append(("recheck", account)))
    check = world.run(checker.check(central.configured[CENTRAL], 1, None, [central.configured[CENTRAL]]))
    ready = check.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "AssumeRoleFailed")
    assert "AccessDenied" in ready["message"] and OPERATOR_ROLE in ready["message"]
    assert check.retry == 300  # a trust policy to fix: checked again after the stalled delay
    assert "identityArn" not in check.changes

    refused.clear()  # someone fixes the trust policy
    check = world.run(checker.check(central.configured[CENTRAL], 1, check.status, [central.configured[CENTRAL]]))
    assert check.status["conditions"][0]["status"] == "True"
    assert check.status["identityArn"] == f"arn:aws:sts::{CENTRAL}:assumed-role/ecr-access-operator/{SESSION}"
    assert ("recheck", CENTRAL) in written  # its grants are checked again at once


def test_the_sweep_cleans_orphans_in_the_central_account(world: World, central: Central, grants: Grants) -> None:
    world.create_role()
    central.create_repository("central/base", [CENTRAL_FOREIGN])
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "managedPolicy": "None",
                                 "repositories": [{"name": "central/base", "registryId": CENTRAL}]})
    world.apply(key, spec, None, grants, reconciler=central.reconciler)
    other = grants.add("h", {"role": {"name": NODE_ROLE}, "managedPolicy": "None",
                             "repositories": [{"name": "central/other", "registryId": CENTRAL}]})
    central.create_repository("central/other")
    grants.remove(key)  # deleted while the operator was down: its statement is an orphan

    cleaned = world.sweep(grants, reconciler=central.reconciler)

    assert [repo.name for repo in cleaned] == ["central/base"]
    assert central.policy("central/base")["Statement"] == [CENTRAL_FOREIGN]
    assert other[0] in grants.live


def test_each_account_has_its_own_threads_and_rate_limit_buckets(world: World, central: Central) -> None:
    """An account whose calls hang holds only its own threads: the operator's own account still answers."""
    central.create_repository("central/base")
    world.create_repository("ml/a")
    b = central.others.session(CENTRAL)
    assert b is not world.session and b.iam() is not world.session.iam()
    hang = threading.Event()

    def slow(**_: Any) -> None:  # a before-send hook that returns None lets the request go
        hang.wait(10)

    b.session.events.register("before-send.ecr.*", slow)

    async def scenario() -> tuple[bool, list[str]]:
        import asyncio  # noqa: PLC0415

        stuck = [asyncio.ensure_future(central.others.ecr(CENTRAL).get_repository_policy(
            RepositoryRef("aws", REGION, CENTRAL, "central/base"))) for _ in range(40)]
        await asyncio.sleep(0.2)
        own = await asyncio.wait_for(world.reconciler.accounts.own_ecr.describe_repositories(REGION, ACCOUNT), 5)
        waiting = not any(task.done() for task in stuck)
        hang.set()
        await asyncio.gather(*stuck)
        return waiting, own

    waiting, own = world.run(scenario())
    assert waiting and own == ["ml/a"]



def test_a_refresh_that_starts_failing_or_works_again_is_written_to_the_accounts_status(world: World) -> None:
    """`AccountChecker.observed` is called from the thread whose call needed fresh credentials; the
    report runs on the operator's loop and writes the account's status (no observedGeneration: a
    refresh does not change the object)."""
    spec = configured()[CENTRAL]
    central = Central(world, configured())
    written: list[tuple[str, Any]] = []
    rechecked: list[str] = []
    checker = AccountChecker(central.others, DEFAULTS, retry_delay=15, stalled_retry_delay=300, now=lambda: "T",
                             patch_status=lambda name, changes: written.append((name, changes)),
                             recheck=rechecked.append)

    async def scenario() -> None:
        import asyncio  # noqa: PLC0415

        checker.attach(asyncio.get_running_loop())
        assert central.others.observe == checker.observed
        fault = AwsFault(FaultKind.ACCOUNT_UNAVAILABLE, "AssumeRole", OPERATOR_ROLE, "AccessDenied: denied",
                         FaultKind.ACCESS_DENIED)
        await asyncio.to_thread(checker.observed, spec, fault)  # from another thread, as botocore calls it
        while not written:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(checker.observed, spec, None)
        while len(written) < 2:
            await asyncio.sleep(0.01)

    world.run(scenario())
    (name, failed), (_, works) = written
    assert name == "central" and "observedGeneration" not in failed
    assert (failed["conditions"][0]["status"], failed["conditions"][0]["reason"]) == ("False", "AssumeRoleFailed")
    assert failed["identityArn"] is None  # removed by the merge patch
    assert works["conditions"][0]["status"] == "True" and works["identityArn"].endswith(f"/{SESSION}")
    assert rechecked == [CENTRAL]  # its grants are checked again once it works
