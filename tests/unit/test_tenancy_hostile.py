"""A tenant who may create grants in a namespace, against EcrGrantPolicy: the holes a hostile review
found, each shown closed. AWS is in memory at the ports."""

from __future__ import annotations

import json
from typing import Any

from ecr_access import revocation, tenancy
from ecr_access.conditions import Severity
from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.grants import LiveGrant
from ecr_access.model import Defaults
from ecr_access.reconcile import Reconciler
from tests.memory import Driver, Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"


def team_policy(name: str, team: str, roles: tuple[str, ...] = ("*",), **extra: Any) -> tenancy.GrantPolicy:
    return tenancy.parse_policy(name, {"namespaceSelector": {"matchLabels": {"team": team}}, "roles": list(roles),
                                       "repositories": ["*"], **extra})


def world(*roles: str) -> tuple[FakeIam, FakeEcr, Driver]:
    iam, ecr = FakeIam(ACCOUNT, roles), FakeEcr("ml/a")
    reconciler = Reconciler(iam, ecr, cluster_id="c", account=ACCOUNT,  # type: ignore[arg-type]
                            config=Config(coalesce_window=0.0, cache_ttl=0.0))
    return iam, ecr, Driver(reconciler)


def principals(ecr: FakeEcr) -> set[str]:
    text = ecr.policies["ml/a"]
    found: set[str] = set()
    for statement in json.loads(text)["Statement"] if text else []:
        value = statement["Principal"]["AWS"]
        found |= {value} if isinstance(value, str) else set(value)
    return found


def drift(driver: Driver, live: Grants) -> DriftChecker:
    checker = DriftChecker(driver.reconciler, interval=300.0, retry_delay=15.0, write_status=lambda key, patch: None,
                           warn=lambda grant, reason, message: None, now=lambda: "T")
    checker.indexes_ready(live)
    return checker


def test_a_suspended_grant_loses_what_a_revoked_policy_no_longer_permits() -> None:
    """Suspend means "change nothing for me", not "keep what the admin took back"."""
    iam, ecr, driver = world("evil-node")
    live = Grants(DEFAULTS, [team_policy("evil", "evil")])
    live.labels["evil"] = {"team": "evil"}
    key, spec = live.add("g", {"role": {"name": "evil-node"}, "repositories": [{"name": "ml/a"}]}, namespace="evil")
    driver.apply(key, spec, None, live)
    assert principals(ecr) == {f"arn:aws:iam::{ACCOUNT}:role/evil-node"}
    live.live[key] = LiveGrant(key, spec, active=False, applied=spec)  # suspended: its record, frozen
    watch = revocation.Watch()
    watch.policy("evil", live.policies[0], live, lambda ns: live.labels.get(ns, {}), listing=True)  # type: ignore[index]
    live.policies = []
    checker = drift(driver, live)

    checker.recheck(watch.policy("evil", None, live, lambda ns: live.labels.get(ns, {})))
    driver.run(checker.check(checker.due_for_retry()))

    assert principals(ecr) == set() and iam.roles["evil-node"].attached == set()


def test_a_retain_grant_no_policy_permits_hands_over_nothing_of_another_namespaces_policy() -> None:
    iam, ecr, driver = world("shared-node")
    live = Grants(DEFAULTS, [team_policy("ml", "ml")])
    live.labels.update({"ml": {"team": "ml"}, "evil": {}})
    ml = live.add("g", {"role": {"name": "shared-node"}, "repositories": [{"name": "ml/a"}]}, namespace="ml")
    driver.apply(*ml, None, live)
    evil = live.add("x", {"role": {"name": "shared-node"}, "repositories": [{"name": "ml/a"}],
                          "deletionPolicy": "Retain"}, namespace="evil")
    assert driver.apply(*evil, None, live).role.reason == "NotPermitted"
    live.live[evil[0]] = LiveGrant(evil[0], evil[1], active=False, handing_over=True, uid="u1")

    driver.release(evil[0], evil[1], evil[1], live, "u1")
    live.remove(evil[0])

    assert iam.roles["shared-node"].tags.get("ecraccess.io/attached") == "ReadOnly", "the record stays ours"
    live.remove(ml[0])
    driver.release(ml[0], ml[1], ml[1], live)
    assert iam.roles["shared-node"].attached == set(), "so the operator can still detach what it attached"
    assert principals(ecr) == set()


def test_a_failed_removal_of_revoked_access_is_reported_and_retried_not_called_done() -> None:
    _, ecr, driver = world("node")
    live = Grants(DEFAULTS, [team_policy("ml", "ml")])
    live.labels["ml"] = {"team": "ml"}
    key, spec = live.add("g", {"role": {"name": "node"}, "managedPolicy": "None",
                               "repositories": [{"name": "ml/a"}]}, namespace="ml")
    driver.apply(key, spec, None, live)
    live.policies = []
    ecr.down = True

    outcome = driver.apply(key, spec, None, live)

    [repo] = outcome.repositories
    assert (repo.finding.reason, repo.finding.severity) == ("AwsUnavailable", Severity.TRANSIENT)
    assert outcome.transient, "Reconciling, and retried after retry_delay"
    ecr.down = False
    assert driver.apply(key, spec, None, live).repositories[0].finding.reason == "NotPermitted"
    assert principals(ecr) == set()


def test_a_repository_a_namespace_may_not_grant_is_not_said_to_exist_or_not() -> None:
    _, _, driver = world("node")
    live = Grants(DEFAULTS, [tenancy.parse_policy("ml", {"namespaceSelector": {"matchLabels": {"team": "ml"}},
                                                         "roles": ["*"], "repositories": ["*:repository/ml/*"]})])
    live.labels["evil"] = {"team": "ml"}
    key, spec = live.add("g", {"role": {"name": "node"}, "repositories": [{"name": "ml/a"}, {"name": "prod/nope"}]},
                         namespace="evil")

    outcome = driver.apply(key, spec, None, live)

    assert [item.finding.reason for item in outcome.repositories] == ["Applied", "NotPermitted"]


def test_a_policy_changed_while_the_watch_was_lost_is_re_judged_when_kopf_lists_again() -> None:
    live = Grants(DEFAULTS, [team_policy("p", "evil")])
    live.labels["evil"] = {"team": "evil"}
    live.add("g", {"role": {"name": "node"}, "repositories": [{"name": "ml/a"}]}, namespace="evil")
    watch = revocation.Watch()
    labels = lambda ns: live.labels.get(ns, {})  # noqa: E731

    assert watch.policy("p", live.policies[0], live, labels, listing=True) == set(), "start-up: judged with it"  # type: ignore[index]
    narrowed = team_policy("p", "evil", roles=("arn:aws:iam::*:role/other",))
    assert watch.policy("p", narrowed, live, labels, listing=True) != set(), "re-listed, and different"
    assert watch.policy("p", narrowed, live, labels, listing=True) == set(), "re-listed, unchanged"


def test_a_tenant_chosen_name_cannot_stall_the_operator_on_a_glob() -> None:
    """Seven stars against 200 characters: a backtracking regex would take years; this takes microseconds."""
    pattern = "arn:aws:ecr:*:1:repository/*-*-*-*-*-*-prod"
    name = "arn:aws:ecr:us-west-2:1:repository/" + "-" * 200

    assert tenancy.glob(pattern, name) is False
    assert tenancy.glob(pattern, "arn:aws:ecr:us-west-2:1:repository/a-b-c-d-e-f-prod") is True
