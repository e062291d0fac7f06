"""The command line: what a person types before anything runs."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import kopf
import kubernetes.client
import pytest

from ecr_access import cli, commands, handlers, kube
from ecr_access.config import Config
from ecr_access.model import GrantKey
from tests.integration.conftest import REGION, World


@pytest.mark.parametrize("argv", [["--version"], ["version"]])
def test_version_prints_the_installed_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) if argv == ["--version"] else contextlib.nullcontext():
        cli.main(argv)
    printed = capsys.readouterr().out.strip()
    assert printed == f"ecr-access-operator {importlib.metadata.version('ecr-access-operator')}"
    assert printed.split()[-1][0].isdigit()


def test_a_start_that_cannot_reach_the_cluster_exits_with_the_reason_instead_of_looping(
        tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))  # type: ignore[operator]
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("ECR_ACCESS_METRICS_PORT", "0")
    with pytest.raises(SystemExit) as raised:
        cli.main(["run"])
    assert str(raised.value).startswith("ecr-access-operator: cannot start:")
    assert "kube" in str(raised.value).lower() or "config" in str(raised.value).lower()


def test_a_readiness_port_that_is_taken_exits_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket  # noqa: PLC0415
    import types  # noqa: PLC0415

    from ecr_access.probes import Readiness  # noqa: PLC0415

    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("ECR_ACCESS_METRICS_PORT", "0")
    monkeypatch.setattr(cli, "build_runtime", lambda cfg, metrics: types.SimpleNamespace(readiness=Readiness()))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as raised:
            cli.main(["run", "--readiness", f"http://127.0.0.1:{taken.getsockname()[1]}/readyz"])
    assert str(raised.value).startswith("ecr-access-operator: cannot start:")
    assert "in use" in str(raised.value)


class _Parser(Exception):  # a parser carried out of main, not an error
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _commands(monkeypatch: pytest.MonkeyPatch) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers, as `main` builds them (stopped before it parses anything)."""
    def caught(self: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        raise _Parser(self)

    with monkeypatch.context() as patch, pytest.raises(_Parser) as raised:
        patch.setattr(argparse.ArgumentParser, "parse_args", caught)
        cli.main(["run"])
    (subcommands,) = [item for item in raised.value.parser._actions if isinstance(item, argparse._SubParsersAction)]
    return dict(subcommands.choices)


def _flags(parser: argparse.ArgumentParser) -> dict[str, tuple[object, ...]]:
    return {option: (type(item).__name__, item.dest, item.type, item.choices, item.nargs, item.default)
            for item in parser._actions for option in item.option_strings}


# What only a running operator has: its probes' endpoints and its log format. Everything else `run`
# takes is a setting (Config), which plan, adopt and whoami take alike, --metrics-port included.
RUN_ONLY = {"--liveness", "--readiness", "--log-format"}
OWN = {"plan": {"-f", "--filename", "--offline", "--delete", "-o", "--output"},
       "adopt": {"-f", "--filename", "--apply", "-o", "--output"}, "whoami": {"-o", "--output"}}


@pytest.mark.parametrize("command", sorted(OWN))
def test_plan_adopt_and_whoami_take_runs_settings_flags_and_only_their_own_besides(
        command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parsers = _commands(monkeypatch)
    run = _flags(parsers["run"])
    assert set(run) >= RUN_ONLY | {"--cluster-id", "--region", "--policy-mode"}
    settings = {option: kind for option, kind in run.items() if option not in RUN_ONLY}
    flags = _flags(parsers[command])
    assert {option: kind for option, kind in flags.items() if option not in OWN[command]} == settings
    assert OWN[command] <= set(flags)


SETTINGS_ARGV = ["--cluster-id", "c-1", "--namespace", "ml", "--namespace", "ci", "--policy-mode", "Open",
                 "--region", "eu-west-1", "--resync-interval", "7", "--metrics-port", "0", "--sweep-interval", "9"]


@pytest.mark.parametrize(("command", "extra"), [("plan", ["-f", "x.yaml"]), ("adopt", []), ("whoami", [])])
def test_the_same_settings_flags_make_the_same_config_as_run(
        command: str, extra: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("ECR_ACCESS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ECR_ACCESS_VERIFY_IDENTITY", "true")  # environment-only settings too
    seen: dict[str, Config] = {}
    monkeypatch.setattr(cli, "run_operator", lambda cfg, **_: seen.setdefault("run", cfg))

    def kept(cfg: Config, *_: Any, **__: Any) -> int:
        seen[command] = cfg
        return 0

    for name in ("plan", "adopt_command", "whoami_command"):
        monkeypatch.setattr(commands, name, kept)
    cli.main(["run", *SETTINGS_ARGV])
    with pytest.raises(SystemExit):
        cli.main([command, *SETTINGS_ARGV, *extra])
    assert seen[command] == seen["run"]
    assert (seen["run"].cluster_id, seen["run"].namespaces, seen["run"].policy_mode) == ("c-1", ("ml", "ci"), "Open")
    assert seen["run"].verify_identity is True


@pytest.fixture
def cluster_api(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A cluster that answers with no grants and a cluster id from the environment: the kubeconfig
    is not read and nothing is sent; `kopf.run` only records that the operator would have started.
    Returns what kopf was started with (empty: it was not)."""
    started: list[Any] = []
    monkeypatch.setattr(kube, "load_client_config", lambda: None)
    monkeypatch.setattr(kubernetes.client.CustomObjectsApi, "list_cluster_custom_object",
                        lambda self, *args, **kwargs: {"items": []})
    monkeypatch.setattr(kopf, "run", lambda **kwargs: started.append(kwargs))
    monkeypatch.setenv("ECR_ACCESS_CLUSTER_ID", "test-cluster")
    monkeypatch.setenv("ECR_ACCESS_METRICS_PORT", "0")
    monkeypatch.setenv("AWS_REGION", REGION)
    return started


@pytest.mark.parametrize(("status", "reason", "says"), [
    pytest.param(403, "Forbidden", "RBAC", id="forbidden"),
    pytest.param(404, "Not Found", "CRD", id="no-crd"),
])
def test_a_start_that_cannot_list_grants_exits_with_the_reason_before_kopf_starts(
        world: World, cluster_api: list[Any], monkeypatch: pytest.MonkeyPatch, status: int, reason: str,
        says: str) -> None:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise kubernetes.client.ApiException(status=status, reason=reason)

    monkeypatch.setattr(kubernetes.client.CustomObjectsApi, "list_cluster_custom_object", refuse)
    with pytest.raises(SystemExit) as raised:
        cli.main(["run"])
    message = str(raised.value)
    assert message.startswith("ecr-access-operator: cannot start:")
    assert f"{status} {reason}" in message and "EcrAccessGrant" in message and says in message
    assert "\n" not in message, "one line a pod's last state shows, not the client's dump of headers"
    assert cluster_api == [], "kopf was started: it would retry the start-up every minute instead"


def test_a_start_that_can_list_grants_starts_kopf(world: World, cluster_api: list[Any]) -> None:
    cli.main(["run"])
    assert len(cluster_api) == 1


def test_a_start_with_no_aws_identity_exits_with_the_reason(
        cluster_api: list[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata to wait for
    with pytest.raises(SystemExit) as raised:
        cli.main(["run"])
    message = str(raised.value)
    assert message.startswith("ecr-access-operator: cannot start:")
    assert "GetCallerIdentity" in message and "credentials" in message
    assert cluster_api == []


@pytest.mark.parametrize(("variable", "value"), [
    ("ECR_ACCESS_RESYNC_INTERVAL", "abc"),
    ("ECR_ACCESS_LOG_FORMAT", "xml"),
])
def test_an_invalid_setting_exits_with_code_2_naming_it(
        cluster_api: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as raised:
        cli.main(["run"])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert variable in error and repr(value) in error
    assert cluster_api == []


GRANT = kopf.Body({"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant",
                   "metadata": {"namespace": "team-ml", "name": "trainer", "uid": "uid-1"}})


def _kopf_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What the operator started with `argv` writes for kopf's line about a grant's handler."""
    cli.main(argv)
    settings = kopf.OperatorSettings()
    handlers.configure(settings)  # posting stays at WARNING: this INFO line is only logged
    capsys.readouterr()
    kopf.ObjectLogger(body=GRANT, settings=settings).info("Handler 'apply-on-create' succeeded.")
    [line] = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.parametrize(("argv", "env", "expected"), [
    pytest.param(["run", "--log-format", "plain"], None, r"\[team-ml/trainer\] Handler 'apply-on-create' succeeded\.",
                 id="plain"),
    pytest.param(["run", "--log-format", "full"], None,
                 r"\[\d{4}-\d\d-\d\d [\d:,]+\] kopf\.objects +\[INFO +\] \[team-ml/trainer\] "
                 r"Handler 'apply-on-create' succeeded\.", id="full"),
    pytest.param(["run"], None, r"\[[\d:, -]+\] kopf\.objects +\[INFO +\] \[team-ml/trainer\] Handler .*",
                 id="default-full"),
    pytest.param(["run"], "plain", r"\[team-ml/trainer\] Handler 'apply-on-create' succeeded\.", id="env-plain"),
    pytest.param(["run", "--log-format", "full"], "plain", r"\[[\d:, -]+\] kopf\.objects .*\[team-ml/trainer\].*",
                 id="flag-wins-over-env"),
])
def test_kopf_text_lines_about_a_grant_name_it(
        cluster_api: list[Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], argv: list[str], env: str | None, expected: str) -> None:
    monkeypatch.setattr(cli, "run_operator", lambda cfg, **endpoints: None)
    if env is not None:
        monkeypatch.setenv("ECR_ACCESS_LOG_FORMAT", env)
    assert re.fullmatch(expected, _kopf_line(argv, capsys))


def test_kopf_json_lines_about_a_grant_carry_it_under_grant(
        cluster_api: list[Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "run_operator", lambda cfg, **endpoints: None)
    line = json.loads(_kopf_line(["run", "--log-format", "json"], capsys))
    assert line["message"] == "Handler 'apply-on-create' succeeded."  # no prefix: the name is a field
    assert line["grant"] == {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant", "name": "trainer",
                             "namespace": "team-ml", "uid": "uid-1"}


def test_our_own_lines_about_a_grant_carry_it_under_the_same_key_as_kopfs(
        cluster_api: list[Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "run_operator", lambda cfg, **endpoints: None)
    cli.main(["run", "--log-format", "json"])
    capsys.readouterr()
    key = GrantKey("team-ml", "trainer")
    logging.getLogger("ecr_access.drift").error("Drift check of %s failed: %r", key, "boom", extra=key.log_ref())
    line = json.loads(capsys.readouterr().err)
    assert line["message"] == "Drift check of team-ml/trainer failed: 'boom'"
    assert {name: line["grant"][name] for name in ("kind", "namespace", "name")} == {
        "kind": "EcrAccessGrant", "namespace": "team-ml", "name": "trainer"}
