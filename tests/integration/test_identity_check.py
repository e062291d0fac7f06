"""The optional identity check (ECR_ACCESS_VERIFY_IDENTITY, issue 16). moto does not implement IAM's
policy simulator: the adapter is tested against botocore's Stubber (which checks each request
against IAM's service model), and the reconciler with a stub at the IAM port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from botocore.stub import Stubber

from ecr_access import config as config_module
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.model import REFERENCE_ACTIONS
from ecr_access.ports import AwsFault, FaultKind, Simulated
from ecr_access.reconcile import Reconciler
from ecr_access.status import build_status
from tests.integration.conftest import ACCOUNT, CLUSTER_ID, NODE_ROLE, REGION, Grants, World, no_sleep, settings

REPO_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/a"
CENTRAL_ARN = f"arn:aws:ecr:{REGION}:210987654321:repository/central/a"


class SimulatingIam(IamAdapter):
    """The real adapter (moto), with the simulator answered from `decisions`: (action, resource) ->
    decision, "allowed" when not listed; or raising `fault`."""

    def __init__(self, *args: Any, decisions: dict[tuple[str, str], str] | None = None,
                 fault: AwsFault | None = None) -> None:
        super().__init__(*args)
        self.decisions, self.fault = decisions or {}, fault
        self.asked: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []

    async def simulate_principal_policy(self, role_arn: str, actions: Sequence[str],
                                        resources: Sequence[str]) -> list[Simulated]:
        self.asked.append((role_arn, tuple(actions), tuple(resources)))
        if self.fault is not None:
            raise self.fault
        return [Simulated(action, resource, self.decisions.get((action, resource), "allowed"))
                for action in actions for resource in resources]


def applied(world: World, grants: Grants, iam: SimulatingIam, **config: Any) -> dict[str, Any]:
    world.create_role()
    world.create_repository("ml/a")
    reconciler = Reconciler(iam, EcrAdapter(world.session), cluster_id=CLUSTER_ID, account=ACCOUNT,
                            config=settings(**{"verify_identity": True, **config}), sleep=no_sleep)
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}],
                                 "managedPolicy": "None"})
    return dict(build_status(world.apply(key, spec, None, grants, reconciler=reconciler), 1, None, "T"))


def test_a_role_that_may_not_log_in_is_identity_denied(world: World, grants: Grants) -> None:
    iam = SimulatingIam(world.session, decisions={("ecr:GetAuthorizationToken", REPO_ARN): "implicitDeny"})

    report = applied(world, grants, iam)

    ready = report["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "IdentityDenied")
    assert "ecr:GetAuthorizationToken" in ready["message"] and "implicitDeny" in ready["message"]
    assert report["conditions"][1]["type"] == "Stalled"
    assert report["repositories"][0]["ready"] is True, "the repository side is in place regardless"
    assert world.ours("ml/a")
    [(role_arn, actions, resources)] = iam.asked
    assert role_arn.endswith(f"role/{NODE_ROLE}") and resources == (REPO_ARN,)
    assert actions == ("ecr:GetAuthorizationToken", *REFERENCE_ACTIONS)


def test_an_explicit_deny_of_a_pull_action_is_identity_denied(world: World, grants: Grants) -> None:
    iam = SimulatingIam(world.session, decisions={("ecr:BatchGetImage", REPO_ARN): "explicitDeny"})

    ready = applied(world, grants, iam)["conditions"][0]

    assert ready["reason"] == "IdentityDenied" and "ecr:BatchGetImage on " + REPO_ARN in ready["message"]


def test_in_its_own_account_a_pull_needs_no_identity_allow(world: World, grants: Grants) -> None:
    # The repository policy alone grants a pull in the same account: implicitDeny there is no denial.
    iam = SimulatingIam(world.session, decisions={(action, REPO_ARN): "implicitDeny" for action in REFERENCE_ACTIONS
                                                  if action != "ecr:GetAuthorizationToken"})

    ready = applied(world, grants, iam)["conditions"][0]

    assert ready["status"] == "True", ready


def test_without_the_setting_nothing_is_simulated(world: World, grants: Grants) -> None:
    iam = SimulatingIam(world.session, decisions={("ecr:GetAuthorizationToken", REPO_ARN): "implicitDeny"})

    ready = applied(world, grants, iam, verify_identity=False)["conditions"][0]

    assert ready["status"] == "True" and iam.asked == []


def test_no_permission_to_simulate_is_said_plainly(world: World, grants: Grants) -> None:
    fault = AwsFault(FaultKind.ACCESS_DENIED, "SimulatePrincipalPolicy", "IAM role x",
                     "not authorized to perform: iam:SimulatePrincipalPolicy")
    ready = applied(world, grants, SimulatingIam(world.session, fault=fault))["conditions"][0]

    assert ready["reason"] == "AccessDenied" and "SimulatePrincipalPolicy" in ready["message"]


def test_the_adapter_reads_every_page_and_every_resource(world: World) -> None:
    adapter = IamAdapter(world.session)
    role = f"arn:aws:iam::{ACCOUNT}:role/{NODE_ROLE}"
    with Stubber(world.session.iam()) as stub:
        expected = {"PolicySourceArn": role, "ActionNames": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage"],
                    "ResourceArns": [REPO_ARN, CENTRAL_ARN]}
        stub.add_response("simulate_principal_policy", {"IsTruncated": True, "Marker": "m", "EvaluationResults": [
            {"EvalActionName": "ecr:GetAuthorizationToken", "EvalResourceName": "*", "EvalDecision": "allowed"}]},
            expected)
        stub.add_response("simulate_principal_policy", {"IsTruncated": False, "EvaluationResults": [
            {"EvalActionName": "ecr:BatchGetImage", "EvalDecision": "implicitDeny", "ResourceSpecificResults": [
                {"EvalResourceName": REPO_ARN, "EvalResourceDecision": "implicitDeny"},
                {"EvalResourceName": CENTRAL_ARN, "EvalResourceDecision": "implicitDeny"}]}]},
            {**expected, "Marker": "m"})
        found = world.run(adapter.simulate_principal_policy(role, expected["ActionNames"], expected["ResourceArns"]))
    assert found == [Simulated("ecr:GetAuthorizationToken", "*", "allowed"),
                     Simulated("ecr:BatchGetImage", REPO_ARN, "implicitDeny"),
                     Simulated("ecr:BatchGetImage", CENTRAL_ARN, "implicitDeny")]
    from ecr_access import access  # noqa: PLC0415
    # Across accounts the identity side must allow a pull; in the role's own account it need not.
    assert access.identity_denials(found, role) == [Simulated("ecr:BatchGetImage", CENTRAL_ARN, "implicitDeny")]


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("False", False), ("1", True), ("off", False)])
def test_the_setting_reads_true_or_false(raw: str, expected: bool) -> None:
    assert config_module.load({}, {"ECR_ACCESS_VERIFY_IDENTITY": raw}).verify_identity is expected


def test_a_setting_that_is_not_true_or_false_is_refused() -> None:
    with pytest.raises(ValueError, match="ECR_ACCESS_VERIFY_IDENTITY"):
        config_module.load({}, {"ECR_ACCESS_VERIFY_IDENTITY": "maybe"})
