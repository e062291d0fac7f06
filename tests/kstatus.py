"""kstatus, the status model Flux (`wait`, `healthChecks`) and `kubectl wait` rely on, ported to Python.

The e2e suite asserts that a grant is Current / InProgress / Failed / Terminating at the right moments, i.e. that
Flux would judge it as a user expects. This port covers the generic rules, those kstatus applies to custom
resources; each rule cites its source in sigs.k8s.io/cli-utils/pkg/kstatus/status:
- `status.go` `Compute`: generic rules first, then the Ready-condition fallback, else Current;
- `generic.go` `checkGenericProperties` and `checkGeneration`;
- `status.go` `checkReadyCondition`.

The built-in kinds that kstatus judges by their own rules (`core.go` `legacyTypes`: Deployment, Pod, Job, ...) are
out of scope: `compute` refuses them rather than give an answer kstatus would not.

A caveat that comes from kstatus itself: an object with no `status.observedGeneration` skips the generation check
(`checkGeneration`), and one with no conditions at all is Current ("Resource is current"). So a grant that the
operator has not yet seen is Current to Flux for the seconds before its first status write.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

CURRENT = "Current"
IN_PROGRESS = "InProgress"
FAILED = "Failed"
TERMINATING = "Terminating"

# core.go, legacyTypes: "<group>/<Kind>" (or "<Kind>" for the core group) of the kinds with type-specific rules.
LEGACY_TYPES = frozenset({
    "Service", "Pod", "Secret", "PersistentVolumeClaim", "ConfigMap",
    "apps/StatefulSet", "apps/DaemonSet", "extensions/DaemonSet", "apps/Deployment", "extensions/Deployment",
    "apps/ReplicaSet", "extensions/ReplicaSet", "policy/PodDisruptionBudget", "batch/CronJob", "batch/Job",
    "apiextensions.k8s.io/CustomResourceDefinition",
})


@dataclasses.dataclass(frozen=True)
class Result:
    """status.go `Result`, without the synthesized conditions."""

    status: str
    message: str


def compute(obj: Mapping[str, Any]) -> Result:
    """status.go `Compute` for a custom resource (a full object, status included)."""
    kind_key = _group_kind(obj)
    if kind_key in LEGACY_TYPES:
        raise NotImplementedError(f"kstatus judges {kind_key} by type-specific rules (core.go), not ported here")
    result = _check_generic_properties(obj)
    if result is not None:
        return result
    result = _check_ready_condition(obj)
    if result is not None:
        return result
    # status.go Compute: "we assume that the absence of any known conditions means the resource is current".
    return Result(CURRENT, "Resource is current")


def _check_generic_properties(obj: Mapping[str, Any]) -> Result | None:
    """generic.go `checkGenericProperties`."""
    metadata = obj.get("metadata") or {}
    # "Check if the resource is scheduled for deletion": any non-empty deletionTimestamp.
    if metadata.get("deletionTimestamp"):
        return Result(TERMINATING, "Resource scheduled for deletion")
    result = _check_generation(obj)
    if result is not None:
        return result
    # One pass over the conditions in their listed order: the first Reconciling=True or Stalled=True decides.
    for condition in _conditions(obj):
        if condition.get("type") == "Reconciling" and condition.get("status") == "True":
            return Result(IN_PROGRESS, str(condition.get("message", "")))
        if condition.get("type") == "Stalled" and condition.get("status") == "True":
            return Result(FAILED, str(condition.get("message", "")))
    return None


def _check_generation(obj: Mapping[str, Any]) -> Result | None:
    """generic.go `checkGeneration`: skipped unless both metadata.generation and status.observedGeneration exist."""
    generation = (obj.get("metadata") or {}).get("generation")
    if generation is None:
        return None
    status = obj.get("status")
    observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
    if observed is None or observed == generation:
        return None
    kind = obj.get("kind", "")
    return Result(IN_PROGRESS, f"{kind} generation is {generation}, but latest observed generation is {observed}")


def _check_ready_condition(obj: Mapping[str, Any]) -> Result | None:
    """status.go `checkReadyCondition`: the first Ready condition; True is Current, False or Unknown InProgress,
    any other value is skipped."""
    for condition in _conditions(obj):
        if condition.get("type") != "Ready":
            continue
        value = condition.get("status")
        if value == "True":
            return Result(CURRENT, "Resource is Ready")
        if value in ("False", "Unknown"):
            # newInProgressStatus(reason, message): the message is the condition's.
            return Result(IN_PROGRESS, str(condition.get("message", "")))
    return None


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    return [item for item in conditions or [] if isinstance(item, Mapping)]


def _group_kind(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    kind = str(obj.get("kind", ""))
    return f"{group}/{kind}" if group else kind
