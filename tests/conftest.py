"""Fixtures for every test.

`cli.main` sets up the process's logging as a process does once (kopf's stream handler on the root
logger, the root level, asyncio's logger silenced): each test undoes it, so that a command run in
one test does not change what later tests log or capture.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    root, asyncio_logger = logging.getLogger(), logging.getLogger("asyncio")
    level, asyncio_handlers, propagate = root.level, list(asyncio_logger.handlers), asyncio_logger.propagate
    yield
    # Only kopf's handler is removed: pytest adds and removes its own capturing handlers per phase.
    root.handlers[:] = [handler for handler in root.handlers if not type(handler).__module__.startswith("kopf.")]
    root.setLevel(level)
    asyncio_logger.handlers[:] = asyncio_handlers
    asyncio_logger.propagate = propagate
