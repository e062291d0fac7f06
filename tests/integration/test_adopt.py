"""`adopt` against moto: the manual procedure's AllowPull goes once the grant's statement holds the
role; everything else stays byte for byte; an edited statement is never removed."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from ecr_access import adopt, commands, connect, policy
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.manifests import Objects
from ecr_access.model import REFERENCE_ACTIONS, GrantKey, GrantSpec
from ecr_access.ports import Accounts
from ecr_access.roles import RoleDirectory
from tests.integration.conftest import (
    ACCOUNT,
    CLUSTER_ID,
    DEFAULTS,
    FOREIGN,
    NODE_ROLE,
    REGION,
    Grants,
    World,
    no_sleep,
    settings,
)
from tests.integration.test_plan import applied, grant_body, policy_body

SID = policy.statement_sid(CLUSTER_ID, REFERENCE_ACTIONS)


def allow_pull(role_arn: str) -> dict[str, Any]:
    """The statement of docs/access-amazon-ecr.md, as a person pastes it."""
    return {"Sid": "AllowPull", "Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": list(REFERENCE_ACTIONS)}


def reach(world: World) -> Accounts:
    return Accounts(ACCOUNT, IamAdapter(world.session), EcrAdapter(world.session))


def find(world: World, *targets: tuple[GrantKey, GrantSpec]) -> tuple[list[adopt.Candidate], list[str]]:
    accounts = reach(world)
    found: tuple[list[adopt.Candidate], list[str]] = world.run(adopt.find(
        targets, accounts=accounts, roles=RoleDirectory(accounts, cache_ttl=0.0), cluster_id=CLUSTER_ID))
    return found


def remove(world: World, candidate: adopt.Candidate) -> adopt.Removal:
    removal: adopt.Removal = world.run(adopt.remove(candidate, accounts=reach(world), cluster_id=CLUSTER_ID,
                                                    attempts=4, sleep=no_sleep))
    return removal


@pytest.fixture
def adopted(world: World, grants: Grants) -> tuple[str, tuple[GrantKey, GrantSpec]]:
    """A repository holding the manual procedure's AllowPull and someone else's statement, and a
    grant for the same role that the operator applied there."""
    role_arn = world.create_role()
    world.create_repository("ml/a", {"Version": "2012-10-17", "Statement": [allow_pull(role_arn), FOREIGN]})
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})
    assert all(finding.ok for finding in world.apply(key, spec, None, grants).findings)
    return role_arn, (key, spec)


def raw_statements(world: World, name: str) -> list[str]:
    """Each statement of the policy as it is stored, key order and all (`json.dumps` of it parsed)."""
    text = world.ecr().get_repository_policy(repositoryName=name)["policyText"]
    return [json.dumps(item) for item in json.loads(text)["Statement"]]


def test_allow_pull_is_listed_then_removed_and_the_rest_stays_byte_for_byte(
        world: World, adopted: tuple[str, tuple[GrantKey, GrantSpec]], caplog: pytest.LogCaptureFixture) -> None:
    role_arn, target = adopted
    before = raw_statements(world, "ml/a")
    (ours,) = world.ours("ml/a")

    (candidate,), problems = find(world, target)
    assert problems == [] and candidate.ready and candidate.sid == SID
    assert [(item.sid, item.redundant) for item in candidate.judged] == [("AllowPull", True)]
    assert raw_statements(world, "ml/a") == before  # listing changes nothing
    listing = adopt.render([candidate], [], None)
    assert f"- statement AllowPull: redundant with {SID}" in listing and '"Sid": "AllowPull"' in listing

    world.calls.clear()
    with caplog.at_level(logging.INFO, logger="ecr_access.adopt"):
        removal = remove(world, candidate)

    assert [item["Sid"] for item in removal.removed] == ["AllowPull"] and not removal.skipped and not removal.failed
    after = raw_statements(world, "ml/a")
    assert json.dumps(FOREIGN) in after and json.dumps(FOREIGN) in before  # someone else's: exactly as it was
    assert world.ours("ml/a") == [ours]  # the grant's own statement stays
    assert len(after) == 2 and not any('"AllowPull"' in item for item in after)
    assert world.calls.made == ["GetRepositoryPolicy", "SetRepositoryPolicy", "GetRepositoryPolicy"]
    (line,) = [record.getMessage() for record in caplog.records if record.getMessage().startswith("AUDIT")]
    assert line == (f"AUDIT SetRepositoryPolicy arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ml/a: principals added "
                    f"none, removed ['{role_arn}'] with the foreign statement \"AllowPull\"; for grants "
                    f"['default/g'], whose statement {SID} keeps them; requested by adopt")


def test_a_statement_edited_after_it_was_listed_is_not_removed(
        world: World, adopted: tuple[str, tuple[GrantKey, GrantSpec]]) -> None:
    role_arn, target = adopted
    (candidate,), _ = find(world, target)
    edited = {**allow_pull(role_arn), "Action": list(REFERENCE_ACTIONS[:3])}  # still redundant-shaped, but edited
    document = world.policy("ml/a")
    assert document is not None
    document["Statement"] = [edited if item.get("Sid") == "AllowPull" else item for item in document["Statement"]]
    world.ecr().set_repository_policy(repositoryName="ml/a", policyText=json.dumps(document))
    world.calls.clear()

    removal = remove(world, candidate)

    assert removal.removed == () and "edited or removed since they were listed" in removal.skipped
    assert edited in world.statements("ml/a")
    assert world.calls.writes() == []


def test_nothing_goes_until_the_grants_own_statement_carries_the_role(world: World, grants: Grants) -> None:
    role_arn = world.create_role()
    world.create_repository("ml/a", {"Version": "2012-10-17", "Statement": [allow_pull(role_arn)]})
    key, spec = grants.add("g", {"role": {"name": NODE_ROLE}, "repositories": [{"name": "ml/a"}]})  # never applied

    (candidate,), _ = find(world, (key, spec))
    assert not candidate.ready
    assert "--apply would skip it" in adopt.render([candidate], [], None)
    world.calls.clear()
    removal = remove(world, candidate)

    assert removal.removed == () and f"does not carry {role_arn}" in removal.skipped
    assert world.statements("ml/a") == [allow_pull(role_arn)] and world.calls.writes() == []


def test_partly_covered_statements_are_listed_and_left_alone(
        world: World, adopted: tuple[str, tuple[GrantKey, GrantSpec]]) -> None:
    role_arn, target = adopted
    shared = {"Sid": "Shared", "Effect": "Allow", "Principal": {"AWS": [role_arn, f"arn:aws:iam::{ACCOUNT}:root"]},
              "Action": "ecr:BatchGetImage"}
    wider = {"Sid": "Wider", "Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "ecr:*"}
    conditional = {**allow_pull(role_arn), "Sid": "Conditional",
                   "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}}
    document = world.policy("ml/a")
    assert document is not None
    document["Statement"] += [shared, wider, conditional]
    world.ecr().set_repository_policy(repositoryName="ml/a", policyText=json.dumps(document))

    (candidate,), _ = find(world, target)
    assert [(item.sid, item.redundant) for item in candidate.judged] == [
        ("AllowPull", True), ("Shared", False), ("Wider", False)]
    text = adopt.render([candidate], [], None)
    assert f"= statement Shared: partly covered: it names other principals too (arn:aws:iam::{ACCOUNT}:root); " \
           "left alone" in text
    removal = remove(world, candidate)
    assert [item["Sid"] for item in removal.removed] == ["AllowPull"]
    assert [shared, wider, conditional] == [item for item in world.statements("ml/a")
                                            if item.get("Sid") in ("Shared", "Wider", "Conditional")]


def test_a_policy_changed_under_the_write_is_merged_again(
        world: World, adopted: tuple[str, tuple[GrantKey, GrantSpec]]) -> None:
    role_arn, target = adopted
    (candidate,), _ = find(world, target)
    late = {"Sid": "LateComer", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "ecr:ListImages"}
    writes = []

    def concurrent_writer(**_: Any) -> None:
        """Right after adopt's first write, someone writes the policy as they read it before it: AllowPull is
        back, with their new statement."""
        writes.append(1)
        if len(writes) == 1:
            document = {"Version": "2012-10-17", "Statement": [allow_pull(role_arn), FOREIGN, late,
                                                               *world.ours("ml/a")]}
            world.ecr().set_repository_policy(repositoryName="ml/a", policyText=json.dumps(document))

    # On the client: a botocore client copies its session's hooks when it is made, and this one exists.
    world.session.ecr(REGION).meta.events.register("after-call.ecr.SetRepositoryPolicy", concurrent_writer)
    removal = remove(world, candidate)

    assert not removal.failed and [item["Sid"] for item in removal.removed] == ["AllowPull", "AllowPull"]
    assert sorted(item.get("Sid", "") for item in world.statements("ml/a")) == sorted(
        ["LateComer", FOREIGN["Sid"], SID])


def test_the_command_lists_with_exit_2_and_applies_with_exit_0(
        world: World, adopted: tuple[str, tuple[GrantKey, GrantSpec]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    role_arn, (_, spec) = adopted
    live = Objects.of([policy_body(), applied(grant_body("g", "ml/a"), spec)])
    monkeypatch.setattr(connect, "open_all", lambda config, **_: connect.Connection(
        config, world.session, DEFAULTS, CLUSTER_ID, live))
    config = settings()

    assert commands.adopt_command(config, [], apply=False, output="json") == 2
    listed = json.loads(capsys.readouterr().out)
    assert listed["applied"] is False
    assert [item["Sid"] for item in listed["candidates"][0]["redundant"]] == ["AllowPull"]
    assert allow_pull(role_arn) in world.statements("ml/a")

    assert commands.adopt_command(config, [], apply=True, output="text") == 0
    assert "Removed 1 of 1 redundant statement." in capsys.readouterr().out
    assert allow_pull(role_arn) not in world.statements("ml/a")
    assert commands.adopt_command(config, [], apply=False, output="text") == 0  # nothing left to adopt
