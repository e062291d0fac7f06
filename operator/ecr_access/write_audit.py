"""What one accepted repository-policy write is told: its AUDIT line and its metric counts.

One log line per write: which principals it added and removed, the grants they are for, and what
asked for the write, so that "who gave this role access?" has an answer in the logs alone. The
drift it repaired is counted by kind (`policy_writes` says what it was).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ecr_access import policy, policy_writes
from ecr_access.grants import Changes, LiveGrant
from ecr_access.metrics import Metrics
from ecr_access.model import RepositoryRef, RoleRef

# The repositories' logger: what a search for a repository's audit lines has always matched.
logger = logging.getLogger("ecr_access.repositories")


def record(metrics: Metrics, known_arn: Callable[[RoleRef], str | None], prefix: str, repo: RepositoryRef,
           before: policy.Document | None, after: policy.Document | None, grants: Iterable[LiveGrant],
           requested: Changes, *, known: policy.Document | None, has_known: bool,
           orphan: bool) -> frozenset[tuple[str, str]]:
    """Log and count the write of `after` over `before`; `known`: what the operator last saw there
    (`has_known`: whether it saw anything). Returns the (Sid, principal) pairs it put back, for
    their grants' DriftRepaired Event."""
    found = policy_writes.change(before, after, prefix, known=known, has_known=has_known)
    serving = sorted(str(grant.key) for grant in grants if known_arn(grant.spec.role) in found.changed)
    metrics.written("written")
    if orphan:
        metrics.repaired("orphan", max(1, len(found.removed)))
    metrics.repaired("statement", found.statements_restored)
    metrics.repaired("principal", found.principals_repaired)
    one = next(iter(requested)) if len(requested) == 1 else None  # its JSON `grant` field
    logger.info("AUDIT %s %s: principals added %s, removed %s; for grants %s; requested by %s",
                "DeleteRepositoryPolicy" if after is None else "SetRepositoryPolicy", repo.arn,
                list(found.added) or "none", list(found.removed) or "none", serving or "none",
                policy_writes.asking(requested, orphan=orphan), extra=one.log_ref() if one else {})
    return found.restored
