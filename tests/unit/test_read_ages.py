"""How old a cached role may be, by who asks (issue 17: role reads grew with grants, not roles).

- A change-driven apply may use an answer that arrived after its change was noticed, however long
  it queued since (`ApplyMode.noticed`): at N=10,000 the applies of a burst queued for minutes
  under the IAM rate limit, and each re-read a role that an apply of the same burst had just read.
- A repository's principals, the roles of every other grant naming it, may be as old as the last
  drift pass (`RoleDirectory.principal`): with `cache_ttl` a sync for one grant re-read every
  other grant's role.

AWS is in memory at the ports; the clock is the test's, so nothing is timed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from ecr_access.conditions import Outcome
from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.model import Defaults
from ecr_access.modes import ApplyMode
from ecr_access.ports import RoleInfo
from ecr_access.reconcile import Reconciler
from tests.memory import Driver, Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
TTL = 60.0
INTERVAL = 300.0
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"


class NamingIam(FakeIam):
    """Counts GetRole by role name."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(ACCOUNT, names)
        self.reads: Counter[str] = Counter()

    async def get_role(self, name: str) -> RoleInfo | None:
        self.reads[name] += 1
        return await super().get_role(name)


def ok(outcome: Outcome) -> bool:
    return all(finding.ok for finding in outcome.findings)


async def no_sleep(_: float) -> None:
    """The pause between writes against a concurrent writer, skipped."""


def world(*roles: str) -> tuple[NamingIam, FakeEcr, Driver, Grants, list[float]]:
    iam, ecr, now = NamingIam(list(roles)), FakeEcr("ml/a", "ml/b"), [0.0]
    config = Config(coalesce_window=0.0, cache_ttl=TTL, role_cache_ttl=TTL, resync_interval=INTERVAL)
    reconciler = Reconciler(iam, ecr, cluster_id="c", account=ACCOUNT, config=config,  # type: ignore[arg-type]
                            sleep=no_sleep, clock=lambda: now[0])
    return iam, ecr, Driver(reconciler), Grants(DEFAULTS), now


def test_a_queued_change_uses_a_role_read_after_it_was_noticed() -> None:
    """Two grants on one role arrive together; the second's apply gets its turn long after the
    first read the role: that read is younger than the second change, so it is not read again."""
    iam, _ecr, rec, live, now = world("node")
    first = live.add("a", {"role": {"name": "node"}, "repositories": [{"name": "ml/a"}]})
    second = live.add("b", {"role": {"name": "node"}, "repositories": [{"name": "ml/b"}]})
    noticed = ApplyMode.change(noticed=0.0)  # both changes were noticed at 0
    assert ok(rec.apply(*first, None, live, noticed))
    assert iam.reads["node"] == 1
    listed = iam.calls.count("ListAttachedRolePolicies")

    now[0] = 10 * TTL  # the second apply queued this long behind the rate limit
    assert ok(rec.apply(*second, None, live, noticed))

    assert iam.reads["node"] == 1, "re-read a role read after the change was noticed"
    assert iam.calls.count("ListAttachedRolePolicies") == listed
    # A change noticed after that read does read again: `cache_ttl` still bounds a new change.
    assert ok(rec.apply(*second, second[1], live, ApplyMode.change(noticed=now[0])))
    assert iam.reads["node"] == 2


def test_a_sync_for_one_grant_does_not_re_read_the_other_grants_roles() -> None:
    """A repository's principals are every grant's role: a change to one grant re-reads its own
    role (older than `cache_ttl`) but not the others', however old; a drift pass re-reads them all."""
    iam, ecr, rec, live, now = world("node-a", "node-b", "node-c")
    grants = [live.add(name, {"role": {"name": f"node-{name}"}, "repositories": [{"name": "ml/a"}]})
              for name in ("a", "b", "c")]
    for key, spec in grants:
        assert ok(rec.apply(key, spec, None, live, ApplyMode.change(noticed=now[0])))
    assert iam.reads == Counter({"node-a": 1, "node-b": 1, "node-c": 1})

    now[0] = 10 * INTERVAL  # the others' roles are far older than cache_ttl
    key, spec = grants[0]
    edited = live.add("a", {"role": {"name": "node-a"}, "repositories": [{"name": "ml/a"}, {"name": "ml/b"}]})
    assert ok(rec.apply(*edited, spec, live, ApplyMode.change(noticed=now[0])))
    assert iam.reads == Counter({"node-a": 2, "node-b": 1, "node-c": 1})
    assert principals(ecr, "ml/a") == {iam.roles[f"node-{name}"].arn for name in "abc"}

    drift = DriftChecker(rec.reconciler, interval=INTERVAL, retry_delay=15.0, write_status=lambda key, patch: None,
                         warn=lambda grant, reason, message: None, now=lambda: "T")
    drift.indexes_ready(live)
    now[0] += 1.0  # the pass begins after the last read
    rec.run(drift.check())
    assert iam.reads == Counter({"node-a": 3, "node-b": 2, "node-c": 2}), "a pass reads every role once"


