"""Review of accounts (issue 14): what another account's trouble does to everything else."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from ecr_access.model import RepositoryRef
from ecr_access.ports import AwsFault
from tests.integration.conftest import ACCOUNT, NODE_ROLE, REGION, Grants, World, _Http
from tests.integration.test_accounts import CENTRAL, Central, configured, principals, ready

B_ROLE = f"arn:aws:iam::{CENTRAL}:role/ci-puller"


@pytest.fixture
def central(world: World) -> Central:
    return Central(world, configured())


def deny(operation: str) -> Any:
    def hook(model: Any, **_: Any) -> Any:
        if model.name == operation:
            error = {"Code": "AccessDenied", "Message": f"not authorized to perform {operation}"}
            return _Http(403), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return None
    return hook


def test_a_grant_whose_role_is_in_an_unavailable_account_does_not_block_other_grants_repositories(
        world: World, central: Central, grants: Grants) -> None:
    """G2's role is in B, whose role cannot be assumed right now; G1 (role and repository in the
    operator's own account) shares a repository with G2. G1 must still go Ready: one grant's
    account trouble must not block every grant on the repositories it names (DESIGN §2.3)."""
    own_role = world.create_role()
    world.create_repository("ml/a")
    central.admin.iam().create_role(RoleName="ci-puller", AssumeRolePolicyDocument="{}")
    g2 = grants.add("g2", {"role": {"arn": B_ROLE}, "repositories": [{"name": "ml/a"}]})
    g1 = grants.add("g1", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    world.session.core.register("before-call.sts.AssumeRole", deny("AssumeRole"))

    outcome = world.apply(*g1, None, grants, reconciler=central.reconciler)

    assert ready(outcome), outcome
    assert own_role in principals(world.ours("ml/a")[0])
    # G2 says why it is not ready itself: its account (transient), not anyone else's repository.
    outcome = world.apply(*g2, None, grants, reconciler=central.reconciler)
    assert outcome.role.reason == "AccountUnavailable" and outcome.transient, outcome


def test_a_role_in_b_with_managed_policy_none_is_not_blocked_by_a_registry_role_without_iam(
        world: World, central: Central, grants: Grants) -> None:
    """B is a central registry, configured with deploy/iam/registry-account-policy.json (ECR
    actions only). A grant whose role is in B with managedPolicy None needs nothing from IAM in B
    (unconfigured, it is written without a lookup and goes Ready). Configuring B for its
    repositories must not turn it into AccessDenied, nor block the other grants on its
    repositories."""
    world.create_role()
    central.create_repository("central/base")
    central.admin.iam().create_role(RoleName="ci-puller", AssumeRolePolicyDocument="{}")
    b = central.others.session(CENTRAL)
    b.session.events.register("before-call.iam.GetRole", deny("GetRole"))
    g2 = grants.add("g2", {"role": {"arn": B_ROLE}, "managedPolicy": "None",
                           "repositories": [{"name": "central/base", "registryId": CENTRAL}]})
    g1 = grants.add("g1", {"role": {"name": NODE_ROLE}, "managedPolicy": "None",
                           "repositories": [{"name": "central/base", "registryId": CENTRAL}]})

    first = world.apply(*g1, None, grants, reconciler=central.reconciler)
    second = world.apply(*g2, None, grants, reconciler=central.reconciler)

    assert ready(first), first
    assert ready(second), second
    assert set(principals(central.ours("central/base")[0])) == {B_ROLE, f"arn:aws:iam::{ACCOUNT}:role/{NODE_ROLE}"}


def test_a_grant_with_its_role_in_b_and_managed_policy_none_can_be_deleted_when_b_denies_get_role(
        world: World, central: Central, grants: Grants) -> None:
    """The same registry-only role in B: the delete of a `managedPolicy: None` grant whose role is
    in B must finish (nothing of the grant is on the role), not raise or stall on GetRole."""
    central.create_repository("central/base")
    central.admin.iam().create_role(RoleName="ci-puller", AssumeRolePolicyDocument="{}")
    key, spec = grants.add("g2", {"role": {"arn": B_ROLE}, "managedPolicy": "None",
                                  "repositories": [{"name": "central/base", "registryId": CENTRAL}]})
    world.apply(key, spec, None, grants, reconciler=central.reconciler)  # GetRole allowed here
    central.others.session(CENTRAL).iam().meta.events.register("before-call.iam.GetRole", deny("GetRole"))
    central.reconciler.roles.forget(spec.role.key)

    grants.remove(key)
    released = world.release(key, spec, spec, grants, reconciler=central.reconciler)

    assert not released.terminal and not released.transient, released
    assert central.policy("central/base") is None


def test_a_role_in_b_whose_grant_attaches_a_managed_policy_still_says_access_denied(
        world: World, central: Central, grants: Grants) -> None:
    """Passing over AccessDenied is only for a role the operator needs nothing of in IAM."""
    central.create_repository("central/base")
    central.admin.iam().create_role(RoleName="ci-puller", AssumeRolePolicyDocument="{}")
    central.others.session(CENTRAL).session.events.register("before-call.iam.GetRole", deny("GetRole"))
    key, spec = grants.add("g", {"role": {"arn": B_ROLE}, "managedPolicy": "ReadOnly",
                                 "repositories": [{"name": "central/base", "registryId": CENTRAL}]})
    outcome = world.apply(key, spec, None, grants, reconciler=central.reconciler)
    assert outcome.role.reason == "AccessDenied" and outcome.terminal, outcome
    assert central.policy("central/base") is None

    # Switched to None, it still has ReadOnly to detach if the operator attached it: not passed over.
    none = grants.add("g", {"role": {"arn": B_ROLE}, "managedPolicy": "None",
                            "repositories": [{"name": "central/base", "registryId": CENTRAL}]})[1]
    outcome = world.apply(key, none, spec, grants, reconciler=central.reconciler)
    assert outcome.role.reason == "AccessDenied", outcome


def test_a_new_role_for_an_account_does_not_leave_the_old_sessions_threads_running(
        world: World, central: Central) -> None:
    """AssumedAccounts builds a new session when an EcrAccessAccount's roleArn or externalId is
    edited. The old one's threads (up to `session.THREADS` per session) must not stay parked for
    the life of the process: a GitOps repository that flips a field leaks 8 threads per edit."""
    import threading  # noqa: PLC0415

    from ecr_access.accounts import AccountSpec  # noqa: PLC0415
    from ecr_access.aws import session as session_module  # noqa: PLC0415

    central.create_repository("central/base")
    repo = RepositoryRef("aws", REGION, CENTRAL, "central/base")

    async def read_many() -> None:
        import asyncio  # noqa: PLC0415

        ecr = central.others.ecr(CENTRAL)
        await asyncio.gather(*(ecr.get_repository_policy(repo) for _ in range(session_module.THREADS * 2)))

    replaced: list[threading.Thread] = []
    for index in range(3):
        world.run(read_many())
        pool = central.others.session(CENTRAL)._threads
        assert pool is not None
        replaced.extend(pool._threads)
        central.configured[CENTRAL] = AccountSpec("central", CENTRAL, f"arn:aws:iam::{CENTRAL}:role/ops-{index}")
    world.run(read_many())
    assert replaced
    for thread in replaced:  # shut-down pool threads end once they see the pool closed
        thread.join(timeout=5)
    assert not [thread for thread in replaced if thread.is_alive()], "replaced sessions' threads still run"

    # Deleted: the account's session goes too, the next time anything asks for the account.
    last = central.others.session(CENTRAL)
    del central.configured[CENTRAL]
    with pytest.raises(AwsFault):
        central.others.ecr(CENTRAL)
    assert last._closed and last._threads is None


def test_a_grant_created_before_its_accounts_eaa_goes_ready_at_once_then_stays_quiet(world: World) -> None:
    """Grant first, EcrAccessAccount second: the grant is AccountNotConfigured (Stalled, re-checked
    only at the next pass), the account's check re-checks it at once and it goes Ready, and from
    then on drift passes write nothing, to AWS or to Kubernetes."""
    import dataclasses  # noqa: PLC0415

    from ecr_access.account_check import AccountChecker  # noqa: PLC0415
    from ecr_access.drift import DriftChecker  # noqa: PLC0415
    from ecr_access.model import GrantKey  # noqa: PLC0415
    from ecr_access.reconcile import LiveGrant  # noqa: PLC0415
    from ecr_access.spec import parse_spec  # noqa: PLC0415
    from tests.integration.conftest import DEFAULTS, WRITES, Calls  # noqa: PLC0415
    from tests.integration.test_drift import Cluster  # noqa: PLC0415

    configured_now: dict[str, Any] = {}
    central = Central(world, configured_now)
    world.create_role()
    central.create_repository("central/base")
    cluster = Cluster()
    key = GrantKey("default", "g")
    spec = parse_spec({"role": {"name": NODE_ROLE}, "managedPolicy": "None",
                       "repositories": [{"name": "central/base", "registryId": CENTRAL}]}, DEFAULTS)
    cluster.live[key] = LiveGrant(key, spec, generation=1, uid="uid-g")
    drift = DriftChecker(central.reconciler, interval=300, retry_delay=15, write_status=cluster.write_status,
                         warn=lambda *_: None, now=lambda: "T")
    drift.indexes_ready(cluster)

    world.run(drift.check())
    [(_, first)] = cluster.writes
    assert {c["type"]: c["reason"] for c in first["conditions"]}["Ready"] == "AccountNotConfigured"
    assert drift.due_for_retry() == set()  # Stalled: not before the next pass, 300 s away

    # The cluster admin creates the EcrAccessAccount.
    configured_now.update(configured())
    written: list[Any] = []
    checker = AccountChecker(central.others, DEFAULTS, retry_delay=15, stalled_retry_delay=300, now=lambda: "T",
                             patch_status=lambda name, changes: written.append(changes),
                             recheck=drift.recheck_account)
    b_calls = Calls()
    central.others.session(CENTRAL).session.events.register("before-call.*.*", b_calls.before_call)
    check = world.run(checker.check(configured_now[CENTRAL], 1, None, [configured_now[CENTRAL]]))
    assert check.status["conditions"][0]["status"] == "True"
    assert drift.due_for_retry() == {key}, "the grant is re-checked at once"

    world.run(drift.check(drift.due_for_retry()))
    assert cluster.status(key)["conditions"][0]["status"] == "True", cluster.status(key)
    assert len(central.ours("central/base")) == 1

    # Steady state: passes a whole interval apart (every answer re-read) write nothing anywhere.
    cluster.writes.clear()
    b_calls.clear()
    world.calls.clear()
    for _ in range(3):
        cluster.live[key] = dataclasses.replace(cluster.live[key])  # the index as kopf keeps it
        drift_fresh = DriftChecker(central.reconciler, interval=1e-9, retry_delay=15,
                                   write_status=cluster.write_status, warn=lambda *_: None, now=lambda: "T")
        drift_fresh.indexes_ready(cluster)
        world.run(drift_fresh.check())
    assert cluster.writes == []
    assert [name for name in b_calls.made if name in WRITES] == [] and world.calls.writes() == []
    assert written == [] and b_calls.count("AssumeRole") == 0


def test_a_delete_that_cannot_detach_in_an_unconfigured_account_says_what_it_left_on_the_role(
        world: World, central: Central, grants: Grants) -> None:
    """A grant whose role is in B attached ReadOnly there while an EcrAccessAccount configured B.
    B's EcrAccessAccount is deleted (it has no finalizer), then the grant. The delete may finish,
    as it does for a repository in B, but it must say, as it does for a repository in B, that the
    managed policy and the ledger tags are left on the role: otherwise nobody ever learns."""
    import json  # noqa: PLC0415

    from ecr_sandbox import seed  # noqa: PLC0415

    role_arn = central.admin.iam().create_role(RoleName="central-node", AssumeRolePolicyDocument=json.dumps(
        seed.NODE_TRUST_POLICY))["Role"]["Arn"]
    world.create_repository("ml/a")
    key, spec = grants.add("g", {"role": {"arn": role_arn}, "managedPolicy": "ReadOnly",
                                 "repositories": [{"name": "ml/a"}]})
    assert ready(world.apply(key, spec, None, grants, reconciler=central.reconciler))
    del central.configured[CENTRAL]  # kubectl delete eaa central

    grants.remove(key)
    released = world.release(key, spec, spec, grants, reconciler=central.reconciler)

    assert not released.terminal and not released.transient, released
    assert world.policy("ml/a") is None
    attached = central.admin.iam().list_attached_role_policies(RoleName="central-node")["AttachedPolicies"]
    assert attached, "the managed policy is left in B, as expected without credentials there"
    assert any("central-node" in item.message and "ReadOnly" in item.message for item in released.unsettled), (
        f"nothing says the managed policy is left on the role: {released.unsettled}")


def test_the_sweep_skips_an_account_no_eaa_configures_and_touches_nothing(
        world: World, grants: Grants) -> None:
    from tests.integration.test_accounts import OTHER  # noqa: PLC0415

    world.create_role()
    world.create_repository("ml/a")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "managedPolicy": "None", "repositories": [
        {"name": "ml/a"}, {"name": "x/y", "registryId": OTHER}]})
    world.apply(key, spec, None, grants)
    before = world.policy("ml/a")
    world.calls.clear()

    assert world.sweep(grants) == []
    assert world.calls.writes() == [] and world.policy("ml/a") == before


def test_the_sweep_cleans_an_orphan_in_b_after_the_last_grant_using_b_went(
        world: World, central: Central, grants: Grants) -> None:
    """The last grant with a repository in B was deleted while the operator was down (its
    finalizer forced off): its statement in B is an orphan. B is still configured, so the sweep can
    reach it; it is what the sweep exists for."""
    central.others.bind(central.configured.get, lambda: list(central.configured))  # as the kopf index does
    world.create_role()
    central.create_repository("central/base")
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "managedPolicy": "None",
                                 "repositories": [{"name": "central/base", "registryId": CENTRAL}]})
    world.apply(key, spec, None, grants, reconciler=central.reconciler)
    assert central.ours("central/base")
    grants.remove(key)

    world.sweep(grants, reconciler=central.reconciler)

    assert central.ours("central/base") == [], "the orphan in B is never swept"


def test_a_grant_rechecked_after_its_accounts_eaa_is_deleted_says_account_not_configured(world: World) -> None:
    """on_account_event re-checks the grants of a deleted EcrAccessAccount "now (they become
    AccountNotConfigured)". The re-check is a drift-mode apply, which may reuse a policy read up to
    0.9 of an interval ago: it must not report Ready from that cache for an account the operator
    can no longer act in."""
    from ecr_access.drift import DriftChecker  # noqa: PLC0415
    from ecr_access.model import GrantKey  # noqa: PLC0415
    from ecr_access.reconcile import LiveGrant  # noqa: PLC0415
    from ecr_access.spec import parse_spec  # noqa: PLC0415
    from tests.integration.conftest import DEFAULTS  # noqa: PLC0415
    from tests.integration.test_drift import Cluster  # noqa: PLC0415

    central = Central(world, configured())
    world.create_role()
    central.create_repository("central/base")
    cluster = Cluster()
    key = GrantKey("default", "g")
    spec = parse_spec({"role": {"name": NODE_ROLE}, "managedPolicy": "None",
                       "repositories": [{"name": "central/base", "registryId": CENTRAL}]}, DEFAULTS)
    cluster.live[key] = LiveGrant(key, spec, generation=1, uid="uid-g")
    drift = DriftChecker(central.reconciler, interval=300, retry_delay=15, write_status=cluster.write_status,
                         warn=lambda *_: None, now=lambda: "T")
    drift.indexes_ready(cluster)
    world.run(drift.check())
    assert cluster.status(key)["conditions"][0]["status"] == "True"

    del central.configured[CENTRAL]  # kubectl delete eaa central
    drift.recheck_account(CENTRAL)
    world.run(drift.check(drift.due_for_retry()))

    [repo] = cluster.status(key)["repositories"]
    assert repo["reason"] == "AccountNotConfigured", repo


def test_access_denied_in_another_account_points_at_that_accounts_role_not_the_operators_policy(
        world: World, central: Central, grants: Grants) -> None:
    """In B the operator acts as the role B's EcrAccessAccount names: an AccessDenied there is
    fixed in that role's policy (deploy/iam/registry-account-policy.json), not in the operator's
    own, which the message sent people to ("add it to the operator's IAM policy")."""
    world.create_role()
    central.create_repository("central/base")
    central.others.session(CENTRAL).session.events.register("before-call.ecr.GetRepositoryPolicy",
                                                            deny("GetRepositoryPolicy"))
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "managedPolicy": "None",
                                 "repositories": [{"name": "central/base", "registryId": CENTRAL}]})

    outcome = world.apply(key, spec, None, grants, reconciler=central.reconciler)

    [repo] = outcome.repositories
    assert repo.finding.reason == "AccessDenied", repo.finding
    assert "operator's IAM policy" not in repo.finding.message, repo.finding.message
    assert CENTRAL in repo.finding.message and "EcrAccessAccount" in repo.finding.message, repo.finding.message


def test_a_call_through_a_closed_session_still_runs_and_blocks_nothing(world: World, central: Central) -> None:
    """A coroutine that took B's adapter before B's EcrAccessAccount was edited may still call
    through it: the call runs (in the default threads), and nothing waits on the session's lock."""
    import asyncio  # noqa: PLC0415

    central.create_repository("central/base")
    repo = RepositoryRef("aws", REGION, CENTRAL, "central/base")
    session = central.others.session(CENTRAL)
    ecr = central.others.ecr(CENTRAL)
    session.close()

    async def both() -> list[Any]:
        return list(await asyncio.wait_for(asyncio.gather(
            ecr.get_repository_policy(repo), ecr.get_repository_policy(repo),
            asyncio.to_thread(session.iam)), 10))

    assert world.run(both())[:2] == [None, None]


