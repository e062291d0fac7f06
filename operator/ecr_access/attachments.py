"""The managed-policy ledger, kept on the IAM role itself as tags (DESIGN §2.2).

Why on the role: whether the operator may detach `AmazonEC2ContainerRegistryReadOnly` from a role
depends on who attached it. A record in a grant's status can be lost (a transient failure rewrites
status, a backup is restored without it) or forged (anyone with `patch` on the status subresource),
and then the operator either strands an attachment or detaches someone else's. The role is where
IAM keeps the attachment itself, `GetRole` returns its tags at no extra cost, and only principals
allowed `iam:TagRole` on `ecraccess.io/*` keys can change them.

Two kinds of tag:
- `ecraccess.io/<8 hex cluster digest>`: the managed policies this cluster's live grants want on the
  role, as short names separated by spaces (`ReadOnly PullOnly`). Derived from the live grants every
  time the role is synced, like a repository's shared statements.
- `ecraccess.io/attached`: the managed policies an operator attached. Written *before*
  `AttachRolePolicy`, so a lost answer or a crash still leaves the record; cleared only *after*
  `DetachRolePolicy`, so a crash in between leaves a record of a policy that is gone (harmless,
  cleaned up next time) rather than a policy that nothing records.

A policy is detached only when `attached` lists it and no cluster's tag lists it. A policy someone
else attached is never in `attached`, so it is never detached.

`plan` is pure; `execute` carries a plan out through the `IamPort`, and logs an AUDIT line for each
write as it lands (a plan that fails half-way must not hide what it did). Locking, caching and
deciding what the live grants want belong to the caller (`ownership`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Mapping

from ecr_access import policy, policy_writes
from ecr_access.model import GrantKey, ManagedPolicy
from ecr_access.ports import AwsFault, IamPort

logger = logging.getLogger(__name__)

TAG_PREFIX = "ecraccess.io/"
ATTACHED_TAG = TAG_PREFIX + "attached"
# Short names the ledger knows how to attach and detach; anything else in a tag is kept untouched.
KNOWN = frozenset(item.value for item in ManagedPolicy if item is not ManagedPolicy.NONE)


def cluster_tag(cluster_id: str) -> str:
    return TAG_PREFIX + policy.cluster_digest(cluster_id)


def names(value: str | None) -> frozenset[str]:
    return frozenset((value or "").split())


def render(items: Iterable[str]) -> str:
    return " ".join(sorted(set(items)))


def arn_of(name: str, partition: str) -> str:
    arn = ManagedPolicy(name).arn(partition)
    assert arn is not None  # KNOWN holds no None
    return arn


def short_names(policy_arns: Iterable[str], partition: str) -> frozenset[str]:
    """Which of the ledger's managed policies are among a role's attached policy ARNs."""
    arns = set(policy_arns)
    return frozenset(name for name in KNOWN if arn_of(name, partition) in arns)


@dataclasses.dataclass(frozen=True)
class Ledger:
    """What a role's tags say, from this cluster's point of view."""

    mine: frozenset[str]  # what this cluster's live grants wanted when the role was last synced
    others: frozenset[str]  # what any other cluster's grants want
    attached: frozenset[str]  # what an operator attached

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], cluster_key: str) -> Ledger:
        others: set[str] = set()
        for key, value in tags.items():
            if key.startswith(TAG_PREFIX) and key not in (cluster_key, ATTACHED_TAG):
                others |= names(value)
        return cls(names(tags.get(cluster_key)), frozenset(others), names(tags.get(ATTACHED_TAG)))


@dataclasses.dataclass(frozen=True)
class Step:
    """One IAM write: set or remove a tag (`value` None removes it), or attach or detach a policy."""

    kind: str  # "tag" | "attach" | "detach"
    key: str  # the tag key, or the policy's short name
    value: str | None = None
    # For an attach that this plan recorded first: the `attached` tag as it was before, to put back
    # if IAM refuses the attach for good (the record must not claim what never happened).
    undo: str | None = None
    recorded: bool = False


def plan(
    ledger: Ledger, cluster_key: str, attached_now: frozenset[str], wanted: frozenset[str],
    hand_over: frozenset[str] = frozenset(),
) -> list[Step]:
    """The writes, in order, that make a role match what this cluster's live grants want.

    `attached_now`: the ledger's policies attached to the role (`short_names`). `wanted`: what this
    cluster's live grants want. `hand_over`: policies a Retain grant hands over: they leave
    `attached`, so that no operator detaches them later, and they stay attached.
    """
    steps: list[Step] = []
    if wanted != ledger.mine:
        steps.append(_tag(cluster_key, wanted))
    record = set(ledger.attached)
    for name in sorted(wanted - attached_now):
        recorded = name not in record
        before = render(record) or None
        if recorded:  # the record first: a lost answer or a crash must not lose it
            record.add(name)
            steps.append(_tag(ATTACHED_TAG, record))
        steps.append(Step("attach", name, undo=before if recorded else None, recorded=recorded))
    for name in sorted(hand_over & record):
        record.discard(name)
        steps.append(_tag(ATTACHED_TAG, record))
    for name in sorted((record & KNOWN) - wanted - ledger.others):
        if name in attached_now:
            steps.append(Step("detach", name))
        record.discard(name)  # after the detach: a crash in between leaves a harmless record
        steps.append(_tag(ATTACHED_TAG, record))
    return steps


def _tag(key: str, items: Iterable[str]) -> Step:
    value = render(items)
    return Step("tag", key, value or None)


@dataclasses.dataclass(frozen=True)
class Audit:
    """What a role write's AUDIT line names besides the write: the role, what asked for the sync,
    and which grants want each managed policy (by short name), so that "who gave this role
    access?" has an answer in the logs alone."""

    role_arn: str
    requested: GrantKey | None = None  # the grant whose apply or release this sync is; None: the drift check
    wanting: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def write(self, operation: str, what: str) -> None:
        logger.info("AUDIT %s %s: %s; requested by %s", operation, self.role_arn, what, self._asking(),
                    extra=self._ref())

    def policy(self, operation: str, name: str, policy_arn: str) -> None:
        grants = list(self.wanting.get(name, ())) if operation == "AttachRolePolicy" else []
        logger.info("AUDIT %s %s on %s; for grants %s; requested by %s", operation, policy_arn, self.role_arn,
                    grants or "none (no live grant wants it)", self._asking(), extra=self._ref())

    def _ref(self) -> dict[str, object]:  # the JSON `grant` field of a line one grant asked for
        return dict(self.requested.log_ref()) if self.requested is not None else {}

    def _asking(self) -> str:
        return policy_writes.asking([self.requested] if self.requested is not None else [])