def principals(ecr: FakeEcr, name: str) -> set[str]:
    found: set[str] = set()
    for item in json.loads(ecr.policies[name] or '{"Statement": []}')["Statement"]:
        aws = item["Principal"]["AWS"]
        found |= {aws} if isinstance(aws, str) else set(aws)
    return found


class SlowIam(NamingIam):
    """Each read takes `LATENCY` on the test's clock; reads made together overlap, as threads do."""

    LATENCY = 1.5  # longer than `ownership.FRESH`

    def __init__(self, names: list[str], now: list[float]) -> None:
        super().__init__(names)
        self.now = now

    async def _wait(self) -> None:
        done = self.now[0] + self.LATENCY
        for _ in range(3):
            await asyncio.sleep(0)
        self.now[0] = max(self.now[0], done)

    async def get_role(self, name: str) -> RoleInfo | None:
        await self._wait()
        return await super().get_role(name)

    async def list_attached_role_policies(self, role_name: str) -> frozenset[str]:
        await self._wait()
        return await super().list_attached_role_policies(role_name)


def test_a_new_role_is_read_once_even_when_each_read_is_slow() -> None:
    """A first attach writes the `attached` tag all clusters share, so it is planned on tags read
    at most `ownership.FRESH` ago. The role and its policies are read together, so the plan comes
    right after both answers, and neither is read twice."""
    now = [0.0]
    iam, ecr = SlowIam(["node"], now), FakeEcr("ml/a")
    config = Config(coalesce_window=0.0, cache_ttl=TTL, role_cache_ttl=TTL, resync_interval=INTERVAL)
    rec = Driver(Reconciler(iam, ecr, cluster_id="c", account=ACCOUNT, config=config,  # type: ignore[arg-type]
                            sleep=no_sleep, clock=lambda: now[0]))
    live = Grants(DEFAULTS)
    grant = live.add("a", {"role": {"name": "node"}, "repositories": [{"name": "ml/a"}]})

    assert ok(rec.apply(*grant, None, live, ApplyMode.change(noticed=now[0])))

    assert READ_ONLY in iam.roles["node"].attached
    assert Counter(call for call in iam.calls if call in ("GetRole", "ListAttachedRolePolicies")) == Counter(
        {"GetRole": 1, "ListAttachedRolePolicies": 1}), iam.calls


def test_a_role_first_read_as_a_principal_is_listed_once() -> None:
    """Grant b's role is first read as a principal of a repository that grant a's apply synced.
    Its own apply, later, plans a first attach, so it reads the tags again (they are over
    `ownership.FRESH` old), but not the attached policies it has just listed."""
    iam, _ecr, rec, live, now = world("node-a", "node-b")
    a = live.add("a", {"role": {"name": "node-a"}, "repositories": [{"name": "ml/a"}]})
    b = live.add("b", {"role": {"name": "node-b"}, "repositories": [{"name": "ml/a"}]})
    assert ok(rec.apply(*a, None, live, ApplyMode.change(noticed=now[0])))
    assert iam.reads["node-b"] == 1  # as ml/a's principal

    now[0] = 5.0
    assert ok(rec.apply(*b, None, live, ApplyMode.change(noticed=now[0])))

    assert READ_ONLY in iam.roles["node-b"].attached
    assert iam.reads["node-b"] == 2, "the tags of a first attach are read just before it"
    assert iam.calls.count("ListAttachedRolePolicies") == 2, "one listing per role"
