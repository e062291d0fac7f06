"""EcrGrantPolicy enforcement against moto: what is not permitted is never written, and a revoked
grant is undone as a delete would undo it, within one re-check, at the cost of its own repositories."""

from __future__ import annotations

from typing import Any

from ecr_access import revocation, tenancy
from ecr_access.conditions import Severity
from ecr_access.drift import DriftChecker
from ecr_access.model import GrantKey
from ecr_access.status import build_status
from tests.integration.conftest import ACCOUNT, CLOUD_ID, NODE_ROLE, READ_ONLY, Grants, World

NODE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{NODE_ROLE}"


def team_policy(name: str = "team-ml", team: str = "ml", repositories: tuple[str, ...] = ("ml/*",),
                **extra: Any) -> tenancy.GrantPolicy:
    return tenancy.parse_policy(name, {
        "namespaceSelector": {"matchLabels": {"team": team}},
        "roles": [f"arn:aws:iam::{ACCOUNT}:role/cld_*-cluster_node_role"],
        "repositories": [f"arn:aws:ecr:*:{ACCOUNT}:repository/{glob}" for glob in repositories], **extra})


def enforcing(*policies: tenancy.GrantPolicy, **labels: dict[str, str]) -> Grants:
    grants = Grants()
    grants.policies = list(policies)
    grants.labels = dict(labels)
    return grants


def grant(*repos: str, **extra: Any) -> dict[str, Any]:
    return {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [{"name": name} for name in repos], **extra}


def principals(statement: dict[str, Any]) -> set[str]:
    value = statement["Principal"]["AWS"]
    return {value} if isinstance(value, str) else set(value)


def reasons(outcome: Any) -> list[str]:
    return [repo.finding.reason for repo in outcome.repositories]


def test_no_policy_selecting_the_namespace_means_nothing_is_written(world: World) -> None:
    world.create_role()
    world.create_repository("ml/a")
    grants = enforcing(team_policy(), evil={"team": "evil"})
    key, spec = grants.add("g", grant("ml/a"), namespace="evil")

    outcome = world.apply(key, spec, None, grants)

    assert (outcome.role.reason, outcome.role.severity) == ("NotPermitted", Severity.TERMINAL)
    assert "No EcrGrantPolicy selects namespace evil" in outcome.role.message
    assert reasons(outcome) == ["NotPermitted"]
    assert world.calls.writes() == [] and world.attached() == set()
    status = build_status(outcome, 1, None, "T")
    assert {item["type"]: item["reason"] for item in status["conditions"]} == {"Ready": "NotPermitted",
                                                                               "Stalled": "NotPermitted"}


def test_only_the_permitted_repositories_are_written(world: World) -> None:
    world.create_role()
    for name in ("ml/a", "web/b"):
        world.create_repository(name)
    grants = enforcing(team_policy(), ml={"team": "ml"})
    key, spec = grants.add("g", grant("ml/a", "web/b"), namespace="ml")

    outcome = world.apply(key, spec, None, grants)

    assert outcome.role.ok and reasons(outcome) == ["Applied", "NotPermitted"]
    assert "namespace ml" in outcome.repositories[1].finding.message
    assert len(world.ours("ml/a")) == 1 and world.policy("web/b") is None
    assert READ_ONLY in world.attached()


def test_a_role_no_policy_allows_is_not_written(world: World) -> None:
    world.create_role("someone-else")
    world.create_repository("ml/a")
    grants = enforcing(team_policy(), ml={"team": "ml"})
    key, spec = grants.add("g", {"role": {"name": "someone-else"}, "repositories": [{"name": "ml/a"}]}, namespace="ml")

    outcome = world.apply(key, spec, None, grants)

    assert outcome.role.reason == "NotPermitted" and "someone-else" in outcome.role.message
    assert world.calls.writes() == []


def test_write_actions_need_a_policy_that_lists_them(world: World) -> None:
    world.create_role()
    world.create_repository("ml/a")
    grants = enforcing(team_policy(), ml={"team": "ml"})
    key, spec = grants.add("g", grant("ml/a", actions=["ecr:BatchGetImage", "ecr:PutImage"]), namespace="ml")

    refused = world.apply(key, spec, None, grants)

    assert refused.role.reason == "NotPermitted" and "ecr:PutImage" in refused.role.message
    assert world.calls.writes() == []
    grants.policies = [team_policy(actions=["ecr:Put*"])]
    assert world.apply(key, spec, None, grants).role.ok
    [ours] = world.ours("ml/a")
    assert "ecr:PutImage" in ours["Action"]


