"""The operator's IAM policy (deploy/iam/operator-policy.json), loaded and evaluated for the tests.

`allows` is a small evaluator for the subset of IAM that the file uses: Allow statements, Action and Resource
lists with `*`/`?` wildcards, ArnEquals/ArnLike/StringEquals conditions, and ForAllValues:StringLike over a
multi-valued key such as aws:TagKeys. It answers "would AWS let the operator
make this call?", which is what a reviewer of the policy wants to know. Anything beyond that subset (Deny,
NotAction, NotResource, other condition operators) is rejected, so that the file cannot grow past what the
evaluator understands without a test failing.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Mapping
from typing import Any

from tests.deploy.manifests import DEPLOY

POLICY_PATH = DEPLOY / "iam" / "operator-policy.json"

SUPPORTED_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition"}
SUPPORTED_OPERATORS = {"ArnEquals", "ArnLike", "StringEquals", "ForAllValues:StringLike"}
Context = Mapping[str, "str | list[str]"]


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
    context = context or {}
    for statement in statements():
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