class AccountHandlers:
    """The account handlers (`watches.on_account`, `on_account_event`) over a kopf-shaped index."""

    def __init__(self, world: World, central: Central) -> None:
        import kopf  # noqa: PLC0415

        from ecr_access import handlers  # noqa: PLC0415
        from ecr_access.account_check import AccountChecker  # noqa: PLC0415
        from ecr_access.config import Config  # noqa: PLC0415
        from ecr_access.sweep import Sweeper  # noqa: PLC0415
        from tests.integration.conftest import DEFAULTS, HOME  # noqa: PLC0415

        self.world, self.kopf = world, kopf
        self.bodies: dict[str, dict[str, Any]] = {}
        self.written: list[tuple[str, dict[str, Any]]] = []
        self.rechecked: list[str] = []
        checker = AccountChecker(central.others, DEFAULTS, retry_delay=15, stalled_retry_delay=300,
                                 now=lambda: "T", patch_status=self.patch_status, recheck=self.rechecked.append)

        class Drift:
            def recheck_account(inner, account: str) -> None:
                self.rechecked.append(account)

        self.memo = kopf.Memo(runtime=handlers.Runtime(
            Config(), DEFAULTS, central.reconciler, Sweeper(central.reconciler.repositories, HOME, 0),
            drift=Drift(), others=central.others, account_checker=checker))  # type: ignore[arg-type]

    def patch_status(self, name: str, changes: Any) -> None:
        self.written.append((name, dict(changes)))
        status = self.bodies[name].setdefault("status", {})
        for key, value in changes.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value

    def put(self, name: str, role: str, created: str, generation: int = 1) -> dict[str, Any]:
        old = self.bodies.get(name, {})
        self.bodies[name] = {"metadata": {"name": name, "creationTimestamp": created, "generation": generation},
                             "spec": {"accountId": CENTRAL, "assumeRole": {"roleArn": role}},
                             "status": old.get("status", {})}
        return self.bodies[name]

    def index(self) -> dict[str, Any]:
        from ecr_access import watches  # noqa: PLC0415

        found: dict[str, list[Any]] = {}
        for body in self.bodies.values():
            for key, value in watches.index_accounts(self.kopf.Body(body)).items():
                found.setdefault(key, []).append(value)
        return {watches.ACCOUNTS: found}

    def changed(self, name: str, old_spec: dict[str, Any] | None = None) -> None:
        """on_account for a create or (with the spec it had, `old_spec`) an edit; its patch applied."""
        from ecr_access import watches  # noqa: PLC0415

        patch = self.kopf.Patch()
        cause: dict[str, Any] = {"reason": self.kopf.Reason.CREATE, "old": None}
        if old_spec is not None:
            cause = {"reason": self.kopf.Reason.UPDATE, "old": {"spec": old_spec}}
        with contextlib.suppress(self.kopf.TemporaryError):  # a retry kopf would do later
            self.world.run(watches.on_account(body=self.kopf.Body(self.bodies[name]), patch=patch, memo=self.memo,
                                              **cause, **self.index()))
        self.patch_status(name, dict(patch).get("status", {}))

    def deleted(self, name: str) -> None:
        from ecr_access import watches  # noqa: PLC0415

        body = self.bodies.pop(name)
        self.world.run(watches.on_account_event(body=self.kopf.Body(body), type="DELETED", memo=self.memo,
                                                **self.index()))

    def ready(self, name: str) -> tuple[str, str]:
        [ready] = [item for item in self.bodies[name]["status"]["conditions"] if item["type"] == "Ready"]
        return ready["status"], ready["reason"]


