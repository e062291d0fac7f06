"""The region the manifests set is the region the operator runs in (issue 11).

boto3 reads AWS_DEFAULT_REGION, not AWS_REGION, yet the Deployment and the Helm chart set only
AWS_REGION: before this test, the operator ignored it (and, with a region in ~/.aws/config, ran
silently there). The environment here is exactly the container's, taken from the rendered
manifests, with nothing else from this machine: no AWS_DEFAULT_REGION, no profile.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from ecr_access import config
from ecr_access.aws.session import AwsSession
from tests.deploy.manifests import container, helm_render, kustomize


def container_env(objects: list[dict[str, object]]) -> dict[str, str]:
    return {str(item["name"]): str(item.get("value", "")) for item in container(objects).get("env", [])}


@pytest.fixture
def clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No AWS settings from this machine, and a profile that names another region (the silent trap)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "ECR_ACCESS_REGION"):
        monkeypatch.delenv(name, raising=False)
    profile = tmp_path / "config"
    profile.write_text("[default]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    yield


@pytest.mark.parametrize("render", [
    pytest.param(lambda: kustomize("base"), id="deploy-base"),
    pytest.param(lambda: helm_render({"region": "ap-south-1"}), id="helm"),
])
def test_the_region_the_manifests_set_is_the_operators(render: object, clean_aws_env: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    env = container_env(render())  # type: ignore[operator]
    assert "AWS_REGION" in env and "AWS_DEFAULT_REGION" not in env
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    cfg = config.load({}, environ=dict(env))

    assert cfg.region == env["AWS_REGION"]
    assert AwsSession.create(cfg.region).region == env["AWS_REGION"]


@pytest.mark.parametrize(("environ", "expected"), [
    pytest.param({"ECR_ACCESS_REGION": "us-east-2", "AWS_REGION": "us-west-2"}, "us-east-2", id="ours-first"),
    pytest.param({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-east-1"}, "us-west-2", id="then-aws-region"),
    pytest.param({"AWS_DEFAULT_REGION": "us-east-1"}, "us-east-1", id="then-aws-default-region"),
    pytest.param({}, None, id="else-the-profile"),
])
def test_region_precedence(environ: Mapping[str, str], expected: str | None) -> None:
    assert config.load({}, environ=environ).region == expected


def test_a_flag_wins_over_every_variable() -> None:
    assert config.load({"region": "sa-east-1"}, environ={"ECR_ACCESS_REGION": "us-east-2"}).region == "sa-east-1"