def test_a_policy_allowing_only_managed_policy_none(world: World) -> None:
    world.create_role()
    world.create_repository("ml/a")
    grants = enforcing(team_policy(managedPolicies=["None"]), ml={"team": "ml"})
    key, read_only = grants.add("g", grant("ml/a"), namespace="ml")

    assert world.apply(key, read_only, None, grants).role.reason == "NotPermitted"
    assert world.calls.writes() == []
    key, none = grants.add("g", grant("ml/a", managedPolicy="None"), namespace="ml")
    assert world.apply(key, none, read_only, grants).role.ok
    assert world.attached() == set() and len(world.ours("ml/a")) == 1


def test_a_revoked_grant_is_undone_but_a_permitted_one_on_the_same_role_keeps_its_access(world: World) -> None:
    world.create_role()
    world.create_repository("ml/a")
    grants = enforcing(team_policy("team-ml", "ml"), team_policy("team-data", "data"),
                       ml={"team": "ml"}, data={"team": "data"})
    ml = grants.add("g", grant("ml/a"), namespace="ml")
    data = grants.add("g", grant("ml/a"), namespace="data")
    for key, spec in (ml, data):
        assert world.apply(key, spec, None, grants).role.ok
    assert READ_ONLY in world.attached()

    grants.policies = [team_policy("team-data", "data")]  # team-ml's policy is deleted
    revoked = world.apply(*ml, None, grants)

    assert revoked.role.reason == "NotPermitted"
    [ours] = world.ours("ml/a")
    assert principals(ours) == {NODE_ARN}, "data's grant still names the role"
    assert READ_ONLY in world.attached(), "data's grant still wants the managed policy"

    grants.policies = []  # and team-data's
    world.apply(*data, None, grants)

    assert world.ours("ml/a") == [], "the role leaves the shared statement"
    assert world.attached() == set(), "the policy the operator attached is detached"

    grants.policies = [team_policy("team-ml", "ml")]  # granting again restores it
    assert world.apply(*ml, None, grants).role.ok
    assert len(world.ours("ml/a")) == 1 and READ_ONLY in world.attached()


def test_a_policy_change_re_judges_only_the_grants_it_affects(world: World) -> None:
    """Ten teams, each with its own repositories: narrowing one team's policy re-reads only that
    team's repositories, not everyone's."""
    world.create_role()
    teams = [f"t{index}" for index in range(10)]
    policies = {team: team_policy(f"policy-{team}", team, (f"{team}/*",)) for team in teams}
    grants = enforcing(*policies.values(), **{team: {"team": team} for team in teams})
    for team in teams:
        for repo in ("a", "b"):
            world.create_repository(f"{team}/{repo}")
        grants.add("g", grant(f"{team}/a", f"{team}/b"), namespace=team)
    watch = revocation.Watch()
    for name, item in policies.items():
        watch.policy(name, item, grants, lambda ns: grants.labels.get(ns, {}), listing=True)
    drift = DriftChecker(world.reconciler, interval=300.0, retry_delay=15.0, write_status=lambda key, patch: None,
                         warn=lambda grant, reason, message: None, now=lambda: "T")
    drift.indexes_ready(grants)
    world.run(drift.check())  # everything applied and read once
    world.calls.clear()

    narrowed = team_policy("policy-t3", "t3", ("t3/a",))
    grants.policies = [narrowed if item.name == "policy-t3" else item for item in grants.policies]
    keys = watch.policy("policy-t3", narrowed, grants, lambda ns: grants.labels.get(ns, {}))
    drift.recheck(keys)
    world.run(drift.check(drift.due_for_retry()))

    assert keys == {GrantKey("t3", "g")}
    repository_reads = world.calls.count("GetRepositoryPolicy")
    assert 1 <= repository_reads <= 2 * 2, f"only t3's two repositories are read ({repository_reads} reads)"
    assert world.ours("t3/b") == [] and len(world.ours("t3/a")) == 1
    assert all(len(world.ours(f"{team}/b")) == 1 for team in teams if team != "t3")


