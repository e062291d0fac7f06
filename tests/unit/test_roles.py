"""The role is exactly the one the spec names, and one role is one record however it is spelled.

AWS is in memory at the ports (`tests.unit.fakes`), case-insensitive about role names as IAM is
(moto is not, so this cannot be tested against moto).
"""

from __future__ import annotations

from typing import Any

from ecr_access import attachments
from ecr_access.conditions import Severity
from ecr_access.config import Config
from ecr_access.model import Defaults
from ecr_access.reconcile import Reconciler
from tests.memory import Driver, Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"


def Index() -> Grants:
    return Grants(DEFAULTS)


async def no_sleep(_: float) -> None:
    """The pause between writes against a concurrent writer, skipped."""


def reconciler(iam: FakeIam, ecr: FakeEcr, clock: Any = None, **settings: float) -> Driver:
    extra = {"clock": clock} if clock is not None else {}
    return Driver(Reconciler(iam, ecr, cluster_id="c", account=ACCOUNT,  # type: ignore[arg-type]
                             config=Config(**{"coalesce_window": 0.0, **settings}), sleep=no_sleep, **extra))


def test_an_arn_with_another_path_is_never_the_role_even_from_the_cache() -> None:
    iam, ecr, index = FakeIam(ACCOUNT, ["x"], paths={"x": "/team-a/"}), FakeEcr("ml/a"), Index()
    real = iam.roles["x"].arn
    # Caches that last: the second apply and every sync answer from the cache (where the check was missing).
    rec = reconciler(iam, ecr, cache_ttl=600.0, role_cache_ttl=600.0)
    key, spec = index.add("g", {"role": {"arn": f"arn:aws:iam::{ACCOUNT}:role/team-b/x"},
                                "repositories": [{"name": "ml/a"}]})

    outcomes = [rec.apply(key, spec, None, index) for _ in range(3)]

    assert [outcome.role.reason for outcome in outcomes] == ["RoleNotFound"] * 3, "no flapping to Ready"
    assert all(outcome.role.severity is Severity.TERMINAL for outcome in outcomes)
    assert ecr.policies["ml/a"] is None, f"{real} is not the role the spec names: it must not be written"
    assert iam.roles["x"].attached == set()


def test_an_arn_in_another_partition_is_not_the_role() -> None:
    iam, ecr, index = FakeIam(ACCOUNT, ["x"]), FakeEcr("ml/a"), Index()
    rec = reconciler(iam, ecr, role_cache_ttl=600.0)
    key, spec = index.add("g", {"role": {"arn": f"arn:aws-cn:iam::{ACCOUNT}:role/x"},
                                "repositories": [{"name": "ml/a"}]})

    assert rec.apply(key, spec, None, index).role.reason == "RoleNotFound"
    assert ecr.policies["ml/a"] is None


def test_two_spellings_of_one_role_share_one_record() -> None:
    iam, ecr, index = FakeIam(ACCOUNT, ["MyRole"]), FakeEcr("ml/a", "ml/b"), Index()
    rec = reconciler(iam, ecr, cache_ttl=0.0, role_cache_ttl=0.0)
    upper = index.add("upper", {"role": {"name": "MyRole"}, "repositories": [{"name": "ml/a"}]})
    lower = index.add("lower", {"role": {"name": "myrole"}, "repositories": [{"name": "ml/b"}]})
    for key, spec in (upper, lower):
        assert rec.apply(key, spec, None, index).role.ok
    assert upper[1].role.key == lower[1].role.key

    del index.live[lower[0]]
    rec.release(lower[0], lower[1], lower[1], index)

    assert READ_ONLY in iam.roles["myrole"].attached, "MyRole's grant still wants it"
    assert iam.roles["myrole"].tags[attachments.ATTACHED_TAG] == "ReadOnly"

    del index.live[upper[0]]
    rec.release(upper[0], upper[1], upper[1], index)

    assert iam.roles["myrole"].attached == set()
    assert iam.roles["myrole"].tags == {}, "the ledger is cleared once nothing wants the policy"


def test_a_role_edit_moves_the_want_to_the_new_role() -> None:
    iam, ecr, index = FakeIam(ACCOUNT, ["old", "new"]), FakeEcr("ml/a"), Index()
    rec = reconciler(iam, ecr, cache_ttl=0.0, role_cache_ttl=0.0)
    key, before = index.add("g", {"role": {"name": "old"}, "repositories": [{"name": "ml/a"}]})
    rec.apply(key, before, None, index)

    key, after = index.add("g", {"role": {"name": "new"}, "repositories": [{"name": "ml/a"}]})
    rec.apply(key, after, before, index)  # `before` is the applied record: the old role is recomputed

    assert iam.roles["old"].attached == set() and iam.roles["old"].tags == {}
    assert READ_ONLY in iam.roles["new"].attached


def test_the_shared_attached_tag_is_written_from_tags_read_just_now() -> None:
    """Another cluster's operator recorded its own attachment since this one last read the role: the
    `attached` tag both share must not be rewritten from the stale copy (that would strand theirs)."""
    iam, ecr, index = FakeIam(ACCOUNT, ["node"]), FakeEcr("ml/a"), Index()
    now = [0.0]
    rec = reconciler(iam, ecr, clock=lambda: now[0], cache_ttl=600.0, role_cache_ttl=600.0)
    key, none = index.add("g", {"role": {"name": "node"}, "repositories": [{"name": "ml/a"}], "managedPolicy": "None"})
    rec.apply(key, none, None, index)  # reads (and caches) the role: no tags yet
    other = iam.roles["node"]  # the other cluster attaches PullOnly, and records it
    other.tags.update({"ecraccess.io/ffff0000": "PullOnly", attachments.ATTACHED_TAG: "PullOnly"})
    other.attached.add("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly")
    now[0] = 100.0  # well within the cache's age, but not "just now"

    key, read_only = index.add("g", {"role": {"name": "node"}, "repositories": [{"name": "ml/a"}]})
    rec.apply(key, read_only, none, index)

    assert iam.roles["node"].tags[attachments.ATTACHED_TAG] == "PullOnly ReadOnly"
