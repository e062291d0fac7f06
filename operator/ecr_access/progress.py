"""What a handler says and waits for while its work outlasts a moment (no kopf here).

kopf writes a handler's patch only when the handler returns, so anything a user must see sooner is
written at once through `patch_status`: the "Progressing" report of a new spec whose AWS work is
slow, and the verdict of a delete stalled on a person. A stalled delete then waits for the grant to
change, asking the API server (`read_spec`): kopf handles one object's events one at a time, so
while the handler runs, the object's own index entry cannot change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ecr_access import status as grant_status
from ecr_access.model import GrantKey
from ecr_access.status import PatchStatus

ReadSpec = Callable[[GrantKey], Mapping[str, Any] | None]

# How often a stalled delete asks the API server whether the grant changed: a GET, never a write.
CHANGE_POLL = 2.0

logger = logging.getLogger(__name__)


async def write_now(patch_status: PatchStatus, key: GrantKey, changes: Mapping[str, Any], what: str) -> bool:
    """Merge-patch the grant's status at once; a failure loses only the report (logged)."""
    try:
        await asyncio.to_thread(patch_status, key, changes)
    except Exception as error:
        logger.warning("Could not report %s on %s: %s", what, key, error, extra=key.log_ref())
        return False
    return True


async def report_progress(
    patch_status: PatchStatus, key: GrantKey, generation: int, status: dict[str, Any], work: asyncio.Future[Any],
    *, after: float, now: Callable[[], str],
) -> dict[str, Any]:
    """If `work` outlasts `after` seconds (AWS is slow), write Reconciling (Progressing) at once.
    Returns the status as it is then on the API server."""
    done, _ = await asyncio.wait({work}, timeout=after)
    if done:
        return status
    changes = grant_status.status_patch(status, grant_status.progress_status(generation, status, now()))
    if not changes or not await write_now(patch_status, key, changes, "work in progress"):
        return status
    return {name: value for name, value in {**status, **changes}.items() if value is not None}


async def wait_for_change(read_spec: ReadSpec | None, key: GrantKey, spec: Any, timeout: float) -> None:
    """Sleep until the grant's spec differs from `spec` on the API server (or the grant is gone), or
    `timeout`. Without `read_spec` (no API server to ask), just wait out the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    failed = False
    while loop.time() < deadline:
        await asyncio.sleep(min(CHANGE_POLL, max(0.0, deadline - loop.time())))
        if read_spec is None:
            continue
        try:
            now = await asyncio.to_thread(read_spec, key)
        except Exception as error:  # the API server away, or no `get` in RBAC: keep waiting, and say why
            if not failed:
                logger.warning("Could not read %s to notice an edit while its delete is stalled: %s", key, error,
                               extra=key.log_ref())
            failed = True
            continue
        if now != spec:
            return
