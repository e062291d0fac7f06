"""What each grant object contributes to AWS (table-driven): the spec, the applied record, or nothing.

Status is in every body here, and forged: nothing it says may change what a grant contributes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecr_access import grants
from ecr_access.model import Defaults
from ecr_access.spec import parse_spec

DEFAULTS = Defaults("aws", "us-west-2", "123456789012")
FINALIZER = "ecraccess.io/finalizer"
FORGED = {"roleArn": "arn:aws:iam::123456789012:role/victim", "managedPolicyOwned": True,
          "managedPolicyArn": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"}
NOW = {"role": {"name": "now"}, "repositories": [{"name": "ml/now"}]}
BEFORE = {"role": {"name": "before"}, "repositories": [{"name": "ml/before"}], "deletionPolicy": "Retain"}
INVALID = {"role": {"name": "now"}, "repositories": [
    {"name": "ml/x"}, {"arn": "arn:aws:ecr:us-west-2:123456789012:repository/ml/x"}]}


def body(spec: dict[str, Any], applied: dict[str, Any] | None = None, deleting: bool = False,
         finalizers: tuple[str, ...] = (FINALIZER,)) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "g", "namespace": "team", "uid": "u1", "generation": 3,
                            "finalizers": list(finalizers)}
    if applied is not None:
        meta["annotations"] = {grants.APPLIED_ANNOTATION: grants.applied_annotation(parse_spec(applied, DEFAULTS))}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {"metadata": meta, "spec": spec, "status": FORGED}


@pytest.mark.parametrize(("raw", "role", "active", "handing_over"), [
    pytest.param(body(NOW), "now", True, False, id="active-contributes-its-spec"),
    pytest.param(body(NOW, BEFORE), "now", True, False, id="active-spec-wins-over-the-record"),
    pytest.param(body({**NOW, "suspend": True}, BEFORE), "before", False, False, id="suspended-is-frozen"),
    pytest.param(body({**NOW, "suspend": True}), None, False, False, id="created-suspended-contributes-nothing"),
    pytest.param(body(INVALID, BEFORE), "before", False, False, id="invalid-spec-keeps-what-was-applied"),
    pytest.param(body(INVALID), None, False, False, id="never-valid-contributes-nothing"),
    pytest.param(body(NOW, deleting=True), None, False, False, id="deleting-with-delete-contributes-nothing"),
    pytest.param(body({**NOW, "deletionPolicy": "Retain"}, deleting=True), "now", False, True,
                 id="deleting-with-retain-stays-until-handed-over"),
    pytest.param(body(INVALID, BEFORE, deleting=True), "before", False, True,
                 id="deleting-invalid-uses-the-records-deletion-policy"),
    pytest.param(body({**NOW, "deletionPolicy": "Retain"}, deleting=True, finalizers=()), None, False, False,
                 id="retain-without-our-finalizer-is-gone"),
])
def test_from_body(raw: dict[str, Any], role: str | None, active: bool, handing_over: bool) -> None:
    found = grants.from_body(raw, DEFAULTS, FINALIZER)
    if role is None:
        assert found is None
        return
    assert found is not None
    assert found.spec.role.name == role
    assert (found.active, found.handing_over, found.uid, found.generation) == (active, handing_over, "u1", 3)


def test_applied_record_reads_back_equal_whatever_the_defaults_of_the_day() -> None:
    spec = parse_spec({"role": {"anyscaleCloudId": "cld_x1"}, "repositories": [{"name": "ml/a"}],
                       "actions": ["ecr:BatchGetImage"], "managedPolicy": "PullOnly"}, DEFAULTS)
    other_day = Defaults("aws", "eu-west-1", "123456789012")

    assert grants.parse_applied(grants.applied_annotation(spec), other_day) == spec


@pytest.mark.parametrize("value", [
    "", "not json", json.dumps({"role": {"arn": "arn:aws:iam::1:role/x"}}), json.dumps([1, 2]), 7,
])
def test_an_unreadable_record_counts_as_none(value: object) -> None:
    assert grants.parse_applied(value, DEFAULTS) is None


def test_a_record_is_judged_like_a_spec_and_never_suspends() -> None:
    record = json.dumps({**NOW, "suspend": True})
    found = grants.parse_applied(record, DEFAULTS)
    assert found is not None and found.suspend is False


def test_the_indexed_view_judges_with_the_namespace_labels_indexed_after_it_was_made() -> None:
    """The drift loop keeps the first view it gets, at start-up, when kopf's indexes may still be
    empty (an empty index is falsy): it must read the live index, not a copy of it as it was."""
    from ecr_access import tenancy  # noqa: PLC0415
    from ecr_access.grants import IndexedGrants, LiveGrant  # noqa: PLC0415
    from ecr_access.model import GrantKey  # noqa: PLC0415
    from ecr_access.spec import parse_spec  # noqa: PLC0415

    policy = tenancy.parse_policy("team", {"namespaceSelector": {"matchLabels": {"team": "ml"}},
                                           "roles": ["*"], "repositories": ["*"]})
    policies: dict[str, list[object]] = {}
    namespaces: dict[str, list[dict[str, str]]] = {}
    view = IndexedGrants({}, {}, policies=policies, namespaces=namespaces)  # type: ignore[arg-type]
    policies["team"] = [policy]
    namespaces["ml"] = [{"team": "ml"}]
    spec = parse_spec({"role": {"name": "node"}, "repositories": [{"name": "ml/a"}]}, DEFAULTS)

    assert view.verdict(LiveGrant(GrantKey("ml", "g"), spec), "arn:aws:iam::123456789012:role/node").permitted
