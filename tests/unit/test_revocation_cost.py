"""What a policy change costs at N=1,000 grants: it re-judges only the grants it can affect, and AWS
is read only for their repositories. AWS is in memory at the ports, so the count is exact."""

from __future__ import annotations

import asyncio
from collections import Counter

from ecr_access import revocation, tenancy
from ecr_access.config import Config
from ecr_access.drift import DriftChecker
from ecr_access.model import Defaults
from ecr_access.reconcile import Reconciler
from tests.memory import Grants
from tests.unit.fakes import FakeEcr, FakeIam

ACCOUNT = "123456789012"
DEFAULTS = Defaults("aws", "us-west-2", ACCOUNT)
TEAMS = 100  # namespaces, one policy each
GRANTS_PER_TEAM = 10  # N = 1,000
REPOS_PER_TEAM = 5  # each team's grants share its five repositories: 500 in all


def team_policy(team: int, repositories: str = "*") -> tenancy.GrantPolicy:
    return tenancy.parse_policy(f"policy-t{team}", {
        "namespaceSelector": {"matchLabels": {"team": f"t{team}"}},
        "roles": [f"arn:aws:iam::{ACCOUNT}:role/node-t{team}"],
        "repositories": [f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository/t{team}/{repositories}"]})


def test_narrowing_one_teams_policy_reads_only_that_teams_repositories() -> None:
    repos = [f"t{team}/r{index}" for team in range(TEAMS) for index in range(REPOS_PER_TEAM)]
    iam, ecr = FakeIam(ACCOUNT, [f"node-t{team}" for team in range(TEAMS)]), FakeEcr(*repos)
    reconciler = Reconciler(iam, ecr, cluster_id="c", account=ACCOUNT,  # type: ignore[arg-type]
                            config=Config(coalesce_window=0.0))
    policies = [team_policy(team) for team in range(TEAMS)]
    live = Grants(DEFAULTS, policies)
    for team in range(TEAMS):
        live.labels[f"t{team}"] = {"team": f"t{team}"}
        for index in range(GRANTS_PER_TEAM):
            repo_names = [f"t{team}/r{(index + k) % REPOS_PER_TEAM}" for k in range(2)]
            live.add(f"g{index}", {"role": {"name": f"node-t{team}"}, "managedPolicy": "None",
                                   "repositories": [{"name": name} for name in repo_names]}, namespace=f"t{team}")
    watch = revocation.Watch()
    for item in policies:
        watch.policy(item.name, item, live, lambda ns: live.labels.get(ns, {}), listing=True)
    drift = DriftChecker(reconciler, interval=300.0, retry_delay=15.0, write_status=lambda key, patch: None,
                         warn=lambda grant, reason, message: None, now=lambda: "T")
    drift.indexes_ready(live)

    async def scenario() -> tuple[set[object], Counter[str]]:
        first = await drift.check()  # every grant applied: 500 repositories written
        assert (first.checked, first.failed) == (1000, 0)
        ecr.calls.clear()
        iam.calls.clear()
        narrowed = team_policy(42, "r0")  # team 42 may now grant only t42/r0
        live.policies = [narrowed if item.name == narrowed.name else item for item in policies]
        keys = watch.policy(narrowed.name, narrowed, live, lambda ns: live.labels.get(ns, {}))
        drift.recheck(keys)
        await drift.check(drift.due_for_retry())
        return keys, Counter(ecr.calls)

    keys, calls = asyncio.run(scenario())

    assert {key.namespace for key in keys} == {"t42"} and len(keys) == GRANTS_PER_TEAM
    assert calls["GetRepositoryPolicy"] <= 2 * REPOS_PER_TEAM, (
        f"{calls['GetRepositoryPolicy']} reads: only team 42's five repositories (read, and re-read after a write)")
    assert calls["SetRepositoryPolicy"] + calls["DeleteRepositoryPolicy"] == REPOS_PER_TEAM - 1, (
        "team 42's grants leave the four repositories no longer permitted; nobody else's policy is written")
    assert ecr.policies["t42/r1"] is None and ecr.policies["t41/r1"] is not None
