"""The command line: what a person types before anything runs."""

from __future__ import annotations

import contextlib
import importlib.metadata

import pytest

from ecr_access import cli


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
