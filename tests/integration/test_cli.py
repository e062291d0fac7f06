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

