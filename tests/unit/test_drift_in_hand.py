"""A drift pass leaves a grant that its change handler has in hand to that handler (`cycle.InHand`).

Found by the N=1,000 benchmark: a pass that ran through the burst checked grants whose create
handler was still applying them, or whose handler's status had not reached the index yet. Both
cycles reported the grant, each from its own `previous` status: the pass wrote the status again
with a new lastTransitionTime, and a second `Applied` Event was posted (29 grants of 1,000 had
two), in what the benchmark counted as the steady state."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from ecr_access.config import Config
from ecr_access.cycle import InHand
from ecr_access.drift import DriftChecker
from ecr_access.grants import LiveGrant
from ecr_access.model import Defaults, GrantKey
from ecr_access.reconcile import Reconciler
from tests.memory import Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
SETTLE = 20.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class World:
    live: Grants
    drift: DriftChecker
    in_hand: InHand
    clock: Clock
    written: list[GrantKey] = dataclasses.field(default_factory=list)
    posted: list[tuple[GrantKey, str]] = dataclasses.field(default_factory=list)

    def check(self) -> int:
        self.written.clear()
        self.posted.clear()
        return asyncio.run(self.drift.check()).checked


def world() -> World:
    clock = Clock()
    live = Grants(DEFAULTS)
    for name in ("mine", "other"):
        live.add(name, {"role": {"name": "node-a"}, "repositories": [{"name": "ml/a"}]})
    reconciler = Reconciler(FakeIam(ACCOUNT, ["node-a"]), FakeEcr("ml/a"),  # type: ignore[arg-type]
                            cluster_id="c", account=ACCOUNT, config=Config(coalesce_window=0.0))
    in_hand = InHand(settle=SETTLE, clock=clock)
    made = World(live, None, in_hand, clock)  # type: ignore[arg-type]
    made.drift = DriftChecker(reconciler, interval=SETTLE, retry_delay=15.0,
                              write_status=lambda key, patch: made.written.append(key),
                              warn=lambda grant, reason, message: made.posted.append((grant.key, reason)),
                              inform=lambda grant, reason, message: made.posted.append((grant.key, reason)),
                              now=lambda: "T", in_hand=in_hand)
    made.drift.indexes_ready(live)
    return made


MINE, OTHER = GrantKey("default", "mine"), GrantKey("default", "other")


def test_a_pass_leaves_a_grant_its_handler_is_applying_to_the_handler() -> None:
    w = world()
    with w.in_hand.holding(MINE):
        checked = w.check()
    assert checked == 1
    assert w.written == [OTHER], "only the grant no handler holds has its status written by the pass"
    assert w.posted == [(OTHER, "Applied")], "one Applied Event per grant: the handler posts its own"


def test_until_the_index_shows_the_handlers_record_the_grant_stays_the_handlers() -> None:
    """kopf writes the status and the applied record when the handler returns; the index sees them
    later. Until it shows the record (applied is the spec), the pass still leaves the grant."""
    w = world()
    with w.in_hand.holding(MINE):
        pass
    w.clock.now += 1.0
    assert w.check() == 1 and MINE not in w.written, "the handler ended, but its patch is not in the index yet"
    grant = w.live.live[MINE]
    w.live.live[MINE] = LiveGrant(MINE, grant.spec, applied=grant.spec)  # the handler's patch reaches the index
    assert w.check() == 2 and MINE in w.written, "the index shows the record: the grant is the pass's again"


def test_a_record_that_never_catches_up_keeps_the_pass_away_for_at_most_settle_seconds() -> None:
    """A record that does not move on (what the previous spec left is unsettled), or that someone
    edited by hand, must not keep drift repair away from the grant for good."""
    w = world()
    with w.in_hand.holding(MINE):
        pass
    w.clock.now += SETTLE - 1.0
    assert w.check() == 1
    w.clock.now += 2.0
    assert w.check() == 2 and MINE in w.written


def test_a_handler_running_twice_at_once_holds_the_grant_until_both_end() -> None:
    in_hand = InHand(settle=0.0, clock=Clock())
    grant = LiveGrant(MINE, Grants(DEFAULTS).add("mine", {"role": {"name": "r"}, "repositories": [
        {"name": "ml/a"}]})[1])
    with in_hand.holding(MINE):
        with in_hand.holding(MINE):
            pass
        assert in_hand.owns(grant), "the outer cycle still runs"
    assert not in_hand.owns(dataclasses.replace(grant, applied=grant.spec))


def test_a_grant_left_when_asked_for_by_name_is_checked_again_after_the_retry_delay() -> None:
    """A recheck names grants because what judges them changed (a policy: `revocation`): the handler
    that has the grant may have judged it before the change, so the pass checks it again later."""
    w = world()
    with w.in_hand.holding(MINE):
        report = asyncio.run(w.drift.check(only=[MINE]))
    assert (report.checked, report.left) == (0, 1)
    assert MINE in w.drift.due_for_retry()


def test_a_reconcile_now_request_is_checked_even_while_a_handler_has_the_grant() -> None:
    """Its value must be echoed in status (`kubectl wait` on it would hang otherwise)."""
    w = world()
    with w.in_hand.holding(MINE):
        report = asyncio.run(w.drift.check(only=[MINE], handled={MINE: "t1"}))
    assert (report.checked, report.left) == (1, 0)
    assert MINE in w.written


def test_a_grant_the_index_shows_unapplied_is_its_handlers_before_the_handler_begins() -> None:
    """kopf indexes an object before it runs its handlers, and under a burst the handler of a new
    grant may begin seconds later: a pass in between must not apply and report it too."""
    w = world()
    w.in_hand.expect(MINE)  # the index function saw "mine" with no applied record
    assert w.check() == 1 and MINE not in w.written
    w.clock.now += SETTLE + 1.0  # no handler came (the record was edited by hand): the pass's again
    assert w.check() == 2 and MINE in w.written


READY = {"observedGeneration": 1, "conditions": [
    {"type": "Ready", "status": "True", "reason": "Applied", "message": "m", "lastTransitionTime": "T"}]}


def test_the_record_without_the_handlers_status_keeps_the_grant_the_handlers() -> None:
    """kopf writes a handler's patch in two requests, the object's metadata (the applied record)
    and then its status subresource, and under a burst the index sees the first seconds before the
    second (6 of 1,000 grants got a second `Applied` Event from a pass in between, after the
    record alone was enough). The grant is the pass's again only once the index shows both."""
    w = world()
    with w.in_hand.holding(MINE):
        w.in_hand.writes(MINE, READY)
    w.clock.now += 1.0
    grant = w.live.live[MINE]
    w.live.live[MINE] = LiveGrant(MINE, grant.spec, generation=1, applied=grant.spec)  # the metadata patch
    assert w.check() == 1 and MINE not in w.written, "the index shows the record, not yet the status"
    w.live.live[MINE] = dataclasses.replace(w.live.live[MINE], status_json=json.dumps(READY))  # the status patch
    assert w.check() == 2 and MINE in w.written, "the index shows the handler's whole patch"


def test_a_status_the_server_reworded_still_releases_the_grant() -> None:
    """What is compared is each condition's type, status and reason: a message or a time the API
    server stored otherwise (pruned, reformatted) must not keep the pass away for `settle` seconds."""
    w = world()
    with w.in_hand.holding(MINE):
        w.in_hand.writes(MINE, READY)
    stored = {"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Applied", "message": "other", "lastTransitionTime": "U"}]}
    grant = w.live.live[MINE]
    w.live.live[MINE] = LiveGrant(MINE, grant.spec, generation=1, applied=grant.spec, status_json=json.dumps(stored))
    assert w.check() == 2 and MINE in w.written
