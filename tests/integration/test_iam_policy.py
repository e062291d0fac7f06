"""deploy/iam/operator-policy.json cannot drift from the code.

The operator's integration scenarios run here against moto while every AWS call is recorded, with
the resource it touches and the condition keys IAM would evaluate. Each recorded call must be
allowed by the policy file, and the file must grant no action that the operator never calls.
"""

from __future__ import annotations

import json
from typing import Any

from ecr_access.sweep import Registry
from tests.deploy import iam_policy
from tests.integration.conftest import ACCOUNT, CLOUD_ID, FOREIGN, READ_ONLY, REGION, Grants, World

PULL_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly"


class Recorder:
    """Records (action, resource, context) for each call, from the API parameters botocore builds,
    made with the credentials of `account`."""

    def __init__(self, account: str = ACCOUNT) -> None:
        self.account = account
        self.calls: list[tuple[str, str, dict[str, str | list[str]]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.signing_name  # "ecr" (its endpoint prefix is "api.ecr"), "iam", "sts"
        operation = model.name
        if service == "sts":
            if operation == "AssumeRole":  # an EcrAccessAccount's role; GetCallerIdentity needs no permission
                self.calls.append(("sts:AssumeRole", params["RoleArn"], {}))
            return
        context: dict[str, str | list[str]] = {}
        if service == "iam":
            resource = f"arn:aws:iam::{self.account}:role/{params['RoleName']}"
            if "PolicyArn" in params:
                context["iam:PolicyARN"] = params["PolicyArn"]
            if "Tags" in params:  # aws:TagKeys: the keys a TagRole sets, or an UntagRole removes
                context["aws:TagKeys"] = [item["Key"] for item in params["Tags"]]
            if "TagKeys" in params:
                context["aws:TagKeys"] = list(params["TagKeys"])
        else:
            registry = params.get("registryId", self.account)
            name = params.get("repositoryName", "*")
            resource = f"arn:aws:ecr:{REGION}:{registry}:repository/{name}"
        self.calls.append((f"{service}:{operation}", resource, context))


def run_scenarios(world: World, grants: Grants) -> None:
    """Every path that calls AWS: apply, drift repair, Retain, Delete with detach, PullOnly, the sweep."""
    world.create_role()
    world.create_role("puller")
    world.create_repository("ml/a")
    world.create_repository("ml/b", policy={"Version": "2012-10-17", "Statement": [FOREIGN]})
    a_key, a_spec = grants.add("a", {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [{"name": "ml/a"}]})
    b_key, b_spec = grants.add("b", {"role": {"name": "puller"}, "managedPolicy": "PullOnly",
                                     "repositories": [{"name": "ml/b"}], "deletionPolicy": "Retain"})
    world.apply(a_key, a_spec, None, grants)
    world.apply(b_key, b_spec, None, grants)
    world.ecr().set_repository_policy(repositoryName="ml/b",
                                      policyText=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]}))
    world.apply(b_key, b_spec, None, grants)  # repairs drift
    for key, spec in ((a_key, a_spec), (b_key, b_spec)):
        grants.remove(key)
        world.release(key, spec, spec, grants, uid=f"uid-{key.name}")
    world.sweep(grants, Registry("aws", REGION, ACCOUNT))


def test_every_call_the_operator_makes_is_allowed_and_nothing_more_is_granted(world: World, grants: Grants) -> None:
    recorder = Recorder()
    world.session.session.events.register("before-parameter-build.*.*", recorder)

    run_scenarios(world, grants)

    called = {action for action, _, _ in recorder.calls}
    assert {"iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:TagRole", "iam:UntagRole",
            "ecr:DeleteRepositoryPolicy", "ecr:DescribeRepositories"} <= called, "the scenarios exercise every path"
    denied = [call for call in recorder.calls if not iam_policy.allows(*call)]
    assert denied == [], f"operator-policy.json does not allow: {denied}"
    # sts:AssumeRole (and sts:TagSession, granted within it) is the other accounts': the test below.
    assert iam_policy.load_policy().called_actions() - {"sts:AssumeRole"} == called, \
        "the policy grants actions the operator never calls"