def test_two_accounts_for_one_account_report_which_one_is_used_as_they_come_and_go(
        world: World, central: Central) -> None:
    """The status of every EcrAccessAccount for an account says whether it is the one used, after
    creates, a delete, and an edit that makes the one in use unusable."""
    cases = AccountHandlers(world, central)
    central.configured.clear()
    central.others.bind(lambda account: accounts_lookup(cases, account), lambda: [CENTRAL])
    role = f"arn:aws:iam::{CENTRAL}:role/ecr-access-operator"
    cases.put("old", role, "2026-01-01T00:00:00Z")
    cases.changed("old")
    assert cases.ready("old") == ("True", "Assumed")
    cases.put("new", role, "2026-02-01T00:00:00Z")
    cases.changed("new")
    assert cases.ready("new") == ("False", "DuplicateAccount")

    # The one in use is edited into another partition (the CRD allows aws, aws-cn, aws-us-gov):
    # it configures nothing now, and the other one is the one used.
    before = dict(cases.bodies["old"]["spec"])
    cases.put("old", f"arn:aws-cn:iam::{CENTRAL}:role/ecr-access-operator", "2026-01-01T00:00:00Z", generation=2)
    cases.changed("old", before)
    assert cases.ready("old") == ("False", "InvalidSpec")
    assert accounts_lookup(cases, CENTRAL).name == "new"  # type: ignore[union-attr]
    assert cases.ready("new") == ("True", "Assumed"), "the one now in use still says it is not used"

    # Fixed again, the older one configures the account again, and the newer one says so.
    broken = dict(cases.bodies["old"]["spec"])
    cases.put("old", role, "2026-01-01T00:00:00Z", generation=3)
    cases.changed("old", broken)
    assert cases.ready("old") == ("True", "Assumed")
    assert cases.ready("new") == ("False", "DuplicateAccount"), "the one no longer used still says Assumed"

    # Deleted, the one in use hands the account over to the other, which says so.
    cases.written.clear()
    cases.deleted("old")
    assert cases.ready("new") == ("True", "Assumed")
    assert CENTRAL in cases.rechecked


