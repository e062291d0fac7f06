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
    """Records (action, resource, context) for each call, from the API parameters botocore builds."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str | list[str]]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.signing_name  # "ecr" (its endpoint prefix is "api.ecr"), "iam", "sts"
        operation = model.name
        if service == "sts":
            return  # GetCallerIdentity needs no permission
        context: dict[str, str | list[str]] = {}
        if service == "iam":
            resource = f"arn:aws:iam::{ACCOUNT}:role/{params['RoleName']}"
            if "PolicyArn" in params:
                context["iam:PolicyARN"] = params["PolicyArn"]
            if "Tags" in params:  # aws:TagKeys: the keys a TagRole sets, or an UntagRole removes
                context["aws:TagKeys"] = [item["Key"] for item in params["Tags"]]
            if "TagKeys" in params:
                context["aws:TagKeys"] = list(params["TagKeys"])
        else:
            registry = params.get("registryId", ACCOUNT)
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
    assert iam_policy.granted_actions() == called, "the policy grants actions the operator never calls"


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
