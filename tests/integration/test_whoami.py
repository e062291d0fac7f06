"""`whoami` against moto: who the operator would be, and whether each EcrAccessAccount's role can be
assumed, with the operator's own session name, as whom."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecr_access import accounts, commands, connect, policy, whoami
from ecr_access.manifests import Objects
from tests.integration.conftest import ACCOUNT, CLUSTER_ID, DEFAULTS, REGION, World, settings

CENTRAL = "210987654321"
SESSION = accounts.session_name(CLUSTER_ID)


def account(name: str, account_id: str = CENTRAL, role: str = "ecr-access-operator", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount",
            "metadata": {"name": name, "creationTimestamp": extra.pop("created", "2026-01-01T00:00:00Z")},
            "spec": {"accountId": account_id, "assumeRole": {"roleArn": f"arn:aws:iam::{account_id}:role/{role}"},
                     **extra}}


def connection(world: World, *bodies: dict[str, Any], **config: Any) -> connect.Connection:
    return connect.Connection(settings(**config), world.session, DEFAULTS, CLUSTER_ID, Objects.of(bodies))


def caller(world: World) -> str:
    """Whom the test's credentials act as, asked of STS apart from the operator's session."""
    return str(world.admin.client("sts").get_caller_identity()["Arn"])


def test_it_says_who_where_which_cluster_and_as_whom_each_account_is_assumed(world: World) -> None:
    assumed: list[dict[str, Any]] = []
    world.session.session.events.register("before-parameter-build.sts.AssumeRole",
                                          lambda params, **_: assumed.append(dict(params)))
    identity = whoami.collect(connection(world, account("central"), account("later", created="2026-02-01T00:00:00Z"),
                                         account("mine", ACCOUNT), {**account("broken"), "spec": {"accountId": "x"}},
                                         policy_mode="Open"))

    assert (identity.account, identity.partition, identity.region) == (ACCOUNT, "aws", REGION)
    assert identity.arn == caller(world) and identity.arn.startswith(f"arn:aws:sts::{ACCOUNT}:")
    assert (identity.cluster_id, identity.prefix, identity.policy_mode) == (
        CLUSTER_ID, policy.cluster_prefix(CLUSTER_ID), "Open")
    checks = {item.name: item for item in identity.accounts}
    central = checks["central"]
    assert central.assumed and central.used and central.identity_arn == (
        f"arn:aws:sts::{CENTRAL}:assumed-role/ecr-access-operator/{SESSION}")
    assert [item["RoleSessionName"] for item in assumed] == [SESSION]  # the operator's, and only once
    assert not checks["later"].used and checks["later"].problem.startswith("DuplicateAccount: EcrAccessAccount central")
    assert checks["mine"].problem.startswith("OwnAccount:") and checks["broken"].problem.startswith("InvalidSpec:")

    text = whoami.to_text(identity)
    for line in (f"AWS identity:  {identity.arn}", f"Account:       {ACCOUNT} (partition aws)",
                 f"Region:        {REGION}",
                 f"Cluster id:    {CLUSTER_ID}", f"Sid prefix:    {policy.cluster_prefix(CLUSTER_ID)}",
                 f"Session name:  {SESSION}", "Policy mode:   Open",
                 f"  central: account {CENTRAL} via arn:aws:iam::{CENTRAL}:role/ecr-access-operator: assumed, acts as "
                 f"{central.identity_arn}"):
        assert line in text, text
    document = whoami.to_json(identity)
    assert (document["arn"], document["account"], document["partition"]) == (identity.arn, ACCOUNT, "aws")
    assert document["sidPrefix"] == policy.cluster_prefix(CLUSTER_ID) and document["sessionName"] == SESSION
    assert [item["name"] for item in document["accounts"] if item["assumed"]] == ["central"]


def test_a_role_that_cannot_be_assumed_is_said_with_awss_answer_and_exits_1(
        world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    world.calls.inject("AssumeRole", "AccessDenied", "not authorized to perform: sts:AssumeRole", status=403)
    monkeypatch.setattr(connect, "open_all", lambda config, **_: connection(world, account("central")))

    assert commands.whoami_command(settings(), output="json") == 1

    (check,) = json.loads(capsys.readouterr().out)["accounts"]
    assert (check["assumed"], check["used"]) == (False, True)
    assert check["problem"].startswith("AccountUnavailable:") and "sts:AssumeRole" in check["problem"]
    assert world.calls.writes() == []


def test_without_the_cluster_it_still_reports_aws_and_exits_1(
        world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    unreachable = connect.Connection(settings(), world.session, DEFAULTS, None, None,
                                     "cannot read the cluster: connection refused")
    monkeypatch.setattr(connect, "open_all", lambda config, **_: unreachable)

    assert commands.whoami_command(settings(), output="text") == 1

    out = capsys.readouterr().out
    assert out.startswith(f"AWS identity:  {caller(world)}\n")
    assert f"Account:       {ACCOUNT} (partition aws)" in out and "Cluster id:    (unknown)" in out
    assert "error: cannot read the cluster: connection refused" in out


def test_with_every_account_assumed_it_exits_0(world: World, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(connect, "open_all", lambda config, **_: connection(world))
    assert commands.whoami_command(settings(), output="text") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"AWS identity:  {caller(world)}\n") and "EcrAccessAccounts: none" in out
