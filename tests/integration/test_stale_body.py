"""A change handler that kopf runs again on a body older than what the handler's first run wrote.

Found at N=10,000 (`make bench-large`): kopf's watch lagged minutes behind the API server, the
per-object worker had exited (kopf waits `consistency_timeout`, 5 s, for its own patch to come
back, then `idle_timeout`), and an event from before the handler's patch, a progress write without
kopf's last-handled annotation, started the create handler a second time: 2 grants of 10,000 were
applied twice (another run, whose log was not kept, had 14 grants with a second `Applied` Event). The
body is older than what this process had kopf write, so the handler reads the grant afresh and
reports from that."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import kopf
import pytest

from ecr_access import grants, handlers
from ecr_access.model import GrantKey
from tests.integration.cluster import Cluster, spec
from tests.integration.conftest import World


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(handlers.events, "post", lambda body, kind, reason, message: seen.append(reason))
    return seen


def _call_with(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    patch = kopf.Patch()
    cluster.loop.run_until_complete(handlers.on_grant_create(
        body=kopf.Body(copy.deepcopy(body)), patch=patch, memo=cluster.memo, **cluster.indexes()))
    return dict(patch)


def _counting_applies(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> list[GrantKey]:
    applies: list[GrantKey] = []
    apply = cluster.world.reconciler.apply

    async def counted(key: GrantKey, *args: Any, **kwargs: Any) -> Any:
        applies.append(key)
        return await apply(key, *args, **kwargs)

    monkeypatch.setattr(cluster.world.reconciler, "apply", counted)
    return applies


def test_a_rerun_on_a_body_from_before_the_first_runs_patch_reports_nothing_new(
        world: World, cluster: Cluster, posted: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    world.create_role()
    world.create_repository("ml/trainer")
    stale = copy.deepcopy(cluster.put("g", spec("ml/trainer")))  # the body as kopf first saw it
    applies = _counting_applies(cluster, monkeypatch)
    cluster.call(handlers.on_grant_create, "g")
    assert posted == ["Applied"] and len(applies) == 1
    assert cluster.conditions("g")["Ready"]["status"] == "True"

    again = _call_with(cluster, stale)  # kopf hands the handler the old body once more

    assert posted == ["Applied"], "one change, one Applied Event"
    assert len(applies) == 2, "applied again all the same: what AWS gets is never decided from a status"
    assert world.ours("ml/trainer")
    assert "status" not in again and grants.APPLIED_ANNOTATION not in again.get("metadata", {}).get(
        "annotations", {}), "nothing to write either"


def test_a_rerun_whose_fresh_read_lacks_the_first_runs_status_applies_and_reports_as_usual(
        world: World, cluster: Cluster, posted: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The fresh read is the truth either way: if it does not show the grant Ready at this
    generation (kopf's status write did not land), the rerun applies and reports from it."""
    world.create_role()
    world.create_repository("ml/trainer")
    stale = copy.deepcopy(cluster.put("g", spec("ml/trainer")))
    applies = _counting_applies(cluster, monkeypatch)
    cluster.call(handlers.on_grant_create, "g")
    cluster.bodies["g"]["status"] = {}  # the record landed, the status did not
    again = _call_with(cluster, stale)
    assert len(applies) == 2
    assert again["status"]["conditions"][0]["status"] == "True"


def test_without_a_way_to_read_the_grant_the_handler_runs_as_before(
        world: World, cluster: Cluster, posted: list[str]) -> None:
    """`Runtime.read_grant` is None where there is no API server to ask (the planner)."""
    world.create_role()
    world.create_repository("ml/trainer")
    cluster.memo.runtime = dataclasses.replace(cluster.memo.runtime, read_grant=None)
    stale = copy.deepcopy(cluster.put("g", spec("ml/trainer")))
    cluster.call(handlers.on_grant_create, "g")
    _call_with(cluster, stale)
    assert posted == ["Applied", "Applied"]
