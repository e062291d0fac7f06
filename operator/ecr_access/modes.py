"""How one apply may use what the operator already knows (`ApplyMode`): a change handler's, a drift
pass's, or a reconcile-now request's."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class ApplyMode:
    """How one apply may use what the operator already knows."""

    max_age: float | None = None  # how old a cached AWS answer may be; None: `Config.cache_ttl`
    since: float | None = None  # and, if given, read at or after this moment (the reconciler's clock)
    debounce: bool = True  # a change may be one of a burst (a GitOps sync): its syncs wait for the rest
    # The grant is the live index's own entry (the drift check): its statements come from the index
    # alone, and if it leaves the index before its role is synced (it began deleting), `GrantGone`
    # is raised: a release may be undoing that very work.
    from_index: bool = False
    offer_refused: bool = True  # offer the role again at once where ECR refused it (`refusals`)

    @classmethod
    def drift(cls, since: float) -> ApplyMode:
        """A drift pass that began at `since`: reuse what the pass read, never an answer from before
        it (however young: the pass would miss drift since), and wait out the back-off of refused
        principals."""
        return cls(math.inf, since=since, debounce=False, from_index=True, offer_refused=False)

    @classmethod
    def requested(cls) -> ApplyMode:
        """A reconcile-now request: fresh AWS reads, and the grant itself asks again."""
        return cls(0.0, debounce=False, from_index=True, offer_refused=True)
