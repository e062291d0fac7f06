"""What the two grant indexes keep per grant: one entry, built once per event and held by both.

kopf calls each index function in turn with the same event's body. Both indexes used to parse it
on their own, holding two copies of every grant's spec, applied record and status; the entries must
still follow the object exactly (a new body, or the same one changed, is parsed afresh).
"""

from __future__ import annotations

import copy
import dataclasses
import types
from typing import Any

import kopf

from ecr_access import grants, watches
from ecr_access.cycle import InHand
from ecr_access.model import Defaults

DEFAULTS = Defaults("aws", "us-west-2", "123456789012")
MEMO = types.SimpleNamespace(runtime=types.SimpleNamespace(defaults=DEFAULTS))


def raw(role: str = "r", version: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": "g", "namespace": "team", "uid": "u1", "generation": 1, "resourceVersion": version},
            "spec": {"role": {"name": role}, "repositories": [{"name": "ml/a"}, {"name": "ml/b"}]},
            "status": {"observedGeneration": 1}}


def entries(body: kopf.Body) -> tuple[list[Any], list[Any]]:
    return (list(watches.index_by_repository(body, MEMO).values()), list(watches.index_by_role(body, MEMO).values()))


def test_both_indexes_hold_one_entry_per_grant() -> None:
    by_repository, by_role = entries(kopf.Body(raw()))

    [entry] = by_role
    assert all(item is entry for item in by_repository), "one entry, not one per index"
    assert len(by_repository) == 2


def test_another_body_is_parsed_afresh() -> None:
    [first] = entries(kopf.Body(raw()))[1]
    [second] = entries(kopf.Body(raw(role="other", version="2")))[1]

    assert second is not first
    assert second.spec.role.name == "other"


def test_a_body_changed_in_place_is_parsed_afresh() -> None:
    source = raw()
    body = kopf.Body(source)
    [first] = entries(body)[1]
    source.clear()
    source.update(copy.deepcopy(raw(role="edited", version="2")))

    [second] = entries(body)[1]

    assert second.spec.role.name == "edited"
    assert first.spec.role.name == "r"


def test_grants_naming_one_repository_share_its_reference() -> None:
    one, other = raw(), raw(role="other", version="2")
    other["metadata"]["name"] = "h"
    [first] = entries(kopf.Body(one))[1]
    [second] = entries(kopf.Body(other))[1]

    assert first.spec.repositories == second.spec.repositories
    assert all(a is b for a, b in zip(first.spec.repositories, second.spec.repositories, strict=True))
    assert first.key.namespace is second.key.namespace


def test_an_entry_keeps_the_status_as_text_not_the_decoded_body() -> None:
    """The status is what the drift check reports from; decoded, it was most of what the operator
    kept per grant. The entry holds none of the body's objects, and gives the status back whole."""
    body = raw()
    body["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "message": "m"}],
                      "repositories": [{"arn": "arn:aws:ecr:us-west-2:123456789012:repository/ml/a", "ready": True}]}
    [entry] = entries(kopf.Body(body))[1]

    assert entry.status == body["status"]
    held = [getattr(entry, field.name) for field in dataclasses.fields(entry)]
    assert not any(value is body["status"] for value in held)
    assert all(isinstance(value, (str, int, bool, type(None))) or value is entry.spec or value is entry.applied
               or value is entry.key for value in held), held


def test_one_entry_per_grant_when_other_grants_are_indexed_in_between() -> None:
    """kopf indexes many objects at once (sync index functions ran in its threads), so another
    grant's body can come between a grant's two index calls. Each object has its own memo: the
    entry kept there is the grant's own, whatever was indexed in between (a module-wide "last
    entry" was replaced by the other grant's, and each index held its own copy)."""
    one, other = raw(), raw(role="other", version="2")
    other["metadata"].update(name="h", uid="u2")
    memos = [types.SimpleNamespace(runtime=MEMO.runtime) for _ in range(2)]
    bodies = [kopf.Body(one), kopf.Body(other)]

    pairs = list(zip(bodies, memos, strict=True))
    by_repository = [list(watches.index_by_repository(body, memo).values()) for body, memo in pairs]
    by_role = [list(watches.index_by_role(body, memo).values()) for body, memo in pairs]

    for repository_entries, [role_entry] in zip(by_repository, by_role, strict=True):
        assert all(entry is role_entry for entry in repository_entries)


def test_an_applied_record_equal_to_the_spec_is_the_spec_itself() -> None:
    """Once a grant is applied, its record equals its spec: the entry holds one of them, not two."""
    body = raw()
    body["metadata"]["annotations"] = {grants.APPLIED_ANNOTATION: grants.applied_annotation(
        grants.from_body(raw(), DEFAULTS, watches.FINALIZER).spec)}  # type: ignore[union-attr]
    [entry] = entries(kopf.Body(body))[1]

    assert entry.applied is entry.spec


def test_an_entry_whose_spec_is_not_yet_applied_is_handed_to_its_change_handler() -> None:
    """The drift loop leaves such a grant to the handler kopf runs next (`cycle.InHand`); once the
    applied record is the spec, the entry is nobody's in particular."""
    in_hand = InHand(settle=300.0)
    memo = types.SimpleNamespace(runtime=types.SimpleNamespace(defaults=DEFAULTS, in_hand=in_hand))
    [new] = watches.index_by_role(kopf.Body(raw()), memo).values()
    assert in_hand.owns(new)

    applied = raw(version="2")
    spec = grants.parse_own_spec(applied["spec"], DEFAULTS)
    assert spec is not None
    applied["metadata"]["annotations"] = {grants.APPLIED_ANNOTATION: grants.applied_annotation(spec)}
    other = InHand(settle=300.0)
    memo.runtime.in_hand = other
    [done] = watches.index_by_role(kopf.Body(applied), memo).values()
    assert done.applied == done.spec and not other.owns(done)