def shared(steps: Iterable[Step]) -> bool:
    """Whether the steps depend on what other clusters did: a detach, or a write of `attached`."""
    return any(step.kind == "detach" or step.key == ATTACHED_TAG for step in steps)


async def execute(iam: IamPort, role_name: str, partition: str, tags: Mapping[str, str], steps: Iterable[Step],
                  audit: Audit | None = None) -> dict[str, str]:
    """Carry out `steps` in order; returns the role's tags as they are afterwards.

    Consecutive tag steps go out as one TagRole (and one UntagRole), before the attach or detach
    that follows them, which keeps the order that makes a crash harmless. An AwsFault stops it
    where it failed: every step is safe to repeat, so the next sync resumes. Each write that lands
    is logged by `audit` (by default, naming the role by its name).
    """
    audit = audit or Audit(role_name)
    now = dict(tags)
    pending: dict[str, str | None] = {}

    async def flush() -> None:
        setting = {key: value for key, value in pending.items() if value is not None and now.get(key) != value}
        removing = [key for key, value in pending.items() if value is None and key in now]
        pending.clear()
        if setting:
            await iam.tag_role(role_name, setting)
            audit.write("TagRole", ", ".join(f"{key}={value}" for key, value in sorted(setting.items())))
            now.update(setting)
        if removing:
            await iam.untag_role(role_name, removing)
            audit.write("UntagRole", ", ".join(f"{key} (was {now[key]})" for key in sorted(removing)))
            for key in removing:
                del now[key]

    for step in steps:
        if step.kind == "tag":
            pending[step.key] = step.value
            continue
        await flush()
        if step.kind == "attach":
            try:
                await iam.attach_role_policy(role_name, arn_of(step.key, partition))
                audit.policy("AttachRolePolicy", step.key, arn_of(step.key, partition))
            except AwsFault as fault:
                if step.recorded and not fault.kind.transient:
                    # Refused for good (AccessDenied, a quota): it never happened, so the record must
                    # not say so, or a person's later attachment would pass for ours. A lost answer
                    # (transient) keeps the record: IAM may well have attached it.
                    pending[ATTACHED_TAG] = step.undo
                    with contextlib.suppress(AwsFault):
                        await flush()
                raise
        else:
            await iam.detach_role_policy(role_name, arn_of(step.key, partition))
            audit.policy("DetachRolePolicy", step.key, arn_of(step.key, partition))
    await flush()
    return now
