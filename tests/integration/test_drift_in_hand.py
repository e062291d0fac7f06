"""A drift pass and a grant's change handler never both report the grant (`cycle.InHand`), through
the real handler: while the create handler applies the grant, a pass leaves it alone, so there is one
`Applied` Event and one status write, the handler's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ecr_access import handlers, watches
from ecr_access.drift import DriftChecker
from ecr_access.model import GrantKey
from tests.integration.cluster import Cluster, spec
from tests.integration.conftest import World


def test_a_pass_during_a_create_handler_leaves_the_grant_to_it(world: World, cluster: Cluster,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.put("g", spec("ml/trainer"))
    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(handlers.events, "post", lambda body, kind, reason, message: posted.append(("handler", reason)))
    written: list[GrantKey] = []
    drift = DriftChecker(world.reconciler, interval=300.0, retry_delay=15.0,
                         write_status=lambda key, patch: written.append(key),
                         warn=lambda grant, reason, message: posted.append(("drift", reason)),
                         inform=lambda grant, reason, message: posted.append(("drift", reason)),
                         now=handlers.now, in_hand=cluster.memo.runtime.in_hand)
    drift.indexes_ready(watches.live(cluster.indexes(), cluster.config))
    reached, go = asyncio.Event(), asyncio.Event()
    apply = world.reconciler.apply

    async def held_apply(*args: Any, **kwargs: Any) -> Any:
        if not reached.is_set():  # the handler's apply: it waits, in the middle of its cycle
            reached.set()
            await go.wait()
        return await apply(*args, **kwargs)

    monkeypatch.setattr(world.reconciler, "apply", held_apply)

    async def create_while_a_pass_runs() -> Any:
        handler = asyncio.ensure_future(cluster.handler_call(handlers.on_grant_create, "g"))
        await asyncio.wait_for(reached.wait(), timeout=30)
        report = await drift.check()
        go.set()
        await asyncio.wait_for(handler, timeout=30)
        return report

    report = cluster.loop.run_until_complete(create_while_a_pass_runs())

    assert (report.checked, report.left) == (0, 1)
    assert written == [], "the pass wrote no status: the handler reports its own grant"
    assert posted == [("handler", "Applied")]
    assert world.ours("ml/trainer"), "the handler applied it"
