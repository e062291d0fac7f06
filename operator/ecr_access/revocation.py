"""Re-judging grants when what judges them changes, and the status of an EcrGrantPolicy (pure).

Every sync judges the grants it derives from (`tenancy`), so a narrowed policy holds from the next
sync of each repository on. That alone would wait for the drift pass; a revocation must take
seconds. So the operator watches policies and namespace labels, and on each change asks the drift
loop to check again exactly the grants the change can affect:
- a policy created, edited, deleted or made malformed: the grants in the namespaces its old or new
  version selects;
- a namespace relabelled: its grants, if the set of policies selecting it changed.
A re-check applies the grant as the drift pass does, and what is no longer permitted is undone by
the syncs it runs, as a delete would undo it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ecr_access.conditions import Finding, Severity, kstatus
from ecr_access.grants import LiveGrants
from ecr_access.model import GrantKey
from ecr_access.tenancy import NAME_LABEL, GrantPolicy, PolicyError

Labels = Mapping[str, str]


class Watch:
    """What the policies and namespace labels were when last seen, to tell what a change affects."""

    def __init__(self) -> None:
        self._policies: dict[str, GrantPolicy | None] = {}
        self._labels: dict[str, dict[str, str]] = {}

    def policy(self, name: str, now: GrantPolicy | None, live: LiveGrants,
               labels_of: Callable[[str], Labels], *, listing: bool = False) -> set[GrantKey]:
        """A policy is now `now` (None: deleted or malformed, which permits nothing): the grants to
        re-judge. `listing`: seen in a listing (kopf's at start-up, or its re-listing after a lost
        watch). A policy first seen in the start-up listing was judged with already (kopf fills its
        indexes before any handler runs); one seen before, and different now, changed meanwhile."""
        seen = name in self._policies
        before = self._policies.get(name)
        self._policies[name] = now
        if (listing and not seen) or (seen and before == now):
            return set()
        versions = [item for item in (before, now) if item is not None]
        return {grant.key for grant in live.everything()
                if any(item.selector.selects(_with_name(grant.key.namespace, labels_of(grant.key.namespace)))
                       for item in versions)}

    def namespace(self, name: str, labels: Labels, policies: Iterable[GrantPolicy],
                  live: LiveGrants, *, listing: bool = False) -> set[GrantKey]:
        """A namespace's labels are now `labels` (deleted: {}): its grants, if that changes which
        policies select it. `listing`: seen in kopf's initial listing, which the grants were judged
        with. A namespace created later may have had grants judged before its labels were indexed
        (one `kubectl apply` creating both), so its first sight counts as a change from no labels."""
        before = self._labels.get(name)
        self._labels[name] = dict(labels)
        if before is None:
            if listing:
                return set()
            before = {}
        if before == labels:
            return set()
        listed = list(policies)
        selected_before = {item.name for item in listed if item.selector.selects(_with_name(name, before))}
        selected_now = {item.name for item in listed if item.selector.selects(_with_name(name, labels))}
        if selected_before == selected_now:
            return set()
        return {grant.key for grant in live.everything() if grant.key.namespace == name}


def _with_name(namespace: str, labels: Labels) -> dict[str, str]:
    return {**labels, NAME_LABEL: namespace}


def policy_status(parsed: GrantPolicy | PolicyError, generation: int, previous: Mapping[str, Any] | None,
                  now: str) -> dict[str, Any]:
    """The policy's status: Ready, or False/InvalidPolicy naming the field. Nothing that changes
    from pass to pass (no counters), so an unchanged policy writes nothing."""
    if isinstance(parsed, PolicyError):
        problem = Finding("InvalidPolicy", f"{parsed}; this policy permits nothing until it is fixed.",
                          Severity.TERMINAL)
        ready = ("False", problem.reason, problem.message)
        problems = [problem]
    else:
        ready = ("True", "Valid", "The policy is valid and enforced for the namespaces it selects.")
        problems = []
    return {"observedGeneration": generation, "conditions": kstatus(ready, problems, generation, previous, now)}
