"""Can the grant's role really pull? The access check of a repository policy (issue 16), pure.

`Ready` used to mean "our statement is in the policy". A foreign `Deny` beside it still blocks the
pull: an explicit Deny wins over every Allow in IAM's evaluation. So after each sync the effective
policy, the one just read or written (no extra AWS call), is judged for the grant's role and
actions:

- a `Deny` with no `Condition` that covers the role and one of the grant's actions blocks the grant:
  the repository's verdict is `DeniedByPolicy`, naming the Deny's Sid. The grant's own statement is
  still written: the verdict reports, it holds nothing back, so the pull works as soon as the Deny goes;
- a covering `Deny` with a `Condition` cannot be judged here (it depends on the request: source
  VPC, time, tags...): the grant stays Ready, with a note and a Warning Event (`MayBeDenied`);
- nor can a `Deny` whose `NotPrincipal` names the role's ARN or its account: by the rule below it
  excludes the role, but AWS matches a `NotPrincipal` against the caller's own ARN, and nodes pull
  as assumed-role sessions (`arn:aws:sts::<account>:assumed-role/<role>/<session>`), which such a
  list names only if it lists that very session. It may still deny the nodes: `MayBeDenied` too.

"Covers the role": `Principal` is `*`, the role's ARN or its account (root ARN or bare account id);
or a `NotPrincipal` that excludes neither the role's ARN nor its account. "Covers an action":
`Action` matches it, or `NotAction` does not, with IAM's wildcards (`*`, `?`, case-insensitive).
An `Allow` never changes the verdict.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ecr_access import policy
from ecr_access.ports import Simulated

# What a node does before any pull: log in. Only an identity policy can allow it.
TOKEN_ACTION = "ecr:GetAuthorizationToken"


@dataclasses.dataclass(frozen=True)
class Denial:
    """A Deny statement that covers the role and `action`, one of the grant's."""

    sid: str  # "" when the statement has none
    action: str
    # Whether it cannot be judged here, and why not: a Condition, or a NotPrincipal that names the
    # role but none of its sessions (see `_covers_role`).
    conditional: bool
    because: str = "under a condition"

    @property
    def named(self) -> str:
        return f"Sid {self.sid!r}" if self.sid else "a statement with no Sid"


def denials(document: policy.Document | None, role_arn: str, actions: Sequence[str]) -> list[Denial]:
    """Every Deny in `document` that covers `role_arn` and one of `actions`, unconditional first."""
    found = []
    for statement in policy.statements(document):
        covers = _covers_role(statement, role_arn) if statement.get("Effect") == "Deny" else None
        action = next((item for item in actions if _covers_action(statement, item)), None) if covers else None
        if action is None:
            continue
        sid = str(statement.get("Sid") or "")
        if statement.get("Condition"):
            found.append(Denial(sid, action, True))
        elif covers == SESSIONS:
            found.append(Denial(sid, action, True, "unless its NotPrincipal lists the node's own session: it names "
                                "the role or its account, but AWS matches a NotPrincipal against the caller's "
                                "assumed-role session ARN, which nodes pull as"))
        else:
            found.append(Denial(sid, action, False))
    return sorted(found, key=lambda denial: denial.conditional)


COVERED, SESSIONS = "covered", "sessions"


def _covers_role(statement: Mapping[str, Any], role_arn: str) -> str | None:
    """COVERED, None, or SESSIONS for a NotPrincipal that excludes the role's ARN or account: the
    rule says that excludes the role, but AWS compares a NotPrincipal with the assumed-role session
    ARN of the caller (`arn:aws:sts::<account>:assumed-role/<name>/<session>`), which such a list
    names only if it lists that very session; so it may still deny the nodes, and cannot be judged."""
    names = _identities(role_arn)
    if "Principal" in statement:
        return COVERED if _principals(statement["Principal"]) & (names | {"*"}) else None
    if "NotPrincipal" in statement:
        excluded = _principals(statement["NotPrincipal"])
        if "*" in excluded:
            return None
        return SESSIONS if excluded & names else COVERED
    return None


def _identities(role_arn: str) -> frozenset[str]:
    """The principals that name the role: its ARN, its account's root ARN and bare account id."""
    parts = role_arn.split(":")
    if len(parts) < 5:
        return frozenset({role_arn})
    partition, account = parts[1], parts[4]
    return frozenset({role_arn, f"arn:{partition}:iam::{account}:root", account})


def _principals(value: Any) -> frozenset[str]:
    """The AWS principals a Principal or NotPrincipal element names; `*` for everyone. Service and
    federated principals are never an IAM role."""
    if value == "*":
        return frozenset({"*"})
    if not isinstance(value, Mapping):
        return frozenset()
    return frozenset(_strings(value.get("AWS")))


def _covers_action(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(_matches(pattern, action) for pattern in _strings(statement["Action"]))
    if "NotAction" in statement:
        return not any(_matches(pattern, action) for pattern in _strings(statement["NotAction"]))
    return False


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return [item for item in value if isinstance(item, str)]
    return []


def _matches(pattern: str, action: str) -> bool:
    return _compiled(pattern).fullmatch(action) is not None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    """IAM's action wildcards: `*` any run of characters, `?` any one; case-insensitive."""
    return re.compile("".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern),
                      re.IGNORECASE)


def identity_denials(simulated: Iterable[Simulated], role_arn: str) -> list[Simulated]:
    """What IAM's policy simulator says the role may not do, of what a pull needs
    (`ECR_ACCESS_VERIFY_IDENTITY`). The simulation covers identity policies only, so:
    - `ecr:GetAuthorizationToken` must be `allowed` (no repository policy can grant it);
    - a pull action `explicitDeny` is a denial wherever the repository is (an identity policy, a
      permissions boundary or an SCP denies it);
    - a pull action `implicitDeny` is a denial only on a repository in another account than the
      role's: across accounts both sides must allow, in the same account the repository policy
      alone does."""
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    denied = []
    for answer in simulated:
        if answer.decision == "allowed":
            continue
        if (answer.action.lower() == TOKEN_ACTION.lower() or answer.decision == "explicitDeny"
                or (answer.resource.count(":") >= 5 and answer.resource.split(":")[4] != account)):
            denied.append(answer)
    return denied
