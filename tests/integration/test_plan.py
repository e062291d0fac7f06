"""`plan` against moto: the operator's own reconciler over planning ports, every write caught.

Each test sets AWS up, builds the cluster's objects as the API server would hold them (a grant the
operator applied carries its finalizer and its applied record), plans some files over them, and
checks what the plan says and that AWS did not change: the botocore hook of `world.calls` sees
every call, so "only reads" is asserted on the wire, not on the ports.
"""

from __future__ import annotations

import copy
import json
import logging
import pathlib
from typing import Any

import pytest
import yaml

from ecr_access import accounts, cli, connect, grants, plan, planreport, policy
from ecr_access.accounts import AccountSpec
from ecr_access.aws.accounts import AssumedAccounts
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.manifests import Objects
from ecr_access.model import REFERENCE_ACTIONS, GrantKey, GrantSpec
from ecr_access.watches import FINALIZER
from ecr_sandbox import seed
from tests.integration.conftest import (
    ACCOUNT,
    CLUSTER_ID,
    DEFAULTS,
    FOREIGN,
    NODE_ROLE,
    READ_ONLY,
    REGION,
    Grants,
    World,
    ledger,
    settings,
    simulator,
)

SID = policy.statement_sid(CLUSTER_ID, REFERENCE_ACTIONS)
CENTRAL = "210987654321"
# What a plan may call: reads, STS's identity, and assuming an EcrAccessAccount's role.
READS = ("Get", "List", "Describe")
ALSO_READS = {"SimulatePrincipalPolicy", "GetCallerIdentity", "AssumeRole"}


def only_reads(made: list[str]) -> list[str]:
    """The operations in `made` that are not reads (what a plan must never call)."""
    return [name for name in made if not name.startswith(READS) and name not in ALSO_READS]


def grant_body(name: str, *repos: str, role: dict[str, str] | None = None, namespace: str = "default",
               **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"role": role or {"name": NODE_ROLE}, "repositories": [{"name": repo} for repo in repos], **spec}}


def applied(body: dict[str, Any], spec: GrantSpec, uid: str = "uid-1") -> dict[str, Any]:
    """The grant as the cluster holds it once the operator applied `spec`."""
    live = copy.deepcopy(body)
    live["metadata"].update(uid=uid, generation=1, finalizers=[FINALIZER],
                            annotations={grants.APPLIED_ANNOTATION: grants.applied_annotation(spec)})
    return live


def policy_body(name: str = "allow-all", **spec: Any) -> dict[str, Any]:
    return {**copy.deepcopy(seed.ALLOW_ALL_POLICY), "metadata": {"name": name},
            "spec": {**seed.ALLOW_ALL_POLICY["spec"], **spec}}


def snapshot(world: World, *repos: str) -> Any:
    """What AWS holds that a plan could have changed."""
    return ([world.policy(repo) for repo in repos], world.attached(), ledger(world))


def run(world: World, live: list[dict[str, Any]], files: list[dict[str, Any]], *, delete: bool = False,
        offline: bool = False, others: AssumedAccounts | None = None, **config: Any) -> plan.Plan:
    result: plan.Plan = world.run(plan.compute(
        Objects.of(live), Objects.of(files), delete=delete, offline=offline, defaults=DEFAULTS,
        config=settings(**config), cluster_id=CLUSTER_ID, iam=IamAdapter(world.session),
        ecr=EcrAdapter(world.session),
        others=others or AssumedAccounts(world.session, accounts.session_name(CLUSTER_ID)),
        now=lambda: "2026-01-01T00:00:00Z"))
    return result


def really_apply(world: World, grants_: Grants, body: dict[str, Any]) -> dict[str, Any]:
    """Apply the grant with the operator's reconciler, and return it as the cluster then holds it."""
    key, spec = grants_.add(body["metadata"]["name"], body["spec"], namespace=body["metadata"]["namespace"])
    outcome = world.apply(key, spec, None, grants_)
    assert all(finding.ok for finding in outcome.findings), outcome
    return applied(body, spec)


