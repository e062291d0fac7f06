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
                   "repositories": [{"name": "b/0", "registryId": CENTRAL}]}, generation=1)
    for index in range(count):
        live.add(f"a{index}", {"role": {"name": "node"}, "managedPolicy": "None",
                               "repositories": [{"name": f"ml/{index}"}]}, generation=1)
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


def test_a_policy_naming_account_a_in_every_partition_refuses_a_role_in_another_account_whose_path_spells_a() -> None:
    """IAM role paths may hold ':' (any of \\x21-\\x7e). A policy for account A in every partition,
    `arn:*:iam::A:role/cld_*-cluster_node_role`, must not allow a role that a tenant creates in an
    account of their own, B, with the path `/x:iam::A:role/`: its ARN is
    `arn:aws:iam::B:role/x:iam::A:role/cld_1-cluster_node_role`, and a `*` that runs across the ':'
    between ARN fields lets the partition glob swallow `aws:iam::B:role/x`. The repositories of A
    would then name B's role as a principal: "a namespace may reach only the accounts its policies
    name" (issue 14) would not hold."""
    from ecr_access import tenancy  # noqa: PLC0415
    from tests.memory import Grants  # noqa: PLC0415
    from tests.unit.test_accounts import DEFAULTS  # noqa: PLC0415

    policy = tenancy.parse_policy("team", {
        "namespaceSelector": {}, "managedPolicies": ["None"],
        "roles": [f"arn:*:iam::{OWN}:role/cld_*-cluster_node_role"],
        "repositories": [f"arn:*:ecr:*:{OWN}:repository/*"]})
    forged = f"arn:aws:iam::666666666666:role/x:iam::{OWN}:role/cld_1-cluster_node_role"
    live = Grants(DEFAULTS, policies=[policy])
    _, spec = live.add("g", {"role": {"arn": forged}, "managedPolicy": "None", "repositories": [{"name": "ml/a"}]})
    assert spec.role.account == "666666666666"

    assert not tenancy.judge([policy], "default", {}, forged, spec).permitted

    # What the policy is for still holds: A's roles in any partition, and any repository of A.
    for partition in ("aws", "aws-cn"):
        assert policy.allows_role(f"arn:{partition}:iam::{OWN}:role/cld_1-cluster_node_role"), partition
    # A path with ':' in A: matched by a '*', or by a ':' in the pattern's own resource part.
    assert tenancy.glob(f"arn:*:iam::{OWN}:role/*", f"arn:aws:iam::{OWN}:role/a:b/x")
    assert tenancy.glob(f"arn:aws:iam::{OWN}:role/a:b/*", f"arn:aws:iam::{OWN}:role/a:b/x")
    assert not tenancy.glob(f"*:{OWN}:role/*", forged), "fewer fields, the same trick"
    assert policy.allows_repository(f"arn:aws:ecr:us-west-2:{OWN}:repository/ml/a")
    assert not policy.allows_repository(f"arn:aws:ecr:us-west-2:{CENTRAL}:repository/ml/a")
    for pattern, text in (("*", "arn:aws:iam::1:role/x"), ("ecr:*", "ecr:BatchGetImage"),
                          ("arn:aws:iam::*", "arn:aws:iam::1:role/a:b/x"), ("ecr:Batch*", "ecr:BatchGetImage")):
        assert tenancy.glob(pattern, text), (pattern, text)
