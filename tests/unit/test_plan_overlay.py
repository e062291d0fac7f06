"""`changeset`: the cluster once the files are applied (or deleted), and which grants that affects;
and a whole `plan` over in-memory ports."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from ecr_access import changeset, grants, plan, policy
from ecr_access.clusterview import View
from ecr_access.config import Config
from ecr_access.manifests import Objects
from ecr_access.model import REFERENCE_ACTIONS, Defaults, GrantKey
from ecr_access.ports import NoOtherAccounts
from ecr_access.spec import parse_spec
from ecr_access.watches import FINALIZER
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)


def grant(name: str, namespace: str = "team-a", *repos: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"role": {"name": "node"}, "repositories": [{"name": repo} for repo in repos or ("ml/a",)],
                     **spec}}


def live(body: dict[str, Any]) -> dict[str, Any]:
    found = copy.deepcopy(body)
    spec = parse_spec(found["spec"], DEFAULTS)
    found["metadata"].update(uid="u1", generation=3, finalizers=[FINALIZER], labels={"old": "label"},
                             annotations={grants.APPLIED_ANNOTATION: grants.applied_annotation(spec), "note": "x"})
    found["status"] = {"observedGeneration": 3}
    return found


def selecting(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrGrantPolicy", "metadata": {"name": name},
            "spec": {"namespaceSelector": {"matchLabels": labels}, "roles": ["*"], "repositories": ["*"]}}


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def test_an_update_keeps_what_only_the_cluster_knows_and_counts_a_new_generation() -> None:
    before = live(grant("g"))
    after = changeset.merged(before, grant("g", "team-a", "ml/b"))
    meta = after["metadata"]
    assert after["spec"]["repositories"] == [{"name": "ml/b"}]
    assert (meta["uid"], meta["generation"], meta["finalizers"]) == ("u1", 4, [FINALIZER])
    assert meta["annotations"][grants.APPLIED_ANNOTATION] == before["metadata"]["annotations"][
        grants.APPLIED_ANNOTATION]  # what the operator applied last: the edit is recomputed from it
    assert meta["labels"] == {"old": "label"} and after["status"] == {"observedGeneration": 3}
    assert changeset.merged(before, grant("g"))["metadata"]["generation"] == 3  # the same spec: no new generation
    assert changeset.merged(None, grant("g"))["metadata"]["generation"] == 1


def test_a_deleted_grant_is_deleting_with_the_finalizer_on_and_a_namespace_takes_its_grants() -> None:
    cluster = Objects.of([live(grant("g")), live(grant("h", "team-b")), namespace("team-b"),
                          selecting("p", {"team": "a"})])
    files = Objects.of([grant("g"), namespace("team-b"), selecting("p", {})])
    after = changeset.deleted(cluster, files, "2026-01-01T00:00:00Z", FINALIZER)
    for key in (GrantKey("team-a", "g"), GrantKey("team-b", "h")):
        meta = after.grants[key]["metadata"]
        assert meta["deletionTimestamp"] == "2026-01-01T00:00:00Z" and FINALIZER in meta["finalizers"]
    assert (after.namespaces, after.policies) == ({}, {})
    view = View(after, DEFAULTS, enforce=True, finalizer=FINALIZER)
    assert view.entries == {}  # Delete grants leave the index while they are released


def test_a_deleting_retain_grant_stays_in_the_index_handing_over() -> None:
    cluster = Objects.of([live(grant("g", deletionPolicy="Retain"))])
    after = changeset.deleted(cluster, Objects.of([grant("g")]), "now", FINALIZER)
    assert View(after, DEFAULTS, enforce=True, finalizer=FINALIZER).entries[GrantKey("team-a", "g")].handing_over


def test_the_grants_a_policy_namespace_or_account_in_the_files_affects() -> None:
    cluster = Objects.of([live(grant("a1")), live(grant("b1", "team-b")), live(grant("c1", "team-c")),
                          namespace("team-a", team="a"), namespace("team-b", team="b"), namespace("team-c", team="c"),
                          selecting("p", {"team": "a"})])

    def affected(*files: dict[str, Any]) -> set[str]:
        given = Objects.of(files)
        after = changeset.overlaid(cluster, given)
        views = [View(objects, DEFAULTS, enforce=True, finalizer=FINALIZER) for objects in (cluster, after)]
        return {key.name for key in changeset.affected(*views, given, set())}

    assert affected(selecting("p", {"team": "b"})) == {"a1", "b1"}  # the old version's and the new one's
    assert affected(selecting("new", {"team": "c"})) == {"c1"}
    assert affected(namespace("team-b", team="a")) == {"b1"}
    assert affected(grant("x", "team-c")) == {"x"}
    account = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": "central"},
               "spec": {"accountId": ACCOUNT, "assumeRole": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/x"}}}
    assert affected(account) == {"a1", "b1", "c1"}  # every grant touches the account it names


def test_a_whole_plan_over_in_memory_ports_writes_nothing_and_says_what_an_apply_would() -> None:
    iam, ecr = FakeIam(ACCOUNT, ["node"]), FakeEcr("ml/a")

    class Accounts(NoOtherAccounts):
        def bind(self, lookup: Any, listing: Any) -> None:
            pass

    found = asyncio.run(plan.compute(
        Objects.of([selecting("all", {})]), Objects.of([grant("g", managedPolicy="PullOnly")]), delete=False,
        offline=False, defaults=DEFAULTS, config=Config(), cluster_id="c", iam=iam, ecr=ecr, others=Accounts(),
        now=lambda: "now"))

    assert ecr.policies == {"ml/a": None} and iam.roles["node"].attached == set() and iam.roles["node"].tags == {}
    assert not {"SetRepositoryPolicy", "TagRole", "AttachRolePolicy"} & set(ecr.calls + iam.calls)
    (repo,) = found.repositories
    sid = policy.statement_sid("c", REFERENCE_ACTIONS)
    assert [(item.sid, item.principals_added) for item in repo.statements] == [
        (sid, (f"arn:aws:iam::{ACCOUNT}:role/node",))]
    assert found.roles[0].attach == ("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",)
    assert json.loads(json.dumps([item.operation for item in found.writes])) == [
        "TagRole", "AttachRolePolicy", "SetRepositoryPolicy"]