def test_a_new_grant_plans_its_statement_principal_and_managed_policy_and_changes_nothing(world: World) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a", {"Version": "2012-10-17", "Statement": [FOREIGN]})
    before = snapshot(world, "ml/a")
    world.calls.clear()

    result = run(world, [policy_body()], [grant_body("g", "ml/a")])

    assert planreport.exit_code(result) == 2
    (repo,) = result.repositories
    assert (repo.arn, repo.policy) == (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/a", "update")
    (statement,) = repo.statements
    assert (statement.sid, statement.change, statement.ours, statement.principals_added) == (
        SID, "add", True, (role_arn,))
    assert statement.actions == REFERENCE_ACTIONS
    (role,) = result.roles
    assert role.arn == role_arn and role.attach == (READ_ONLY,) and role.detach == ()
    assert {key for key, _, _ in role.tags_set} == {"ecraccess.io/attached",
                                                   f"ecraccess.io/{policy.cluster_digest(CLUSTER_ID)}"}
    (item,) = result.grants
    assert (item.key, item.change, item.handling) == (GrantKey("default", "g"), "create", "apply")
    assert item.ready == plan.Ready("True", "Reconciled", f"Role {role_arn} may pull from 1 repository and has "
                                    "AmazonEC2ContainerRegistryReadOnly attached.")
    text = planreport.to_text(result)
    assert f"~ repository {repo.arn}: + principal {role_arn} in Sid {SID}" in text
    assert f"~ role {role_arn}: + managed policy {READ_ONLY}" in text
    assert [write.operation for write in result.writes] == ["TagRole", "AttachRolePolicy", "SetRepositoryPolicy"]
    # Nothing reached AWS but reads, and AWS holds what it held.
    assert world.calls.made and only_reads(world.calls.made) == []
    assert snapshot(world, "ml/a") == before


def test_a_plan_logs_its_writes_as_planned_never_as_audit_lines(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """An AUDIT line says a write happened; a plan writes nothing, so none of its lines may say so."""
    role_arn = world.create_role()
    world.create_repository("ml/a")
    caplog.set_level(logging.INFO, logger="ecr_access")

    run(world, [policy_body()], [grant_body("g", "ml/a")])

    lines = [record.getMessage() for record in caplog.records]
    assert [line for line in lines if line.startswith("AUDIT")] == []
    planned = [line.split(" ")[3] for line in lines if line.startswith("PLANNED (not written)")]
    assert sorted(planned) == ["AttachRolePolicy", "SetRepositoryPolicy", "TagRole"], lines
    assert any(line.startswith(f"PLANNED (not written) TagRole {role_arn}") for line in lines)


def test_once_the_operator_applied_a_grant_planning_the_same_file_plans_nothing(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/a", {"Version": "2012-10-17", "Statement": [FOREIGN]})
    world.create_repository("ml/b")
    body = grant_body("g", "ml/a", "ml/b")
    live = really_apply(world, grants, body)

    result = run(world, [policy_body(), live], [body])

    assert planreport.exit_code(result) == 0, planreport.to_text(result)
    assert (result.repositories, result.roles, result.writes) == ((), (), ())
    assert result.grants[0].change == "unchanged" and result.grants[0].ready is not None
    assert result.grants[0].ready.status == "True"
    assert "No changes" in planreport.to_text(result)


def test_a_spec_the_operator_refuses_is_its_invalid_spec_verdict_not_a_traceback(world: World) -> None:
    world.create_role()
    world.create_repository("ml/a")

    result = run(world, [policy_body()], [grant_body("bad", "ml/a", role={"name": "x", "arn": "y"}),
                                          grant_body("typo", "ml/a", managedPolicy="ReadWrite")])

    assert [(item.key.name, item.handling) for item in result.grants] == [("bad", "invalid"), ("typo", "invalid")]
    bad, typo = (item.ready for item in result.grants)
    assert bad is not None and typo is not None
    assert (bad.status, bad.reason) == ("False", "InvalidSpec")
    assert bad.message.startswith("The spec is invalid: spec.role: exactly one of name, arn or anyscaleCloudId")
    assert "spec.managedPolicy: 'ReadWrite' is not one of ReadOnly, PullOnly, None" in typo.message
    assert planreport.exit_code(result) == 0 and not result.writes


def test_an_edit_that_drops_a_repository_plans_the_role_out_of_it(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a")
    world.create_repository("ml/b", {"Version": "2012-10-17", "Statement": [FOREIGN]})
    live = really_apply(world, grants, grant_body("g", "ml/a", "ml/b"))
    before = snapshot(world, "ml/a", "ml/b")

    result = run(world, [policy_body(), live], [grant_body("g", "ml/a")])

    (repo,) = result.repositories  # ml/a keeps what it has; only ml/b changes, through the applied record
    assert repo.arn.endswith("repository/ml/b") and repo.policy == "update"
    assert [(item.sid, item.change, item.principals_removed) for item in repo.statements] == [
        (SID, "remove", (role_arn,))]
    assert result.grants[0].change == "update" and result.roles == ()
    assert f"- principal {role_arn} in Sid {SID}" in planreport.to_text(result)
    assert snapshot(world, "ml/a", "ml/b") == before


def test_delete_plans_the_release_of_the_role_the_detach_and_the_ledger_tags(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a")
    world.create_repository("ml/b", {"Version": "2012-10-17", "Statement": [FOREIGN]})
    body = grant_body("g", "ml/a", "ml/b")
    live = really_apply(world, grants, body)
    before = snapshot(world, "ml/a", "ml/b")
    world.calls.clear()

    result = run(world, [policy_body(), live], [body], delete=True)

    assert planreport.exit_code(result) == 2
    assert [(item.change, item.handling, item.ready) for item in result.grants] == [("delete", "release", None)]
    a, b = result.repositories
    assert a.policy == "delete" and [item.change for item in a.statements] == ["remove"]
    assert b.policy == "update" and [(item.sid, item.principals_removed) for item in b.statements] == [
        (SID, (role_arn,))]
    (role,) = result.roles
    assert role.detach == (READ_ONLY,) and role.attach == ()
    assert {key for key, _ in role.tags_removed} == {"ecraccess.io/attached",
                                                     f"ecraccess.io/{policy.cluster_digest(CLUSTER_ID)}"}
    assert only_reads(world.calls.made) == []
    assert snapshot(world, "ml/a", "ml/b") == before


def test_delete_of_a_grant_the_cluster_does_not_hold_plans_nothing(world: World) -> None:
    result = run(world, [policy_body()], [grant_body("g", "ml/a")], delete=True)
    assert [(item.handling, item.change) for item in result.grants] == [("absent", "delete")]
    assert planreport.exit_code(result) == 0


def test_a_grant_no_policy_permits_shows_not_permitted_and_plans_nothing(world: World) -> None:
    world.create_role()
    world.create_repository("ml/a")

    result = run(world, [], [grant_body("g", "ml/a")])

    (item,) = result.grants
    assert item.ready is not None and (item.ready.status, item.ready.reason) == ("False", "NotPermitted")
    assert item.ready.message.startswith("No EcrGrantPolicy selects namespace default")
    assert item.outcome is not None and [repo.finding.reason for repo in item.outcome.repositories] == ["NotPermitted"]
    assert planreport.exit_code(result) == 0 and not result.writes
    assert "(NotPermitted): No EcrGrantPolicy selects namespace default" in planreport.to_text(result)


def test_a_narrowed_policy_in_the_files_plans_revoking_what_live_grants_have(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a")
    live = really_apply(world, grants, grant_body("g", "ml/a", managedPolicy="None"))

    narrowed = policy_body(repositories=[f"arn:aws:ecr:*:{ACCOUNT}:repository/other/*"])
    result = run(world, [policy_body(), live], [narrowed])

    (item,) = result.grants
    assert (item.key.name, item.change) == ("g", "recheck")
    assert item.outcome is not None and item.outcome.repositories[0].finding.reason == "NotPermitted"
    (repo,) = result.repositories
    assert repo.policy == "delete" and repo.statements[0].principals_removed == (role_arn,)


def test_two_grants_in_the_files_share_one_statement(world: World) -> None:
    first = world.create_role()
    second = world.create_role("puller")
    world.create_repository("ml/a")

    result = run(world, [policy_body()], [grant_body("a", "ml/a", managedPolicy="None"),
                                          grant_body("b", "ml/a", role={"name": "puller"}, managedPolicy="None")])

    (repo,) = result.repositories
    assert repo.policy == "create"
    assert [(item.sid, item.principals_added) for item in repo.statements] == [(SID, tuple(sorted([first, second])))]


def test_offline_the_files_are_the_cluster_and_what_they_cannot_account_for_is_marked(world: World) -> None:
    role_arn = world.create_role()
    other = world.create_role("someone-elses")
    world.create_repository("ml/a", {"Version": "2012-10-17", "Statement": [
        policy.DesiredStatement(SID, REFERENCE_ACTIONS, frozenset({other})).render()]})

    result = run(world, [], [policy_body(), grant_body("g", "ml/a", managedPolicy="None")], offline=True)

    (repo,) = result.repositories
    (statement,) = repo.statements
    assert statement.principals_added == (role_arn,) and statement.principals_removed == (other,)
    assert statement.unaccounted == (other,)
    assert f"- principal {other} in Sid {SID} ({planreport.OFFLINE_NOTE})" in planreport.to_text(result)


def test_a_repository_in_another_account_is_planned_through_its_account_with_reads_only(world: World) -> None:
    role_arn = world.create_role()
    operator_role = f"arn:aws:iam::{CENTRAL}:role/ecr-access-operator"
    admin = world.session.assume(f"arn:aws:iam::{CENTRAL}:role/admin", session_name="admin")
    admin.ecr(REGION).create_repository(repositoryName="central/base")
    account = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": "central"},
               "spec": {"accountId": CENTRAL, "assumeRole": {"roleArn": operator_role}}}
    others = AssumedAccounts(world.session, accounts.session_name(CLUSTER_ID))
    others.bind(lambda account_id: AccountSpec("central", CENTRAL, operator_role) if account_id == CENTRAL else None,
                lambda: [CENTRAL])
    made: list[str] = []
    others.session(CENTRAL).session.events.register("before-call.*.*", lambda model, **_: made.append(model.name))
    assumed: list[dict[str, Any]] = []
    world.session.session.events.register("before-parameter-build.sts.AssumeRole",
                                          lambda params, **_: assumed.append(dict(params)))
    world.calls.clear()

    body = grant_body("g", managedPolicy="None")
    body["spec"]["repositories"] = [{"name": "central/base", "registryId": CENTRAL}]
    result = run(world, [policy_body(), account], [body], others=others)

    (repo,) = result.repositories
    assert (repo.account, repo.policy) == (CENTRAL, "create")
    assert repo.statements[0].principals_added == (role_arn,)
    assert made and only_reads(made) == [] and only_reads(world.calls.made) == []
    assert assumed and {item["RoleSessionName"] for item in assumed} == {accounts.session_name(CLUSTER_ID)}
    assert admin.ecr(REGION).describe_repositories()["repositories"][0]["repositoryName"] == "central/base"
    with pytest.raises(admin.ecr(REGION).exceptions.RepositoryPolicyNotFoundException):
        admin.ecr(REGION).get_repository_policy(repositoryName="central/base")


# -- the command itself ----------------------------------------------------------------------------------------


def write(tmp_path: pathlib.Path, *documents: dict[str, Any]) -> str:
    path = tmp_path / "grants.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    return int(done.value.code or 0)


@pytest.fixture
def recorded(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS operation the command's own sessions call (it makes its own, as the operator does)."""
    made: list[str] = []
    create = AwsSession.create

    def hooked(*args: Any, **kwargs: Any) -> AwsSession:
        session = create(*args, **kwargs)
        session.session.events.register("before-call.*.*", lambda model, **_: made.append(model.name))
        session.session.events.register("before-call.*.*", world.calls.before_call)  # so `inject` reaches it
        return session

    monkeypatch.setattr(AwsSession, "create", hooked)
    return made


def test_the_command_offline_prints_the_diff_and_exits_2_then_0_once_applied(
        world: World, grants: Grants, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
        recorded: list[str]) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a")
    body = grant_body("g", "ml/a")
    path = write(tmp_path, policy_body(), body)

    assert main(["plan", "-f", path, "--offline", "--cluster-id", CLUSTER_ID, "--region", REGION]) == 2
    out = capsys.readouterr().out
    assert f"+ principal {role_arn} in Sid {SID}" in out and f"+ managed policy {READ_ONLY}" in out

    assert main(["plan", "-f", path, "--offline", "--cluster-id", CLUSTER_ID, "-o", "json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["changes"] is True and document["sidPrefix"] == policy.cluster_prefix(CLUSTER_ID)
    assert document["repositories"][0]["statements"][0]["principalsAdded"] == [role_arn]
    assert document["grants"][0]["ready"]["reason"] == "Reconciled"

    really_apply(world, grants, body)
    assert main(["plan", "-f", path, "--offline", "--cluster-id", CLUSTER_ID]) == 0
    assert "No changes" in capsys.readouterr().out
    assert recorded and only_reads(recorded) == []


def test_the_command_refuses_a_document_it_cannot_plan_naming_the_file_and_document(
        world: World, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], recorded: list[str]) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    path = write(tmp_path, grant_body("g", "ml/a"), config_map)

    assert main(["plan", "-f", path, "--offline", "--cluster-id", CLUSTER_ID]) == 1
    error = capsys.readouterr().err
    assert f"{path}, document 2: ConfigMap (v1) is not an object the operator reads" in error
    assert recorded == []  # refused before AWS is asked anything


def test_offline_without_a_cluster_id_fails_with_the_reason(
        world: World, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        recorded: list[str]) -> None:
    monkeypatch.delenv("ECR_ACCESS_CLUSTER_ID", raising=False)
    assert main(["plan", "-f", write(tmp_path, grant_body("g", "ml/a")), "--offline"]) == 1
    assert "--offline needs --cluster-id (or ECR_ACCESS_CLUSTER_ID)" in capsys.readouterr().err
    assert recorded == []


def test_a_suspended_grant_changes_nothing_and_keeps_its_ready_status(world: World, grants: Grants) -> None:
    world.create_role()
    world.create_repository("ml/a")
    live = really_apply(world, grants, grant_body("g", "ml/a"))
    live["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]}

    result = run(world, [policy_body(), live], [grant_body("g", "ml/b", suspend=True)])

    (item,) = result.grants
    assert (item.handling, item.ready) == ("suspended", plan.Ready(
        "True", "Suspended", "spec.suspend is true: the operator changes nothing for this grant."))
    assert planreport.exit_code(result) == 0  # its frozen contribution (ml/a) stays; ml/b is not asked for yet


def test_a_role_that_does_not_exist_is_role_not_found_and_plans_nothing(world: World) -> None:
    world.create_repository("ml/a")

    result = run(world, [policy_body()], [grant_body("g", "ml/a", role={"name": "missing-role"})])

    (item,) = result.grants
    assert item.ready is not None and (item.ready.status, item.ready.reason) == ("False", "RoleNotFound")
    assert "missing-role" in item.ready.message
    assert planreport.exit_code(result) == 0 and result.problems == ()


def test_deleting_a_retain_grant_plans_its_hand_over_statement(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a", {"Version": "2012-10-17", "Statement": [FOREIGN]})
    body = grant_body("g", "ml/a", deletionPolicy="Retain")
    live = really_apply(world, grants, body)

    result = run(world, [policy_body(), live], [body], delete=True)

    (repo,) = result.repositories
    handover = policy.retained_sid(CLUSTER_ID, "default", "g", "uid-1")
    assert [(item.sid, item.change, item.ours, item.principals_added, item.principals_removed)
            for item in repo.statements] == [
        (SID, "remove", True, (), (role_arn,)), (handover, "add", False, (role_arn,), ())]
    (role,) = result.roles  # the managed policy stays, handed over: it leaves the ledger's `attached`
    assert role.detach == () and "ecraccess.io/attached" in {key for key, _ in role.tags_removed}
    assert f"+ statement {handover} (Allow, 12 actions, foreign)" in planreport.to_text(result)


def test_a_foreign_deny_shows_as_denied_by_policy_in_the_plan(world: World) -> None:
    # The access check's verdict comes out of the same reconciler: a reviewer sees it before the merge.
    world.create_role()
    deny = {"Sid": "Quarantine", "Effect": "Deny", "Principal": "*", "Action": "ecr:*"}
    world.create_repository("ml/a", policy={"Version": "2012-10-17", "Statement": [deny]})
    before = snapshot(world, "ml/a")

    result = run(world, [policy_body()], [grant_body("g", "ml/a", managedPolicy="None")])

    (item,) = result.grants
    assert item.ready is not None and (item.ready.status, item.ready.reason) == ("False", "DeniedByPolicy")
    assert "'Quarantine'" in planreport.to_text(result)
    assert planreport.exit_code(result) == 2, "the statement would still be written"
    assert only_reads(world.calls.made) == [] and snapshot(world, "ml/a") == before


def test_with_the_identity_check_on_a_role_that_may_not_log_in_shows_as_identity_denied(world: World) -> None:
    # ECR_ACCESS_VERIFY_IDENTITY: the plan asks IAM's simulator as the operator would (moto has none).
    role_arn = world.create_role()
    world.create_repository("ml/a")
    world.session.session.events.register("before-call.iam.SimulatePrincipalPolicy",
                                          simulator({"ecr:GetAuthorizationToken": "implicitDeny"}))
    before = snapshot(world, "ml/a")
    world.calls.clear()

    result = run(world, [policy_body()], [grant_body("g", "ml/a", managedPolicy="None")], verify_identity=True)

    (item,) = result.grants
    assert item.ready is not None and (item.ready.status, item.ready.reason) == ("False", "IdentityDenied")
    assert f"role {role_arn} may not call ecr:GetAuthorizationToken (implicitDeny)" in item.ready.message
    assert "would be Ready=False (IdentityDenied)" in planreport.to_text(result)
    assert planreport.exit_code(result) == 2, "the statement would still be written"
    assert world.calls.count("SimulatePrincipalPolicy") == 1
    assert only_reads(world.calls.made) == [] and snapshot(world, "ml/a") == before


def test_the_command_exits_1_with_the_error_on_stderr_when_a_read_fails(
        world: World, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], recorded: list[str]) -> None:
    world.create_role()
    world.create_repository("ml/a")
    world.calls.inject("GetRepositoryPolicy", "AccessDenied", "not authorized to perform: ecr:GetRepositoryPolicy",
                       times=10, where={"repositoryName": "ml/a"})

    assert main(["plan", "-f", write(tmp_path, policy_body(), grant_body("g", "ml/a")), "--offline",
                 "--cluster-id", CLUSTER_ID, "-o", "json"]) == 1

    captured = capsys.readouterr()
    assert json.loads(captured.out)["problems"], "the JSON says why too"
    assert captured.err.startswith("ecr-access-operator plan: default/g: The operator is not allowed to call "
                                   f"GetRepositoryPolicy on Repository ml/a (arn:aws:ecr:{REGION}:{ACCOUNT}:"
                                   "repository/ml/a)"), captured.err
    assert "GetRepositoryPolicy" in recorded and only_reads(recorded) == []


def test_the_command_that_cannot_read_the_cluster_exits_1_and_names_offline(
        world: World, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        recorded: list[str]) -> None:
    def unreachable(config: Any) -> Any:
        raise connect.ConnectError("cannot read the cluster: Invalid kube-config file. No configuration found.")

    monkeypatch.setattr(connect, "open_cluster", unreachable)

    assert main(["plan", "-f", write(tmp_path, grant_body("g", "ml/a")), "--cluster-id", CLUSTER_ID]) == 1

    captured = capsys.readouterr()
    assert captured.err.startswith("ecr-access-operator plan: cannot read the cluster: Invalid kube-config")
    assert "--offline" in captured.err and captured.out == ""
    assert only_reads(recorded) == []


@pytest.mark.parametrize(("mode", "reason"), [("Open", "Reconciled"), ("Enforce", "NotPermitted")])
def test_the_command_plans_with_the_policy_mode_it_is_given(
        world: World, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        recorded: list[str], mode: str, reason: str) -> None:
    monkeypatch.delenv("ECR_ACCESS_POLICY_MODE", raising=False)
    world.create_role()
    world.create_repository("ml/a")
    path = write(tmp_path, grant_body("g", "ml/a", managedPolicy="None"))  # and no EcrGrantPolicy

    code = main(["plan", "-f", path, "--offline", "--cluster-id", CLUSTER_ID, "--policy-mode", mode, "-o", "json"])

    document = json.loads(capsys.readouterr().out)
    assert document["policyMode"] == mode
    assert document["grants"][0]["ready"]["reason"] == reason
    assert code == (2 if mode == "Open" else 0) and only_reads(recorded) == []
