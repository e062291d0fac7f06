"""What ECR checks and moto does not: every principal of a repository policy must exist.

ECR refuses a whole SetRepositoryPolicy whose document names an IAM role it cannot see, with
`InvalidParameterException: ... 'Invalid repository policy provided'`. moto accepts anything, so
the operator's handling of that refusal (one bad principal must not block the others) could not be
tested end to end. In validating mode the proxy looks each role principal up in the upstream's IAM
(GetRole) before forwarding, and answers ECR's refusal itself when one is missing. A role in an
account the upstream does not serve (moto serves one account to plain credentials) counts as
missing, as a mistyped ARN in a real account would.
"""

from __future__ import annotations

import json
import re
from typing import Any

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/(?:.*/)?(?P<name>[^/]+)$")
# ECR's own answer, as botocore will classify it: (status, query code, fault type, JSON type, message).
REFUSAL = (400, "InvalidParameterException", "Sender", "InvalidParameterException",
           "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'")


def role_principals(body: bytes) -> list[tuple[str, str, str]]:
    """(ARN, account, role name) of each role principal in a SetRepositoryPolicy body (JSON protocol)."""
    try:
        document = json.loads(json.loads(body)["policyText"])
    except (ValueError, KeyError, TypeError):
        return []
    raw = document.get("Statement", []) if isinstance(document, dict) else []
    found: list[tuple[str, str, str]] = []
    for statement in raw if isinstance(raw, list) else [raw]:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        value: Any = principal.get("AWS", []) if isinstance(principal, dict) else []
        for item in [value] if isinstance(value, str) else value:
            match = ROLE_ARN.fullmatch(item) if isinstance(item, str) else None
            if match is not None:
                found.append((item, match["account"], match["name"]))
    return found
