"""Review of accounts (issue 14): what another account's trouble does to everything else."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import NODE_ROLE, Grants, World, _Http
from tests.integration.test_accounts import CENTRAL, Central, configured, principals, ready

B_ROLE = f"arn:aws:iam::{CENTRAL}:role/ci-puller"


@pytest.fixture
def central(world: World) -> Central:
    return Central(world, configured())


def deny(operation: str) -> Any:
    def hook(model: Any, **_: Any) -> Any:
        if model.name == operation:
            error = {"Code": "AccessDenied", "Message": f"not authorized to perform {operation}"}
            return _Http(403), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return None
    return hook


def test_a_grant_whose_role_is_in_an_unavailable_account_does_not_block_other_grants_repositories(
        world: World, central: Central, grants: Grants) -> None:
    """G2's role is in B, whose role cannot be assumed right now; G1 (role and repository in the
    operator's own account) shares a repository with G2. G1 must still go Ready: one grant's
    account trouble must not block every grant on the repositories it names (DESIGN §2.3)."""
    own_role = world.create_role()
    world.create_repository("ml/a")
    central.admin.iam().create_role(RoleName="ci-puller", AssumeRolePolicyDocument="{}")
    g2 = grants.add("g2", {"role": {"arn": B_ROLE}, "repositories": [{"name": "ml/a"}]})
    g1 = grants.add("g1", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    world.session.core.register("before-call.sts.AssumeRole", deny("AssumeRole"))

    outcome = world.apply(*g1, None, grants, reconciler=central.reconciler)

    assert ready(outcome), outcome
    assert own_role in principals(world.ours("ml/a")[0])
    # G2 says why it is not ready itself: its account (transient), not anyone else's repository.
    outcome = world.apply(*g2, None, grants, reconciler=central.reconciler)
    assert outcome.role.reason == "AccountUnavailable" and outcome.transient, outcome

