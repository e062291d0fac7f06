"""What a namespace may grant: `EcrGrantPolicy` objects, judged against a grant (pure; DESIGN §5).

A grant makes the operator, with its own AWS permissions, give a role ECR actions on repositories
and attach a managed policy to it. Who may create a grant in a namespace is RBAC's business; what
the namespace may grant is decided here, from the cluster-scoped policies that select it:

- the grant as a whole is permitted when at least one selecting policy allows its resolved role
  ARN, its `managedPolicy` and every one of its actions;
- each repository is permitted when one selecting policy allows all of that and the repository;
- no selecting policy at all means nothing is permitted (secure by default).

Globs use `*` only, matching any run of characters (`/` too). Role and repository globs match
ARNs exactly otherwise; action globs ignore case, as IAM does. A policy's `actions` add to the
reference's twelve pull actions, which every policy allows: write actions need an explicit allow.

The judging runs where the shared statements and a role's managed policies are derived (every
sync), not only when the grant itself is handled, so a narrowed policy is enforced by every sync
of every repository, and a revoked grant's access is undone like a delete's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ecr_access.model import REFERENCE_ACTIONS, GrantSpec, ManagedPolicy, RepositoryRef

NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# What a glob may hold: the characters of an IAM or ECR ARN, or of an action, and '*'.
_GLOB = re.compile(r"^[A-Za-z0-9*:/_+=,.@-]+$")
_REFERENCE = frozenset(action.lower() for action in REFERENCE_ACTIONS)


class PolicyError(ValueError):
    """A malformed policy: `field` is the path of the offending field (e.g. `spec.roles[1]`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        present = self.key in labels and labels[self.key] in self.values
        return present if self.operator == "In" else not present


@dataclasses.dataclass(frozen=True)
class Selector:
    """A `metav1.LabelSelector`: every matchLabels pair and every expression must hold; {} selects all."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels) and all(
            requirement.holds(labels) for requirement in self.match_expressions)


@dataclasses.dataclass(frozen=True)
class GrantPolicy:
    """One `EcrGrantPolicy`, parsed."""

    name: str
    selector: Selector
    roles: tuple[str, ...]
    repositories: tuple[str, ...]
    managed_policies: frozenset[ManagedPolicy] = frozenset(ManagedPolicy)
    actions: tuple[str, ...] = ()

    def allows_role(self, arn: str) -> bool:
        return any(glob(pattern, arn) for pattern in self.roles)

    def allows_action(self, action: str) -> bool:
        return action.lower() in _REFERENCE or any(glob(pattern, action, fold=True) for pattern in self.actions)

    def allows_grant(self, role_arn: str, managed: ManagedPolicy, actions: Iterable[str]) -> bool:
        return (self.allows_role(role_arn) and managed in self.managed_policies
                and all(self.allows_action(action) for action in actions))

    def allows_repository(self, arn: str) -> bool:
        return any(glob(pattern, arn) for pattern in self.repositories)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the policies permit one grant: the grant as a whole, and which of its repositories."""

    permitted: bool
    repositories: frozenset[RepositoryRef] = frozenset()
    message: str = ""  # what no policy allows, naming the namespace ("" when permitted)

    def allows(self, repo: RepositoryRef) -> bool:
        return self.permitted and repo in self.repositories

    @property
    def permits_any(self) -> bool:
        """Permitted on at least one repository: what a managed policy (it reads every repository in
        the account) and a Retain hand-over need."""
        return self.permitted and bool(self.repositories)


def open_verdict(spec: GrantSpec) -> Verdict:
    """Policy mode Open: everything the grant asks for is permitted."""
    return Verdict(True, frozenset(spec.repositories))


def glob(pattern: str, text: str, *, fold: bool = False) -> bool:
    """`*` matches any run of characters, everything else itself (ignoring case with `fold`).

    An ARN's first five ':' separate its fields (partition, service, region, account); a ':'
    after them is part of the resource (IAM role paths may hold ':'), and matches only a '*' or a
    ':' that is also past the pattern's fifth ':'. Otherwise `arn:*:iam::A:role/*` would allow a
    role that a tenant creates in an account of their own, with the path `/x:iam::A:role/`: the
    '*' takes `aws:iam::B:role/x`, and the rest of the pattern matches inside the path.

    Not a regular expression: a tenant chooses the text (repository names, role ARNs in other
    accounts), and `.*` patterns backtrack exponentially, on the operator's one event loop. This
    is the greedy two-pointer match, at most len(pattern) * len(text) steps."""
    if fold:
        pattern, text = pattern.lower(), text.lower()
    return _glob(_resource_colons(pattern), _resource_colons(text))


def _resource_colons(value: str) -> str:
    """`value` with every ':' after its fifth made a character that nothing else is (NUL)."""
    fields = value.split(":", 5)
    return value if len(fields) < 6 else ":".join(fields[:5]) + ":" + fields[5].replace(":", "\0")


def _glob(pattern: str, text: str) -> bool:
    p = t = 0
    star, resume = -1, 0  # the last '*' seen, and where in the text its run now ends
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume, p = p, t, p + 1
        elif p < len(pattern) and pattern[p] == text[t]:
            p, t = p + 1, t + 1
        elif star >= 0:
            resume += 1  # let the last '*' take one more character
            p, t = star + 1, resume
        else:
            return False
    return all(char == "*" for char in pattern[p:])


def judge(policies: Iterable[GrantPolicy], namespace: str, labels: Mapping[str, str], role_arn: str,
          spec: GrantSpec) -> Verdict:
    """What the policies selecting `namespace` (with `labels`) permit a grant whose role resolved
    to `role_arn`."""
    selecting = [item for item in policies if item.selector.selects({**labels, NAME_LABEL: namespace})]
    allowing = [item for item in selecting if item.allows_grant(role_arn, spec.managed_policy, spec.actions)]
    if not allowing:
        return Verdict(False, message=_refusal(selecting, namespace, role_arn, spec))
    permitted = frozenset(repo for repo in spec.repositories
                          if any(item.allows_repository(repo.arn) for item in allowing))
    return Verdict(True, permitted)


def _refusal(selecting: Sequence[GrantPolicy], namespace: str, role_arn: str, spec: GrantSpec) -> str:
    """Say which step no selecting policy allows: the role, then the managed policy, then actions."""
    if not selecting:
        return (f"No EcrGrantPolicy selects namespace {namespace}, so grants in it may grant nothing: ask a "
                "cluster admin for a policy.")
    named = ", ".join(sorted(item.name for item in selecting))
    roles = [item for item in selecting if item.allows_role(role_arn)]
    if not roles:
        return f"No EcrGrantPolicy selecting namespace {namespace} ({named}) allows role {role_arn}."
    managed = [item for item in roles if spec.managed_policy in item.managed_policies]
    if not managed:
        return (f"No EcrGrantPolicy selecting namespace {namespace} ({named}) allows managedPolicy "
                f"{spec.managed_policy.value} for role {role_arn}.")
    outside = sorted(action for action in spec.actions if not any(item.allows_action(action) for item in managed))
    if outside:
        return (f"No EcrGrantPolicy selecting namespace {namespace} ({named}) allows the actions "
                f"{', '.join(outside)} for role {role_arn}.")
    return (f"No single EcrGrantPolicy selecting namespace {namespace} ({named}) allows all of this grant's "
            f"actions for role {role_arn}.")


def parse_policy(name: str, spec: Any) -> GrantPolicy:
    """A policy from its spec; raises `PolicyError` naming the offending field."""
    if not isinstance(spec, Mapping):
        raise PolicyError("spec", "must be an object")
    return GrantPolicy(
        name=name,
        selector=_selector(spec.get("namespaceSelector")),
        roles=_globs(spec, "roles"),
        repositories=_globs(spec, "repositories"),
        managed_policies=_managed(spec.get("managedPolicies")),
        actions=_globs(spec, "actions", required=False),
    )


def _globs(spec: Mapping[str, Any], field: str, *, required: bool = True) -> tuple[str, ...]:
    raw = spec.get(field)
    if raw is None and not required:
        return ()
    if not isinstance(raw, list) or (required and not raw):
        raise PolicyError(f"spec.{field}", "must be a non-empty list of globs" if required else "must be a list")
    for index, item in enumerate(raw):
        if not isinstance(item, str) or not _GLOB.match(item):
            raise PolicyError(f"spec.{field}[{index}]", f"{item!r} is not a glob of ARN characters and '*'")
    return tuple(raw)


def _managed(raw: Any) -> frozenset[ManagedPolicy]:
    if raw is None:
        return frozenset(ManagedPolicy)
    if not isinstance(raw, list) or not raw:
        raise PolicyError("spec.managedPolicies", "must be a non-empty list of ReadOnly, PullOnly, None")
    try:
        return frozenset(ManagedPolicy(item) for item in raw)
    except ValueError:
        raise PolicyError("spec.managedPolicies", f"{raw!r}: each must be ReadOnly, PullOnly or None") from None


def _selector(raw: Any) -> Selector:
    if raw is None:
        raise PolicyError("spec.namespaceSelector", "is required ({} selects every namespace)")
    if not isinstance(raw, Mapping):
        raise PolicyError("spec.namespaceSelector", "must be a label selector")
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in labels.items()):
        raise PolicyError("spec.namespaceSelector.matchLabels", "must map label keys to string values")
    expressions = []
    for index, item in enumerate(raw.get("matchExpressions") or []):
        field = f"spec.namespaceSelector.matchExpressions[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise PolicyError(field, "needs a key")
        operator, values = item.get("operator"), item.get("values") or []
        if operator not in OPERATORS:
            raise PolicyError(f"{field}.operator", f"{operator!r} is not one of {', '.join(OPERATORS)}")
        if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
            raise PolicyError(f"{field}.values", "must be a list of strings")
        if operator in ("In", "NotIn") and not values:
            raise PolicyError(f"{field}.values", f"must not be empty with {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise PolicyError(f"{field}.values", f"must be empty with {operator}")
        expressions.append(Requirement(item["key"], operator, tuple(values)))
    return Selector(tuple(sorted(labels.items())), tuple(expressions))
