"""Markers of the deploy tests (registered here: pyproject's marker list belongs to the whole suite)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: installs packages into a fresh virtualenv (about 20-60 s)")
