"""The command line: what a person types before anything runs."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
from typing import Any

import pytest

from ecr_access import cli, commands
from ecr_access.config import Config


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


def test_log_format_json_writes_each_line_as_a_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    import json  # noqa: PLC0415
    import logging  # noqa: PLC0415

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(cli, "run_operator", lambda cfg, **endpoints: None)
    try:
        cli.main(["run", "--log-format", "json"])
        added = [handler for handler in root.handlers if handler not in handlers]
        record = logging.LogRecord("ecr_access.repositories", logging.INFO, __file__, 1, "AUDIT %s", ("x",), None)
        line = json.loads(added[0].format(record))
        assert line["message"] == "AUDIT x" and line["severity"] == "info"
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


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
