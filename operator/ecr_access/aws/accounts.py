"""The accounts EcrAccessAccounts configure, as `ports.OtherAccounts`: one assumed-role session each.

Which object configures which account is read, at each call, from `lookup` (the kopf index of
EcrAccessAccounts, judged by `ecr_access.accounts.chosen`), so that a new, edited or deleted
account takes effect at the next call. A session is built on first use and kept while its role
ARN and external id stay the same; its credentials are refreshed by botocore before they expire
(`AwsSession.assume`). Each session has its own clients, so its own rate-limit buckets and caches,
and its own threads: one account's throttling or outage does not slow another's work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ecr_access.accounts import AccountSpec
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.ports import AwsFault, EcrPort, IamPort, not_configured

logger = logging.getLogger(__name__)

Lookup = Callable[[str], AccountSpec | None]
Listing = Callable[[], Iterable[str]]  # the accounts EcrAccessAccounts name (`lookup` says which it configures)
# Told when assuming an account's role starts failing (with the fault) or works again (None).
Observer = Callable[[AccountSpec, AwsFault | None], None]


class _Account:
    def __init__(self, spec: AccountSpec, session: AwsSession) -> None:
        self.spec = spec
        self.session = session
        self.iam = IamAdapter(session)
        self.ecr = EcrAdapter(session)
        self.failing: AwsFault | None = None


class AssumedAccounts:
    """Implements `ecr_access.ports.OtherAccounts` with one assumed-role `AwsSession` per account."""

    def __init__(self, base: AwsSession, session_name: str, lookup: Lookup = lambda account: None, *,
                 listing: Listing = lambda: (), observe: Observer = lambda spec, fault: None,
                 **assume_options: Any) -> None:
        """`base`: the operator's own session, whose credentials assume the roles. `assume_options`
        go to `AwsSession.assume` (tests give it an STS stub and a clock)."""
        self.base = base
        self.session_name = session_name
        self.lookup = lookup
        self.listing = listing
        self.observe = observe
        self._options = assume_options
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()

    def bind(self, lookup: Lookup, listing: Listing) -> None:
        """Read the configured accounts from `lookup` and `listing` from now on (the kopf index,
        once it exists)."""
        self.lookup, self.listing = lookup, listing

    def reaches(self, account: str) -> bool:
        return self.lookup(account) is not None

    def configured(self) -> list[str]:
        return sorted(account for account in set(self.listing()) if self.reaches(account))

    def iam(self, account: str) -> IamPort:
        return self._account(account).iam

    def ecr(self, account: str) -> EcrPort:
        return self._account(account).ecr

    def session(self, account: str) -> AwsSession:
        return self._account(account).session

    def identity(self, account: str) -> tuple[str, str]:
        """(account, ARN) that STS GetCallerIdentity answers with the account's credentials (blocking)."""
        return self.session(account).caller_identity()

    def _account(self, account: str) -> _Account:
        spec = self.lookup(account)
        if spec is None:
            with self._lock:
                gone = self._accounts.pop(account, None)
            if gone is not None:  # its EcrAccessAccount was deleted: its threads may end
                gone.session.close()
            raise not_configured(account, "AWS")
        replaced = None
        with self._lock:
            known = self._accounts.get(account)
            if known is None or (known.spec.role_arn, known.spec.external_id) != (spec.role_arn, spec.external_id):
                replaced = known
                known = self._accounts[account] = self._build(spec)
            elif known.spec != spec:  # renamed or re-created with the same role: same credentials
                known.spec = spec
        if replaced is not None:  # another role or external id: the old session's threads may end
            replaced.session.close()
        return known

    def _build(self, spec: AccountSpec) -> _Account:
        holder: list[_Account] = []

        def refreshed(fault: Exception | None) -> None:
            if not holder:
                return
            account = holder[0]
            before, account.failing = account.failing, fault if isinstance(fault, AwsFault) else None
            if (before is None) != (account.failing is None):
                if account.failing is not None:
                    logger.warning("Could not assume %s for account %s: %s", spec.role_arn, spec.account_id, fault)
                else:
                    logger.info("Assumed %s for account %s again", spec.role_arn, spec.account_id)
                self.observe(account.spec, account.failing)

        session = self.base.assume(spec.role_arn, session_name=self.session_name, external_id=spec.external_id,
                                   refreshed=refreshed, **self._options)
        built = _Account(spec, session)
        holder.append(built)
        return built
