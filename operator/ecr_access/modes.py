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
    # When the change was noticed (the reconciler's clock): an answer that arrived at or after it
    # shows AWS as it was after the change, so it is fresh enough however old it is by the time
    # the apply gets to it. Under the AWS rate limit a burst's applies queue for minutes, and
    # without this each one re-read a role that a queued apply of the same burst had just read.
    noticed: float | None = None

    def age(self, default: float, now: float) -> float:
        """How old a cached answer may be for this apply at `now`: `max_age` (or `default`), or
        anything read since the change was noticed."""
        age = default if self.max_age is None else self.max_age
        return age if self.noticed is None else max(age, now - self.noticed)

    @classmethod
    def drift(cls, since: float) -> ApplyMode:
        """A drift pass that began at `since`: reuse what the pass read, never an answer from before
        it (however young: the pass would miss drift since), and wait out the back-off of refused
        principals."""
        return cls(math.inf, since=since, debounce=False, from_index=True, offer_refused=False)

    @classmethod
    def change(cls, noticed: float) -> ApplyMode:
        """A change handler's apply, for a change noticed at `noticed`."""
        return cls(noticed=noticed)

    @classmethod
    def requested(cls) -> ApplyMode:
        """A reconcile-now request: fresh AWS reads, and the grant itself asks again."""
        return cls(0.0, debounce=False, from_index=True, offer_refused=True)
