"""Why the operator is calling AWS: a grant changed, a drift pass, or the orphan sweep.

A context variable, so that it follows the work wherever it runs: asyncio tasks copy the context
they were created in, and the AWS adapter runs each blocking call in its threads inside a copy of
the caller's context (`aws.session`). A read that concurrent callers share (`coalesce`) carries
the cause of whoever started it; the others asked for nothing more.

The adapter puts the cause on each request's User-Agent (`ecr-access-cause/<cause>`) and on the
`ecr_access_aws_requests_total` metric. CloudTrail records the User-Agent, so an audit can tell a
drift repair from a grant's apply; the benchmark's counting proxy splits what grant changes cost
from what drift passes cost by it. The User-Agent is not part of a SigV4 signature, so adding it
after signing is safe.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

CHANGE = "change"  # a grant (or a policy, or an account) changed: kopf's handlers, and their retries
DRIFT = "drift"  # a drift pass, and the repairs it makes
SWEEP = "sweep"  # the orphan sweep
CAUSES = (CHANGE, DRIFT, SWEEP)

USER_AGENT_TOKEN = "ecr-access-cause/"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("ecr_access_cause", default=CHANGE)


def current() -> str:
    """The cause of the work running now (`CHANGE` unless a drift pass or sweep said otherwise)."""
    return _current.get()


@contextlib.contextmanager
def acting_for(cause: str) -> Iterator[None]:
    """Mark the AWS calls made in this block (and in tasks it creates) as made for `cause`."""
    if cause not in CAUSES:
        raise ValueError(f"unknown cause {cause!r}; one of {', '.join(CAUSES)}")
    token = _current.set(cause)
    try:
        yield
    finally:
        _current.reset(token)