def test_the_policy_cannot_attach_any_other_managed_policy() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/cld_x-cluster_node_role"
    for arn in (READ_ONLY, PULL_ONLY):
        assert iam_policy.allows("iam:AttachRolePolicy", role, {"iam:PolicyARN": arn})
    assert not iam_policy.allows("iam:AttachRolePolicy", role,
                                 {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"})
    assert not iam_policy.allows("iam:AttachRolePolicy", role, {})


def test_the_policy_tags_roles_only_with_our_keys() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/cld_x-cluster_node_role"
    for action in ("iam:TagRole", "iam:UntagRole"):
        assert iam_policy.allows(action, role, {"aws:TagKeys": ["ecraccess.io/attached", "ecraccess.io/0a1b2c3d"]})
        assert not iam_policy.allows(action, role, {"aws:TagKeys": ["ecraccess.io/attached", "team"]}), \
            "one key outside ecraccess.io/ is enough to refuse"
        assert not iam_policy.allows(action, role, {"aws:TagKeys": ["owner"]})
        assert not iam_policy.allows(action, role, {})


def test_every_call_in_other_accounts_is_allowed_by_the_role_assumed_there_and_nothing_more_is_granted(
        world: World, grants: Grants) -> None:
    """Both account roles of deploy/iam: the registry account's (ECR) and the cloud account's (IAM),
    each with a repository and a role in that account, and the operator's own sts:AssumeRole."""
    from tests.integration.test_accounts import CENTRAL, Central, configured  # noqa: PLC0415

    own = Recorder()
    world.session.session.events.register("before-parameter-build.*.*", own)
    central = Central(world, configured())
    recorder = Recorder(CENTRAL)
    central.others.session(CENTRAL).session.events.register("before-parameter-build.*.*", recorder)
    world.create_role()
    node_b = central.admin.iam().create_role(RoleName="central-node", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    central.create_repository("central/a")
    central.create_repository("central/b", [{"Sid": "Theirs", "Effect": "Allow", "Action": "ecr:PutImage",
                                             "Principal": {"AWS": f"arn:aws:iam::{CENTRAL}:root"}}])
    a_key, a_spec = grants.add("a", {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [
        {"name": "central/a", "registryId": CENTRAL}, {"name": "central/b", "registryId": CENTRAL}]})
    b_key, b_spec = grants.add("b", {"role": {"arn": node_b}, "repositories": [
        {"name": "central/b", "registryId": CENTRAL}]})
    for key, spec in ((a_key, a_spec), (b_key, b_spec)):
        world.apply(key, spec, None, grants, reconciler=central.reconciler)
    grants.remove(a_key)
    world.sweep(grants, Registry("aws", REGION, CENTRAL), reconciler=central.reconciler)
    grants.remove(b_key)
    world.release(b_key, b_spec, b_spec, grants, reconciler=central.reconciler)

    ecr = [call for call in recorder.calls if call[0].startswith("ecr:")]
    iam = [call for call in recorder.calls if call[0].startswith("iam:")]
    assert len(ecr) + len(iam) == len(recorder.calls), "nothing but ECR and IAM is called in the other account"
    registry = iam_policy.load_policy(iam_policy.REGISTRY_ACCOUNT_POLICY, account=CENTRAL)
    cloud = iam_policy.load_policy(iam_policy.CLOUD_ACCOUNT_POLICY, account=CENTRAL)
    assert [call for call in ecr if not registry.allows(*call)] == []
    assert [call for call in iam if not cloud.allows(*call)] == []
    assert {call[0] for call in ecr} == registry.called_actions(), "the registry role grants what is never called"
    assert {call[0] for call in iam} == cloud.called_actions(), "the cloud role grants what is never called"
    # The test's own administrator in B assumes role/admin with the same credentials; not the operator's call.
    assumed = [call for call in own.calls if call[0] == "sts:AssumeRole" and not call[1].endswith("role/admin")]
    assert assumed and all(iam_policy.allows(*call) for call in assumed)
    assert not iam_policy.allows("sts:AssumeRole", f"arn:aws:iam::{CENTRAL}:role/admin"), "only the account roles"
