"""The kstatus port (tests/kstatus.py), table-driven: each row is a rule of cli-utils' kstatus with the object that
triggers it. The e2e suite relies on these answers to say what Flux would show for a grant."""

from __future__ import annotations

from typing import Any

import pytest

from tests import kstatus


def grant(generation: int | None = 2, status: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "g", "namespace": "ns", **metadata}
    if generation is not None:
        meta["generation"] = generation
    obj: dict[str, Any] = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant", "metadata": meta,
                           "spec": {}}
    if status is not None:
        obj["status"] = status
    return obj


def cond(kind: str, value: str, message: str = "") -> dict[str, str]:
    return {"type": kind, "status": value, "reason": "R", "message": message}


READY = cond("Ready", "True", "fine")

CASES = [
    # generic.go checkGenericProperties: a deletionTimestamp wins over everything.
    ("deleting",
     grant(status={"observedGeneration": 2, "conditions": [READY]}, deletionTimestamp="2026-01-01T00:00:00Z"),
     kstatus.TERMINATING, "Resource scheduled for deletion"),
    # generic.go checkGeneration: an unobserved generation is InProgress, even with Ready=True.
    ("generation not observed", grant(3, {"observedGeneration": 2, "conditions": [READY]}),
     kstatus.IN_PROGRESS, "EcrAccessGrant generation is 3, but latest observed generation is 2"),
    # generic.go: Stalled=True is Failed with its message.
    ("stalled", grant(status={"observedGeneration": 2, "conditions": [
        cond("Ready", "False", "no role"), cond("Stalled", "True", "Role r was not found.")]}),
     kstatus.FAILED, "Role r was not found."),
    # generic.go: Reconciling=True is InProgress with its message.
    ("reconciling", grant(status={"observedGeneration": 2, "conditions": [
        cond("Ready", "False", "x"), cond("Reconciling", "True", "Throttled; retrying.")]}),
     kstatus.IN_PROGRESS, "Throttled; retrying."),
    # generic.go: one pass in list order, so the first of Reconciling/Stalled that is True decides.
    ("reconciling listed first", grant(status={"observedGeneration": 2, "conditions": [
        cond("Reconciling", "True", "retrying"), cond("Stalled", "True", "stuck")]}),
     kstatus.IN_PROGRESS, "retrying"),
    ("stalled listed first", grant(status={"observedGeneration": 2, "conditions": [
        cond("Stalled", "True", "stuck"), cond("Reconciling", "True", "retrying")]}),
     kstatus.FAILED, "stuck"),
    # Stalled=False / Reconciling=False are no signal.
    ("false abnormal conditions", grant(status={"observedGeneration": 2, "conditions": [
        cond("Stalled", "False"), cond("Reconciling", "False"), READY]}),
     kstatus.CURRENT, "Resource is Ready"),
    # status.go checkReadyCondition.
    ("ready", grant(status={"observedGeneration": 2, "conditions": [READY]}), kstatus.CURRENT, "Resource is Ready"),
    ("not ready", grant(status={"observedGeneration": 2, "conditions": [cond("Ready", "False", "waiting")]}),
     kstatus.IN_PROGRESS, "waiting"),
    ("ready unknown", grant(status={"observedGeneration": 2, "conditions": [cond("Ready", "Unknown", "?")]}),
     kstatus.IN_PROGRESS, "?"),
    ("ready with an odd value is skipped", grant(status={"observedGeneration": 2, "conditions": [
        cond("Ready", "Maybe")]}), kstatus.CURRENT, "Resource is current"),
    # status.go Compute: no known condition at all is Current -- including a grant the operator never saw.
    ("no status", grant(1), kstatus.CURRENT, "Resource is current"),
    ("observedGeneration missing skips the generation check", grant(5, {"conditions": [READY]}),
     kstatus.CURRENT, "Resource is Ready"),
    ("no generation skips the generation check", grant(None, {"observedGeneration": 9, "conditions": [READY]}),
     kstatus.CURRENT, "Resource is Ready"),
]


@pytest.mark.parametrize(("obj", "status", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_kstatus_rules(obj: dict[str, Any], status: str, message: str) -> None:
    assert kstatus.compute(obj) == kstatus.Result(status, message)


@pytest.mark.parametrize(("api_version", "kind"), [("apps/v1", "Deployment"), ("v1", "Pod"), ("batch/v1", "Job"),
                                                   ("apiextensions.k8s.io/v1", "CustomResourceDefinition")])
def test_builtin_kinds_with_their_own_rules_are_refused(api_version: str, kind: str) -> None:
    with pytest.raises(NotImplementedError, match=kind):
        kstatus.compute({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}})
