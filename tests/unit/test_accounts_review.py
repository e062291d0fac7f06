"""Review of accounts (issue 14): which EcrAccessAccount configures an account."""

from __future__ import annotations

from ecr_access import accounts, watches
from tests.unit.test_accounts import CENTRAL, OWN, body


def test_an_object_in_another_partition_neither_configures_the_account_nor_keeps_a_valid_one_out() -> None:
    """The operator refuses an EcrAccessAccount whose role is in another partition (InvalidSpec):
    it configures nothing. It must not be the one the grants use, nor make the valid, newer object
    for the same account DuplicateAccount ("china already configures account ...")."""
    china = accounts.entry(body("china", role=f"arn:aws-cn:iam::{CENTRAL}:role/x", created="2026-01-01T00:00:00Z"))
    good = accounts.entry(body("good", created="2026-02-01T00:00:00Z"))
    rivals = [china, good]

    refused = accounts.refusal(china, rivals, OWN, "aws")
    assert refused is not None and refused.reason == "InvalidSpec"
    assert accounts.refusal(good, rivals, OWN, "aws") is None
    lookup = watches.account_lookup({watches.ACCOUNTS: {CENTRAL: rivals}}, "aws")
    assert lookup(CENTRAL) == good
    assert watches.account_lookup({watches.ACCOUNTS: {CENTRAL: [china]}}, "aws")(CENTRAL) is None


def test_an_account_that_hangs_does_not_hold_up_the_drift_check_of_other_accounts_grants() -> None:
    """One grant in B, whose calls hang (B throttled or down: each call may take a minute), and
    40 grants entirely in the operator's own account. A drift pass must keep checking the own
    account's grants while B's grant waits: the per-account gates exist for exactly this."""
    import asyncio  # noqa: PLC0415

    from ecr_access.drift import CONCURRENCY, DriftChecker  # noqa: PLC0415
    from ecr_access.reconcile import Reconciler  # noqa: PLC0415
    from tests.memory import Grants  # noqa: PLC0415
    from tests.unit.fakes import FakeEcr, FakeIam  # noqa: PLC0415
    from tests.unit.test_accounts import DEFAULTS, Hanging, Others  # noqa: PLC0415
    from tests.unit.test_repositories import no_sleep  # noqa: PLC0415

    count = CONCURRENCY + 8
    own_ecr = FakeEcr(*[f"ml/{index}" for index in range(count)])
    central = Hanging("b/0")
    reconciler = Reconciler(FakeIam(OWN, ["node"]), own_ecr, cluster_id="c", account=OWN,  # type: ignore[arg-type]
                            others=Others(FakeIam(CENTRAL, []), central))  # type: ignore[arg-type]
    reconciler.repositories._sleep = no_sleep  # type: ignore[method-assign]
    live = Grants(DEFAULTS)
    live.add("b", {"role": {"name": "node"}, "managedPolicy": "None",
                   "repositories": [{"name": "b/0", "registryId": CENTRAL}]}, generation=1, status={})
    for index in range(count):
        live.add(f"a{index}", {"role": {"name": "node"}, "managedPolicy": "None",
                               "repositories": [{"name": f"ml/{index}"}]}, generation=1, status={})
    drift = DriftChecker(reconciler, interval=300, retry_delay=15, write_status=lambda key, patch: None,
                         warn=lambda *_: None, now=lambda: "T")
    drift.indexes_ready(live)

    async def scenario() -> int:
        task = asyncio.ensure_future(drift.check())
        for _ in range(100):
            await asyncio.sleep(0.02)
            done = sum(1 for text in own_ecr.policies.values() if text)
            if done == count:
                break
        central.release.set()
        await task
        return done

    assert asyncio.run(scenario()) == count, "the own account's grants waited for B's"
