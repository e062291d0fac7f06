"""EcrAccessAccount judged (pure `accounts`), and the reconciler's reach into other accounts at the
ports: per-account bounds on work, and what a grant says about an account it cannot use."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ecr_access import accounts, tenancy
from ecr_access.accounts import AccountError, AccountSpec, Invalid
from ecr_access.model import Defaults, RepositoryRef
from ecr_access.ports import EcrPort, IamPort
from ecr_access.reconcile import AWS_CONCURRENCY, Reconciler
from tests.memory import Grants
from tests.unit.fakes import FakeEcr, FakeIam

OWN, CENTRAL = "123456789012", "210987654321"
ROLE = f"arn:aws:iam::{CENTRAL}:role/ecr-access-operator"
DEFAULTS = Defaults(partition="aws", region="us-west-2", account=OWN)


def body(name: str = "central", account: str = CENTRAL, role: str = ROLE, created: str = "2026-01-01T00:00:00Z",
         **assume: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"accountId": account, "assumeRole": {"roleArn": role, **assume}}}


def test_a_valid_spec_is_parsed() -> None:
    item = accounts.entry(body(externalId="abc-123"))
    assert item == AccountSpec("central", CENTRAL, ROLE, "abc-123", "2026-01-01T00:00:00Z")


@pytest.mark.parametrize(("spec", "field"), [
    (None, "spec"),
    ({"accountId": "2109876543", "assumeRole": {"roleArn": ROLE}}, "spec.accountId"),
    ({"accountId": 210987654321, "assumeRole": {"roleArn": ROLE}}, "spec.accountId"),
    ({"accountId": CENTRAL}, "spec.assumeRole"),
    ({"accountId": CENTRAL, "assumeRole": {"roleArn": "arn:aws:iam::210987654321:user/x"}}, "spec.assumeRole.roleArn"),
    # The role to assume must be in the account it acts in: one in A would act in A, not in B.
    ({"accountId": CENTRAL, "assumeRole": {"roleArn": f"arn:aws:iam::{OWN}:role/x"}}, "spec.assumeRole.roleArn"),
    ({"accountId": CENTRAL, "assumeRole": {"roleArn": ROLE, "externalId": "x"}}, "spec.assumeRole.externalId"),
    ({"accountId": CENTRAL, "assumeRole": {"roleArn": ROLE, "externalId": "a b"}}, "spec.assumeRole.externalId"),
    ({"accountId": CENTRAL, "assumeRole": {"roleArn": ROLE, "externalId": 12}}, "spec.assumeRole.externalId"),
])
def test_a_malformed_spec_names_its_field(spec: Any, field: str) -> None:
    with pytest.raises(AccountError) as raised:
        accounts.parse("x", spec)
    assert raised.value.field == field
    item = accounts.entry({"metadata": {"name": "x"}, "spec": spec})
    assert isinstance(item, Invalid)
    assert accounts.refusal(item, [], OWN, "aws").reason == "InvalidSpec"  # type: ignore[union-attr]


def test_the_older_of_two_objects_for_one_account_configures_it() -> None:
    old = accounts.entry(body("old", created="2026-01-01T00:00:00Z"))
    new = accounts.entry(body("new", created="2026-02-01T00:00:00Z"))
    assert accounts.chosen([new, old], "aws") == old
    assert accounts.refusal(old, [new, old], OWN, "aws") is None
    refused = accounts.refusal(new, [new, old], OWN, "aws")
    assert refused is not None and refused.reason == "DuplicateAccount" and "old" in refused.message
    broken = accounts.entry({"metadata": {"name": "broken", "creationTimestamp": "2025-01-01T00:00:00Z"}, "spec": {}})
    assert accounts.chosen([broken, new], "aws") == new  # a malformed object never wins


def test_the_operators_own_account_and_another_partition_are_refused() -> None:
    own = accounts.entry(body(account=OWN, role=f"arn:aws:iam::{OWN}:role/x"))
    assert accounts.refusal(own, [own], OWN, "aws").reason == "OwnAccount"  # type: ignore[union-attr]
    china = accounts.entry(body(role=f"arn:aws-cn:iam::{CENTRAL}:role/x"))
    assert accounts.refusal(china, [china], OWN, "aws").reason == "InvalidSpec"  # type: ignore[union-attr]


def test_status_is_ready_only_with_an_identity_and_carries_no_changing_timestamp() -> None:
    item = accounts.entry(body())
    ready = accounts.status(item, 2, None, "arn:aws:sts::210987654321:assumed-role/r/s", None, "T1")
    assert ready["observedGeneration"] == 2 and ready["identityArn"].endswith("/r/s")
    assert [(c["type"], c["status"], c["reason"]) for c in ready["conditions"]] == [("Ready", "True", "Assumed")]
    again = accounts.status(item, 2, None, "arn:aws:sts::210987654321:assumed-role/r/s", ready, "T2")
    assert again == ready  # the same answer later writes nothing
    unknown = accounts.status(item, 2, None, None, None, "T1")
    assert unknown["conditions"][0]["status"] == "False" and unknown["identityArn"] is None


def test_the_session_name_names_the_cluster_as_sids_and_tags_do() -> None:
    from ecr_access import policy  # noqa: PLC0415

    assert accounts.session_name("uid") == f"ecr-access-{policy.cluster_digest('uid')}"
    assert len(accounts.session_name("uid")) == len("ecr-access-") + 8


def test_a_policy_limited_to_account_a_refuses_a_repository_in_b() -> None:
    policy = tenancy.parse_policy("team", {"namespaceSelector": {}, "roles": [f"arn:aws:iam::{OWN}:role/*"],
                                           "repositories": [f"arn:aws:ecr:*:{OWN}:repository/*"]})
    live = Grants(DEFAULTS, policies=[policy])
    key, spec = live.add("g", {"role": {"name": "node"}, "repositories": [
        {"name": "ml/a"}, {"name": "ml/a", "registryId": CENTRAL}]})
    verdict = tenancy.judge([policy], "default", {}, f"arn:aws:iam::{OWN}:role/node", spec)
    assert verdict.permitted
    assert verdict.allows(RepositoryRef("aws", "us-west-2", OWN, "ml/a"))
    assert not verdict.allows(RepositoryRef("aws", "us-west-2", CENTRAL, "ml/a"))
    # and a role in B is not a role the policy allows
    _, in_b = live.add("h", {"role": {"arn": f"arn:aws:iam::{CENTRAL}:role/node"}, "managedPolicy": "None",
                             "repositories": [{"name": "ml/a"}]})
    assert not tenancy.judge([policy], "default", {}, f"arn:aws:iam::{CENTRAL}:role/node", in_b).permitted
    assert key in live.live


class Hanging(FakeEcr):
    """A registry whose every read waits until `release` is set: an account that is throttled or down."""

    def __init__(self, *names: str) -> None:
        super().__init__(*names)
        self.release = asyncio.Event()
        self.waiting = 0

    async def get_repository_policy(self, repo: Any) -> str | None:
        self.waiting += 1
        await self.release.wait()
        return await super().get_repository_policy(repo)


class Others:
    """OtherAccounts in memory: one account, CENTRAL, with its own fakes."""

    def __init__(self, iam: IamPort, ecr: EcrPort) -> None:
        self._iam, self._ecr = iam, ecr

    def reaches(self, account: str) -> bool:
        return account == CENTRAL

    def configured(self) -> list[str]:
        return [CENTRAL]

    def iam(self, account: str) -> IamPort:
        assert account == CENTRAL
        return self._iam

    def ecr(self, account: str) -> EcrPort:
        assert account == CENTRAL
        return self._ecr


def test_work_held_up_in_one_account_does_not_hold_up_another() -> None:
    """More syncs waiting in B than the bound on work at once must not keep A's grant waiting."""
    own_iam, own_ecr = FakeIam(OWN, ["node"]), FakeEcr("ml/a")
    names = [f"b/{index}" for index in range(AWS_CONCURRENCY * 2)]
    central = Hanging(*names)
    reconciler = Reconciler(own_iam, own_ecr, cluster_id="c", account=OWN,  # type: ignore[arg-type]
                            others=Others(FakeIam(CENTRAL, []), central))  # type: ignore[arg-type]
    from tests.unit.test_repositories import no_sleep  # noqa: PLC0415

    reconciler.repositories._sleep = no_sleep  # type: ignore[method-assign]
    live = Grants(DEFAULTS)
    stuck = [live.add(f"b{index}", {"role": {"name": "node"}, "managedPolicy": "None",
                                    "repositories": [{"name": name, "registryId": CENTRAL}]})
             for index, name in enumerate(names)]
    key, spec = live.add("a", {"role": {"name": "node"}, "managedPolicy": "None", "repositories": [{"name": "ml/a"}]})

    async def scenario() -> Any:
        waiting = [asyncio.ensure_future(reconciler.apply(k, s, None, live)) for k, s in stuck]
        while central.waiting < AWS_CONCURRENCY:
            await asyncio.sleep(0.01)
        outcome = await asyncio.wait_for(reconciler.apply(key, spec, None, live), 5)
        held = not any(task.done() for task in waiting)
        central.release.set()
        await asyncio.gather(*waiting)
        return outcome, held

    outcome, held = asyncio.run(scenario())
    assert held and all(finding.ok for finding in outcome.findings), outcome
    assert "GetRepositoryPolicy" in own_ecr.calls

