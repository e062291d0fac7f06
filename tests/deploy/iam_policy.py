"""The IAM policies of deploy/iam, loaded and evaluated for the tests.

Three permissions policies: the operator's own (operator-policy.json), and the two for the roles it assumes in
other accounts (DESIGN §6): registry-account-policy.json (ECR actions on the repositories of a central registry
account) and cloud-account-policy.json (IAM actions on the roles of a cloud's account). The last two name their
account with the placeholder `PLACEHOLDER_ACCOUNT`, which deploy/iam/README.md has the user replace; `load_policy`
does the same replacement, so that a test evaluates the file as it would be created in that account.

`allows` is a small evaluator for the subset of IAM that the files use: Allow statements, Action and Resource
lists with `*`/`?` wildcards, ArnEquals/ArnLike/StringEquals conditions, and ForAllValues:StringLike over a
multi-valued key such as aws:TagKeys. It answers "would AWS let the operator
make this call?", which is what a reviewer of the policy wants to know. Anything beyond that subset (Deny,
NotAction, NotResource, other condition operators) is rejected, so that the file cannot grow past what the
evaluator understands without a test failing.

The module-level functions (`load`, `statements`, `granted_actions`, `allows`) are operator-policy.json's;
`load_policy(path, account=...)` gives the same four for any of the files.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.deploy.manifests import DEPLOY

IAM = DEPLOY / "iam"
POLICY_PATH = IAM / "operator-policy.json"
OPERATOR_POLICY = POLICY_PATH
REGISTRY_ACCOUNT_POLICY = IAM / "registry-account-policy.json"  # the role in a central registry account
CLOUD_ACCOUNT_POLICY = IAM / "cloud-account-policy.json"  # the role in the account of a cloud's node roles
TRUST_OPERATOR = IAM / "trust-operator.json"  # the trust policy of both
# The account the two account policies are written for, replaced by the real one (deploy/iam/README.md).
PLACEHOLDER_ACCOUNT = "444455556666"
# The operator's own account in the trust policies (trust-irsa.json, trust-pod-identity.json, trust-operator.json).
OPERATOR_PLACEHOLDER_ACCOUNT = "111122223333"
# Actions a policy grants that are never an API call of their own: AWS authorizes them inside another call.
# sts:TagSession: EKS Pod Identity marks its session tags transitive, so every AssumeRole the operator makes with
# Pod Identity credentials carries them into the new session, and AWS checks sts:TagSession on the target role.
AUTHORIZED_WITHIN = {"sts:TagSession": "sts:AssumeRole"}

SUPPORTED_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition"}
SUPPORTED_OPERATORS = {"ArnEquals", "ArnLike", "StringEquals", "ForAllValues:StringLike"}
Context = Mapping[str, "str | list[str]"]


@dataclasses.dataclass(frozen=True)
class Policy:
    """One permissions policy document, as created in one account."""

    path: Path
    document: Mapping[str, Any]

    def statements(self) -> list[dict[str, Any]]:
        return [dict(statement) for statement in self.document["Statement"]]

    def granted_actions(self) -> set[str]:
        return {action for statement in self.statements() for action in _as_list(statement["Action"])}

    def called_actions(self) -> set[str]:
        """The granted actions that are API calls: what a recording of the operator's calls should show, each one
        (`AUTHORIZED_WITHIN` are granted for a call, never called)."""
        return self.granted_actions() - set(AUTHORIZED_WITHIN)

    def allows(self, action: str, resource: str, context: Context | None = None) -> bool:
        """Whether the policy allows `action` on `resource` with the given condition keys (e.g. iam:PolicyARN;
        aws:TagKeys is a list)."""
        return _allows(self.statements(), action, resource, context or {})


@functools.cache
def load_policy(path: Path = OPERATOR_POLICY, *, account: str | None = None) -> Policy:
    """The policy in `path`, with `PLACEHOLDER_ACCOUNT` replaced by `account` (the 12-digit id of the account the
    role is created in) when given, as deploy/iam/README.md's `sed` does. operator-policy.json has no placeholder:
    it names every account with `*`."""
    text = path.read_text()
    if account is not None:
        if not (len(account) == 12 and account.isdigit()):
            raise ValueError(f"{account!r} is not a 12-digit AWS account id")
        text = text.replace(PLACEHOLDER_ACCOUNT, account)
    return Policy(path, json.loads(text))


@functools.cache
def load() -> dict[str, Any]:
    return json.loads(POLICY_PATH.read_text())


def statements() -> list[dict[str, Any]]:
    return list(load()["Statement"])


def granted_actions() -> set[str]:
    return {action for statement in statements() for action in _as_list(statement["Action"])}


def allows(action: str, resource: str, context: Context | None = None) -> bool:
    """Whether the policy allows `action` on `resource` with the given condition keys (e.g. iam:PolicyARN;
    aws:TagKeys is a list)."""
    return _allows(statements(), action, resource, context or {})


def _allows(policy_statements: list[dict[str, Any]], action: str, resource: str, context: Context) -> bool:
    for statement in policy_statements:
        unknown = set(statement) - SUPPORTED_KEYS
        if unknown or statement["Effect"] != "Allow":
            raise ValueError(f"statement {statement.get('Sid')} uses {unknown or 'Deny'}: extend the evaluator")
        if not any(_matches(pattern, action, case_sensitive=False) for pattern in _as_list(statement["Action"])):
            continue
        if not any(_matches(pattern, resource) for pattern in _as_list(statement["Resource"])):
            continue
        if _conditions_hold(statement.get("Condition", {}), context):
            return True
    return False


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Context) -> bool:
    for operator, tests in conditions.items():
        if operator not in SUPPORTED_OPERATORS:
            raise ValueError(f"condition operator {operator} is not understood by this evaluator")
        for key, wanted in tests.items():
            value = context.get(key)
            if value is None:
                # A missing key never satisfies a condition here. (IAM lets ForAllValues pass on a missing
                # key; this evaluator is stricter, so a policy that relied on that would fail its test.)
                return False
            if operator == "ForAllValues:StringLike":
                values = [value] if isinstance(value, str) else value
                if not values or not all(any(_matches(p, item) for p in _as_list(wanted)) for item in values):
                    return False
            elif not isinstance(value, str):
                return False
            elif operator == "ArnLike":
                if not any(_matches(pattern, value) for pattern in _as_list(wanted)):
                    return False
            elif value not in _as_list(wanted):
                return False
    return True


def _matches(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