def accounts_lookup(cases: AccountHandlers, account: str) -> Any:
    from ecr_access import watches  # noqa: PLC0415

    return watches.account_lookup(cases.index(), "aws")(account)


def test_moving_a_grant_off_a_role_in_an_unconfigured_account_says_what_it_left_there(
        world: World, central: Central, grants: Grants) -> None:
    """As for a delete: the grant's role was in B with ReadOnly attached there; B's EcrAccessAccount
    is deleted; the grant is edited to a role in A. The previous role cannot be recomputed: that
    must be said (and the applied record kept, as for a repository dropped in such an account),
    not forgotten."""
    import json  # noqa: PLC0415

    from ecr_sandbox import seed  # noqa: PLC0415

    role_arn = central.admin.iam().create_role(RoleName="central-node", AssumeRolePolicyDocument=json.dumps(
        seed.NODE_TRUST_POLICY))["Role"]["Arn"]
    world.create_role()
    world.create_repository("ml/a")
    key, before = grants.add("g", {"role": {"arn": role_arn}, "repositories": [{"name": "ml/a"}]})
    assert ready(world.apply(key, before, None, grants, reconciler=central.reconciler))
    del central.configured[CENTRAL]

    key, after = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    outcome = world.apply(key, after, before, grants, reconciler=central.reconciler)

    assert ready(outcome), outcome
    assert any("central-node" in item.message for item in outcome.unsettled), outcome.unsettled

    # The same role, now with managedPolicy None: what it attached there is just as unreachable.
    key, none = grants.add("g", {"role": {"arn": role_arn}, "managedPolicy": "None",
                                 "repositories": [{"name": "ml/a"}]})
    outcome = world.apply(key, none, before, grants, reconciler=central.reconciler)
    assert any("central-node" in item.message for item in outcome.unsettled), outcome.unsettled
