"""Role lookup: which IAM role a spec names, and which managed policies it has, cached per role.

N grants on one role cost one GetRole per burst: lookups are cached and shared (`coalesce.Cache`).
A lookup's age is the caller's choice (`max_age`): other grants' roles, as a repository's
principals, may be as old as the last drift pass; a grant's own apply passes a younger age
so that a deleted role is noticed soon; a drift pass wants what it read itself (`since` its start);
and a write that depends on what other clusters did lately asks for tags read just now
(`attachments`).

Every answer, cached or not, is checked against the ARN the spec gives (`RoleRef.matches`):
GetRole looks a role up by name only, and IAM names ignore case, so `MyRole` and `myrole` share one
record (`RoleKey`) while a wrong path or account never passes for the role.

A role in another account is looked up with that account's credentials when an EcrAccessAccount
configures it (`ports.Accounts`); otherwise it cannot be looked up at all, and its ARN is used as
the spec gives it (ECR itself checks that the principal exists).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from ecr_access.coalesce import Cache, retrieved
from ecr_access.model import RoleKey, RoleRef
from ecr_access.ports import Accounts, AwsFault, IamPort, RoleInfo


class RoleDirectory:
    """Roles by `RoleKey`, in every account the operator reaches, and their attached policies (ARNs)."""

    def __init__(self, accounts: Accounts, *, cache_ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.accounts = accounts
        self.account = accounts.account
        self.cache_ttl = cache_ttl
        self._roles: Cache[RoleKey, RoleInfo | None] = Cache(clock)
        self._attached: Cache[RoleKey, frozenset[str]] = Cache(clock)

    async def resolve(self, role: RoleRef, *, max_age: float | None = None, since: float | None = None,
                      with_attached: bool = False) -> RoleInfo | None:
        """The role the spec names, or None when it does not exist (or is another role by that name).
        `since`: only an answer that arrived at or after it will do (`coalesce.Cache`).

        `with_attached`: also list its attached policies, at the same age, alongside (the ledger
        asks next), unless the role was last seen missing. One after the other under the IAM rate
        limit, the tags were over a second old by the time the ledger planned a first attach, which
        then read both again (`ownership.FRESH`): two reads of each for every new role."""
        age = self.cache_ttl if max_age is None else max_age
        known = self._roles.peek(role.key)
        if with_attached and self.reaches(role.account) and (known is None or known.value is not None):
            listing = asyncio.ensure_future(self.attached(role, age, since=since))
            listing.add_done_callback(retrieved)  # a failure is the ledger's to meet, when it asks
        info = await self.lookup(role, age, since=since)
        return info if info is not None and role.matches(info.arn) else None

    async def principal(self, role: RoleRef) -> RoleInfo | None:
        """Another grant's role, as a principal of a repository's shared statement: `resolve`,
        except that a role named by ARN in another account whose lookup fails (that account's role
        cannot be assumed, or may not call GetRole) is written as the spec gives it, as in an account
        no EcrAccessAccount configures. That account's trouble is its own grant's to report: it must
        not fail the sync for every other grant on the repository, nor drop the role's access.

        Any answer will do, however old: a repository's principals are the roles of every grant
        naming it, and with `cache_ttl` a sync for one grant re-read every other grant's role once
        a burst outlasted it (12,286 GetRole for 1,000 roles at N=10,000). The answers are kept
        fresh where it matters: each grant's own apply resolves its role at `cache_ttl`, and each
        drift pass re-reads the role of every live grant (`since` its start). Staleness in between
        writes nothing wrong: a principal is written as an ARN, which ECR checks, and a role
        deleted since is refused, upon which `refusals` re-resolves every role."""
        try:
            return await self.resolve(role, max_age=math.inf)
        except AwsFault:
            if role.arn is None or role.account == self.account:
                raise  # the operator's own IAM: every grant's lookups share its trouble
            return RoleInfo(arn=role.arn, role_id="")

    async def lookup(self, role: RoleRef, max_age: float, *, since: float | None = None) -> RoleInfo | None:
        """GetRole by name, tags included, unchecked against the spec's ARN (see `resolve`)."""
        if role.arn and not self.reaches(role.account):
            # No credentials there: it cannot be looked up from here; ECR itself checks it exists.
            return RoleInfo(arn=role.arn, role_id="")
        return await self._roles.fetch(role.key, max_age, lambda: self.iam(role.account).get_role(role.name),
                                       since=since)

    async def attached(self, role: RoleRef, max_age: float, *, since: float | None = None) -> frozenset[str]:
        """The ARNs of the managed policies attached to the role."""
        return await self._attached.fetch(
            role.key, max_age, lambda: self.iam(role.account).list_attached_role_policies(role.name), since=since)

    def reaches(self, account: str) -> bool:
        """Whether the operator has credentials in `account` (its own, or an EcrAccessAccount's)."""
        return self.accounts.reaches(account)

    def iam(self, account: str) -> IamPort:
        """IAM in `account`; raises AwsFault(ACCOUNT_NOT_CONFIGURED) where the operator has no credentials."""
        return self.accounts.iam(account)

    def known_arn(self, role: RoleRef) -> str | None:
        """The role's ARN as last resolved, without asking IAM (for log lines), or None."""
        if role.arn and not self.reaches(role.account):
            return role.arn
        entry = self._roles.peek(role.key)
        return entry.value.arn if entry is not None and entry.value is not None else None

    def age(self, role: RoleKey) -> float:
        """Seconds since the role was read (infinite if never)."""
        return self._roles.age(role)

    def written(self, role: RoleKey, info: RoleInfo, attached: frozenset[str], known: frozenset[str]) -> None:
        """What the operator's own writes left on the role: its tags, and of the policies in `known`
        exactly `attached` (ARNs). Each keeps the age of the read it was built on."""
        entry = self._roles.peek(role)
        self._roles.put(role, info, read_at=entry.read_at if entry else None)
        before = self._attached.peek(role)
        others = (before.value if before else frozenset()) - known
        self._attached.put(role, others | attached, read_at=before.read_at if before else None)

    def forget(self, role: RoleKey) -> None:
        """Read the role afresh next time (a write on it may or may not have landed)."""
        self._roles.forget(role)
        self._attached.forget(role)

    def forget_all(self) -> None:
        """Re-resolve every role next time (ECR refused a principal: a role may be gone)."""
        self._roles.clear()
