"""The proxy's validating mode refuses what ECR refuses and moto accepts: a missing principal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from awsproxy.proxy import ProxyThread, run_in_thread
from ecr_sandbox.seed import NODE_TRUST_POLICY, repository_policy
from tests.awsproxy.conftest import make_client
from tests.awsproxy.test_proxy import unique as unique_name

TRUST = json.dumps(NODE_TRUST_POLICY)


@pytest.fixture
def validating(moto_url: str) -> Iterator[ProxyThread]:
    with run_in_thread(moto_url, validate_principals=True) as handle:
        yield handle


def document(*principals: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Pull", "Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": ["ecr:BatchGetImage"]}]})


def test_a_policy_naming_only_existing_roles_is_forwarded(validating: ProxyThread, moto_url: str) -> None:
    iam, ecr = make_client("iam", moto_url), make_client("ecr", validating.url)
    role = iam.create_role(RoleName=unique_name("real"), AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    repo = unique_name("repo")
    ecr.create_repository(repositoryName=repo)

    ecr.set_repository_policy(repositoryName=repo, policyText=document(role, "arn:aws:iam::123456789012:root"))

    assert repository_policy(ecr, repo)["Statement"][0]["Sid"] == "Pull"


@pytest.mark.parametrize("missing", [
    pytest.param("arn:aws:iam::123456789012:role/never-created", id="a-role-that-does-not-exist"),
    pytest.param("arn:aws:iam::999999999999:role/attacker", id="a-role-in-another-account"),
])
def test_a_policy_naming_a_missing_role_is_refused_as_ecr_refuses_it(
    validating: ProxyThread, moto_url: str, missing: str
) -> None:
    iam, ecr = make_client("iam", moto_url), make_client("ecr", validating.url)
    role = iam.create_role(RoleName=unique_name("real"), AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    repo = unique_name("repo")
    ecr.create_repository(repositoryName=repo)

    with pytest.raises(ecr.exceptions.InvalidParameterException, match="Invalid repository policy provided"):
        ecr.set_repository_policy(repositoryName=repo, policyText=document(role, missing))

    assert validating.stats().count("SetRepositoryPolicy", outcome="refused_principal") == 1
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):
        ecr.get_repository_policy(repositoryName=repo)


def test_without_the_mode_moto_accepts_anything(proxy: ProxyThread) -> None:
    ecr: Any = make_client("ecr", proxy.url)
    repo = unique_name("repo")
    ecr.create_repository(repositoryName=repo)
    ecr.set_repository_policy(repositoryName=repo, policyText=document("arn:aws:iam::123456789012:role/never"))


def test_a_refused_call_is_counted_as_refused_not_forwarded(validating: ProxyThread) -> None:
    ecr = make_client("ecr", validating.url)
    repo = unique_name("repo")
    ecr.create_repository(repositoryName=repo)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.set_repository_policy(repositoryName=repo, policyText=document("arn:aws:iam::123456789012:role/never"))
    stats = validating.stats()
    assert (stats.count("SetRepositoryPolicy"), stats.count("SetRepositoryPolicy", outcome="forwarded")) == (1, 0)