def test_a_namespace_relabelled_re_judges_its_grants_only_when_its_policies_change(world: World) -> None:
    grants = enforcing(team_policy(), ml={"team": "ml", "env": "prod"}, web={"team": "web"})
    grants.add("g", grant("ml/a"), namespace="ml")
    grants.add("g", grant("ml/a"), namespace="web")
    watch = revocation.Watch()
    for name, labels in grants.labels.items():
        assert watch.namespace(name, labels, grants.policies or [], grants, listing=True) == set(), "listed"

    assert watch.namespace("ml", {"team": "ml"}, grants.policies or [], grants) == set(), "still selected"
    assert watch.namespace("ml", {"team": "data"}, grants.policies or [], grants) == {GrantKey("ml", "g")}
    assert watch.namespace("web", {"team": "ml"}, grants.policies or [], grants) == {GrantKey("web", "g")}


def test_the_policy_status_names_the_offending_field_and_is_quiet_when_unchanged() -> None:
    try:
        tenancy.parse_policy("bad", {"namespaceSelector": {}, "roles": ["a b"], "repositories": ["*"]})
    except tenancy.PolicyError as error:
        bad = revocation.policy_status(error, 2, None, "T0")
    ready, stalled = bad["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidPolicy")
    assert "spec.roles[0]" in ready["message"]
    assert (stalled["type"], stalled["status"]) == ("Stalled", "True"), "kstatus: a person must act"
    assert bad["observedGeneration"] == 2
    good = revocation.policy_status(team_policy(), 3, bad, "T1")
    assert good["conditions"][0]["status"] == "True"
    assert revocation.policy_status(team_policy(), 3, good, "T2") == good, "nothing moves while nothing changes"


def test_policies_are_judged_in_every_sync_not_only_the_grants_own(world: World) -> None:
    """Another grant's sync of a shared repository derives the statement with the policies as they
    are now: a revoked principal does not come back with it."""
    world.create_role()
    world.create_role("cld_other-cluster_node_role")
    world.create_repository("ml/a")
    grants = enforcing(team_policy(), ml={"team": "ml"}, web={"team": "ml"})
    revoked = grants.add("g", grant("ml/a"), namespace="web")
    other = grants.add("h", {"role": {"anyscaleCloudId": "cld_other"}, "repositories": [{"name": "ml/a"}]},
                       namespace="ml")
    for key, spec in (revoked, other):
        world.apply(key, spec, None, grants)
    assert len(principals(world.ours("ml/a")[0])) == 2

    grants.labels["web"] = {"team": "web"}  # web no longer selected; only the other grant is applied
    world.apply(*other, None, grants)

    assert principals(world.ours("ml/a")[0]) == {f"arn:aws:iam::{ACCOUNT}:role/cld_other-cluster_node_role"}


# -- through the kopf handlers ------------------------------------------------------------------------

ALLOW_ML = {"namespaceSelector": {"matchLabels": {"team": "ml"}},
            "roles": [f"arn:aws:iam::{ACCOUNT}:role/cld_*-cluster_node_role"],
            "repositories": [f"arn:aws:ecr:*:{ACCOUNT}:repository/ml/*"]}


def test_a_handler_reports_a_grant_no_policy_permits_as_stalled(world: World, cluster: Any) -> None:
    from ecr_access import handlers  # noqa: PLC0415 - kopf only where the handlers are tested

    world.create_role()
    world.create_repository("ml/trainer")
    cluster.enforce(**{"team-ml": ALLOW_ML})
    cluster.put("g", {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [{"name": "ml/trainer"}]})

    cluster.call(handlers.on_grant_create, "g")

    conditions = cluster.conditions("g")
    assert (conditions["Ready"]["status"], conditions["Stalled"]["reason"]) == ("False", "NotPermitted")
    assert "namespace default" in conditions["Ready"]["message"]
    assert world.calls.writes() == []

    cluster.namespaces["default"] = {"team": "ml"}  # the namespace is labelled for the team
    cluster.call(handlers.on_grant_update, "g")
    assert cluster.conditions("g")["Ready"]["status"] == "True"
    assert len(world.ours("ml/trainer")) == 1


