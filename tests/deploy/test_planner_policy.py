"""deploy/iam/planner-policy.json: what `plan` needs, which is reads only, and exactly the reads it makes.

The file is checked statically (no action that writes, no wildcard resource), then against a
recording: `plan` runs in moto over creates, an edit that drops a repository, a delete that detaches,
a repository in another account, and a plan with the identity check on (ECR_ACCESS_VERIFY_IDENTITY:
`iam:SimulatePrincipalPolicy`, which moto does not implement, answered by a botocore handler), while
every AWS call is recorded with its resource, as tests/integration/test_iam_policy.py records the
operator's. Each call made with the planner's own credentials must be allowed by the file, and the
file may grant nothing a plan never calls (but `sts:TagSession`, which AWS checks within
AssumeRole). A call in another account is made as the role assumed there, so it is held to that
role's policy (registry-account-policy.json).
"""

from __future__ import annotations

import json
from typing import Any

from ecr_access import accounts
from ecr_access.accounts import AccountSpec
from ecr_access.aws.accounts import AssumedAccounts
from tests.deploy import iam_policy
from tests.integration import conftest as integration
from tests.integration.test_plan import applied, grant_body, policy_body, run

PLANNER_POLICY = iam_policy.IAM / "planner-policy.json"
CENTRAL = "210987654321"
READ_VERBS = ("Get", "List", "Describe", "Simulate")

world = integration.world  # the moto world of the integration tests


class Recorder:
    """(action, resource, context) of each call, from the parameters botocore builds."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service, operation = model.service_model.signing_name, model.name
        if service == "sts":
            if operation == "AssumeRole":  # GetCallerIdentity needs no permission
                self.calls.append(("sts:AssumeRole", params["RoleArn"], {}))
            return
        if service == "iam":
            resource = params.get("PolicySourceArn") or f"arn:aws:iam::{self.account}:role/{params['RoleName']}"
        else:
            resource = (f"arn:aws:ecr:{integration.REGION}:{params.get('registryId', self.account)}:repository/"
                        f"{params.get('repositoryName', '*')}")
        self.calls.append((f"{service}:{operation}", resource, {}))


def planner() -> iam_policy.Policy:
    return iam_policy.load_policy(PLANNER_POLICY)


def test_the_planner_policy_grants_reads_only_on_named_resources() -> None:
    document = json.loads(PLANNER_POLICY.read_text())
    assert set(document) == {"Version", "Statement"} and document["Version"] == "2012-10-17"
    sids = [statement["Sid"] for statement in document["Statement"]]
    assert len(set(sids)) == len(sids)
    for statement in planner().statements():
        assert set(statement) <= iam_policy.SUPPORTED_KEYS and statement["Effect"] == "Allow"
        assert statement["Resource"] != "*" and "Condition" not in statement
        for action in statement["Action"]:
            assert "*" not in action
            assert action.split(":")[1].startswith(READ_VERBS) or action in iam_policy.AUTHORIZED_WITHIN or \
                action == "sts:AssumeRole", f"{action} is not a read"
    # Nothing the operator may write, and the roles it may assume are the operator's own account roles.
    writes = {"ecr:SetRepositoryPolicy", "ecr:DeleteRepositoryPolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
              "iam:TagRole", "iam:UntagRole"}
    assert not planner().granted_actions() & writes
    assert writes <= iam_policy.granted_actions(), "the operator's policy is where the writes are"
    (assume,) = [item for item in planner().statements() if "sts:AssumeRole" in item["Action"]]
    (own,) = [item for item in iam_policy.statements() if "sts:AssumeRole" in item["Action"]]
    assert assume["Resource"] == own["Resource"]


def test_every_call_a_plan_makes_is_allowed_and_nothing_more_is_granted(world: integration.World) -> None:
    own = Recorder(integration.ACCOUNT)
    world.session.session.events.register("before-parameter-build.*.*", own)
    world.session.session.events.register("before-call.iam.SimulatePrincipalPolicy", integration.simulator())
    operator_role = f"arn:aws:iam::{CENTRAL}:role/ecr-access-operator"
    others = AssumedAccounts(world.session, accounts.session_name(integration.CLUSTER_ID))
    others.bind(lambda account: AccountSpec("central", CENTRAL, operator_role) if account == CENTRAL else None,
                lambda: [CENTRAL])
    central = Recorder(CENTRAL)
    others.session(CENTRAL).session.events.register("before-parameter-build.*.*", central)
    admin = world.session.assume(f"arn:aws:iam::{CENTRAL}:role/admin", session_name="admin")
    admin.ecr(integration.REGION).create_repository(repositoryName="central/base")

    role_arn = world.create_role()
    world.create_repository("ml/a")
    world.create_repository("ml/b", {"Version": "2012-10-17", "Statement": [integration.FOREIGN]})
    grants = integration.Grants()
    key, spec = grants.add("g", {"role": {"name": integration.NODE_ROLE}, "repositories": [
        {"name": "ml/a"}, {"name": "ml/b"}]})
    world.apply(key, spec, None, grants)
    live = [policy_body(), applied(grant_body("g", "ml/a", "ml/b"), spec),
            {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": "central"},
             "spec": {"accountId": CENTRAL, "assumeRole": {"roleArn": operator_role}}}]
    elsewhere = grant_body("h", managedPolicy="None")
    elsewhere["spec"]["repositories"] = [{"name": "central/base", "registryId": CENTRAL}]
    own.calls.clear()

    verify = {"verify_identity": True}
    for files, delete, config in (([grant_body("g", "ml/a")], False, {}), ([grant_body("g", "ml/a", "ml/b")], True, {}),
                                  ([grant_body("new", "ml/a", managedPolicy="PullOnly"), elsewhere], False, {}),
                                  ([grant_body("new", "ml/a", "ml/b"), elsewhere], False, verify)):
        result = run(world, live, files, delete=delete, others=others, **config)
        assert result.changed and not result.problems, result.problems
        assert all(item.ready is None or item.ready.status == "True" for item in result.grants), result.grants

    assert [call for call in own.calls if not planner().allows(*call)] == []
    called = {action for action, _, _ in own.calls}
    assert ("iam:SimulatePrincipalPolicy", role_arn, {}) in own.calls  # on the grants' role, by its ARN
    assert planner().called_actions() == called, "granted but never called, or the reverse"
    registry = iam_policy.load_policy(iam_policy.REGISTRY_ACCOUNT_POLICY, account=CENTRAL)
    assert central.calls and [call for call in central.calls if not registry.allows(*call)] == []
    assert {action for action, _, _ in central.calls} <= planner().granted_actions()
