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