def test_a_policy_event_reports_its_validity_and_re_judges_the_namespaces_it_selects(
    world: World, cluster: Any
) -> None:
    import kopf  # noqa: PLC0415

    from ecr_access import watches  # noqa: PLC0415

    cluster.enforce(**{"team-ml": ALLOW_ML})
    cluster.namespaces.update({"default": {"team": "ml"}, "web": {"team": "web"}})
    cluster.put("g", {"role": {"anyscaleCloudId": CLOUD_ID}, "repositories": [{"name": "ml/trainer"}]})
    rechecked: list[set[GrantKey]] = []
    written: list[tuple[str, dict[str, Any]]] = []

    class Drift:
        def recheck(self, keys: set[GrantKey]) -> None:
            rechecked.append(set(keys))

    import dataclasses  # noqa: PLC0415

    runtime = dataclasses.replace(cluster.memo.runtime, drift=Drift(),
                                  patch_policy_status=lambda name, changes: written.append((name, changes)))
    memo = kopf.Memo(runtime=runtime)
    body = {"metadata": {"name": "team-ml", "generation": 1}, "spec": ALLOW_ML}

    cluster.loop.run_until_complete(watches.on_policy_event(body=kopf.Body(body), type=None, memo=memo,
                                                            **cluster.indexes()))
    assert rechecked == [], "the initial listing: every grant was judged with it already"
    assert written[0][0] == "team-ml" and written[0][1]["conditions"][0]["status"] == "True"

    narrowed = {**ALLOW_ML, "repositories": ["arn:aws:ecr:*:*:repository/other/*"]}
    cluster.policies["team-ml"]["spec"] = narrowed
    body = {"metadata": {"name": "team-ml", "generation": 2}, "spec": narrowed,
            "status": written[-1][1]}
    cluster.loop.run_until_complete(watches.on_policy_event(body=kopf.Body(body), type="MODIFIED", memo=memo,
                                                            **cluster.indexes()))
    assert rechecked == [{GrantKey("default", "g")}]

    broken = {**ALLOW_ML, "roles": ["not a glob"]}
    body = {"metadata": {"name": "team-ml", "generation": 3}, "spec": broken, "status": written[-1][1]}
    cluster.loop.run_until_complete(watches.on_policy_event(body=kopf.Body(body), type="MODIFIED", memo=memo,
                                                            **cluster.indexes()))
    ready = written[-1][1]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidPolicy") and "spec.roles[0]" in ready["message"]
    assert rechecked[-1] == {GrantKey("default", "g")}, "a malformed policy permits nothing: re-judged"


def test_a_grant_with_no_permitted_repository_left_wants_no_managed_policy(world: World) -> None:
    """AmazonEC2ContainerRegistryReadOnly reads every repository in the account: once a policy no
    longer permits a grant on any of its repositories, the policy attached for it is detached."""
    world.create_role()
    world.create_repository("ml/a")
    grants = enforcing(team_policy(), ml={"team": "ml"})
    key, spec = grants.add("g", grant("ml/a"), namespace="ml")
    assert world.apply(key, spec, None, grants).role.ok and READ_ONLY in world.attached()

    grants.policies = [team_policy(repositories=("other/*",))]  # the role and ReadOnly are still allowed
    narrowed = world.apply(key, spec, None, grants)

    assert reasons(narrowed) == ["NotPermitted"] and narrowed.managed_policy_arn is None
    assert world.attached() == set() and world.ours("ml/a") == []


def test_a_namespace_created_after_start_up_has_its_grants_judged_with_its_labels() -> None:
    """One `kubectl apply` creates a namespace and its grant: the grant may be judged before the
    namespace's labels are indexed, so the namespace's first sight re-judges its grants."""
    grants = enforcing(team_policy())
    grants.add("g", grant("ml/a"), namespace="new")
    watch = revocation.Watch()

    assert watch.namespace("new", {"team": "ml"}, grants.policies or [], grants) == {GrantKey("new", "g")}
    assert watch.namespace("listed", {"team": "ml"}, grants.policies or [], grants, listing=True) == set()
