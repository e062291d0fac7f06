"""The operator's own background loops (the drift check, the orphan sweep) as asyncio tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


def start(task: asyncio.Task[None] | None, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """`task` if it is already running, else `work` started on the running loop."""
    if task is not None:
        work.close()  # never awaited: say so, rather than leave asyncio to warn
        return task
    return asyncio.get_running_loop().create_task(work, name=name)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel the task and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
