"""Build boto3 clients the same way everywhere, and learn who and where the operator is.

botocore's `standard` retry mode retries throttling and 5xx with backoff before an error ever
reaches reconcile; the operator's own retry (kopf TemporaryError) sits above it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)

from ecr_access import cause
from ecr_access.aws import catalog, errors
from ecr_access.aws.ratelimit import TokenBucket
from ecr_access.metrics import Metrics
from ecr_access.model import Defaults
from ecr_access.ports import AwsFault, FaultKind

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_iam import IAMClient

# Bounded, so that an outage is reported (Reconciling: AwsUnavailable) within about a minute:
# 3 attempts of at most 5 s to connect and 15 s to read, plus standard mode's backoff (under 1 s,
# then under 2 s) — about 63 s at worst, where botocore's defaults (60 s each) and the 6 attempts
# set here before (`max_attempts` counts retries, not attempts) allowed minutes.
RETRY_CONFIG = BotoConfig(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=15)
# Threads per session (per AWS account): more than the reconciler's bound on work at once in an
# account (`reconcile.AWS_CONCURRENCY`), so that the orphan sweep never waits for a thread, and an
# account whose calls hang or are throttled holds only its own threads.
THREADS = 8
# After AssumeRole fails, for how long every call that needs the account's credentials fails with
# that same error instead of asking STS again: one retry round of many grants (each repository
# read needs the credentials) makes one AssumeRole, not one per call, so that a trust policy to fix
# does not become thousands of refused calls in both accounts' CloudTrail, nor STS throttling of
# the operator's own account. Shorter than the grants' retry delay (`Config.retry_delay`).
ASSUME_FAILURE_HOLD = 10.0

T = TypeVar("T")


class _NoCache(dict[str, Any]):
    """botocore's assume-role fetcher caches by its own wall clock; the refreshable credentials
    around it already decide when to refresh, so every refresh really assumes the role."""

    def __contains__(self, key: object) -> bool:
        return False


class _Counted:
    """botocore hooks that count each API call and time it (retries included), into `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def register(self, events: Any) -> None:
        events.register("before-call", self.before)
        events.register("after-call", self.after)
        events.register("after-call-error", self.failed)

    @staticmethod
    def before(context: dict[str, Any], **_: Any) -> None:
        context["ecr_access_started"] = time.monotonic()

    def after(self, event_name: str, http_response: Any, parsed: Any, context: dict[str, Any], **_: Any) -> None:
        status = getattr(http_response, "status_code", 0)
        code = "OK" if status < 300 else str((parsed or {}).get("Error", {}).get("Code") or status)
        self._count(event_name, code, context)

    def failed(self, event_name: str, exception: Exception, context: dict[str, Any], **_: Any) -> None:
        self._count(event_name, type(exception).__name__, context)

    def _count(self, event_name: str, code: str, context: dict[str, Any]) -> None:
        _, service, operation = [*event_name.split("."), "", ""][:3]
        started = context.get("ecr_access_started")
        self.metrics.aws_call(service, operation, code, time.monotonic() - started if started else 0.0,
                              cause.current())


def _mark_cause(**kwargs: Any) -> None:
    """botocore's before-send hook: put why the operator makes this call on its User-Agent (see
    `ecr_access.cause`; the User-Agent is not signed, so this comes after signing safely)."""
    request = kwargs["request"]
    agent = request.headers.get("User-Agent", b"")
    if isinstance(agent, bytes):
        agent = agent.decode()
    request.headers["User-Agent"] = f"{agent} {cause.USER_AGENT_TOKEN}{cause.current()}".strip()


class _Given(CredentialProvider):
    """A credential provider that hands botocore the refreshable credentials we built."""

    METHOD = "assume-role"

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials


@dataclasses.dataclass
class AwsSession:
    """One boto3 session and its clients; ECR clients are made per region on first use."""

    session: boto3.session.Session
    config: BotoConfig = RETRY_CONFIG
    rate: float = 0.0  # requests per second per service and region (AWS throttles that way); 0: unlimited
    burst: float = 1.0
    _ecr: dict[str, Any] = dataclasses.field(default_factory=dict)
    _iam: Any = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    _threads: concurrent.futures.ThreadPoolExecutor | None = None
    _closed: bool = False
    _assume_failed: list[tuple[float, AwsFault]] = dataclasses.field(default_factory=list)
    other_account: str | None = None  # an assumed session's account: its faults carry it (`AwsFault.account`)
    metrics: Metrics | None = None  # where each API call is counted (`ecr_access_aws_requests_total`)

    @classmethod
    def create(cls, region: str | None = None, rate: float = 0.0, burst: float = 1.0,
               metrics: Metrics | None = None) -> AwsSession:
        """A session whose clients take a token from their (service, region) bucket before each request."""
        session = cls(boto3.session.Session(botocore_session=botocore.session.get_session(), region_name=region),
                      rate=rate, burst=burst, metrics=metrics)
        session.core.register("before-send", _mark_cause)
        if metrics is not None:  # on the session, so every client counts, STS's included
            _Counted(metrics).register(session.core)
        return session

    @property
    def core(self) -> botocore.session.Session:
        return self.session._session

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """Run one blocking boto3 call on this session's own threads (see `THREADS`); once the
        session is closed, a call still made through it runs in the loop's default threads."""
        with self._lock:  # never held across an await: threads and the loop both take it
            if self._threads is None and not self._closed:
                self._threads = concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="aws")
            threads = self._threads
        try:
            if threads is not None:
                try:
                    # In a copy of the caller's context, as `asyncio.to_thread` does: the hooks
                    # read the call's `cause` there.
                    future = asyncio.get_running_loop().run_in_executor(
                        threads, contextvars.copy_context().run, call, *args)
                except RuntimeError:  # closed from another thread just now
                    pass
                else:
                    return await future
            return await asyncio.to_thread(call, *args)  # closed (see `close`)
        except AwsFault as fault:
            if fault.account is None:
                fault.account = self.other_account
            raise

    def close(self) -> None:
        """Let this session's threads end once their calls are done (a session replaced or no
        longer used: an EcrAccessAccount edited or deleted)."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False)

    def assume(
        self, role_arn: str, *, session_name: str, external_id: str = "",
        refreshed: Callable[[Exception | None], None] = lambda error: None,
        client_creator: Callable[..., Any] | None = None, time_fetcher: Callable[[], Any] | None = None,
    ) -> AwsSession:
        """A session in another account: `role_arn` assumed with this session's credentials, and
        assumed again before the credentials expire (botocore's `AssumeRoleCredentialFetcher` in
        `DeferredRefreshableCredentials`: the first call assumes it, and every call within
        botocore's refresh window before expiry refreshes it). Its own clients, rate-limit buckets
        and threads: AWS throttles per account.

        `refreshed(error)` is told each outcome of assuming the role (None: it worked); a failure is
        raised to the call that needed the credentials as `errors.AssumeRoleFailed`, and to every
        such call for `ASSUME_FAILURE_HOLD` seconds after it without asking STS again (until
        `retry_assume`). `client_creator` (the STS client) and `time_fetcher` (botocore's clock,
        which the hold reads too) are for tests."""
        source = self.core.get_credentials()
        if source is None:
            raise AwsFault(FaultKind.ACCESS_DENIED, "AssumeRole", role_arn, "the operator has no AWS credentials")
        extra = {"RoleSessionName": session_name, **({"ExternalId": external_id} if external_id else {})}
        creator = client_creator or (lambda service, **kwargs: self.core.create_client(service, config=self.config,
                                                                                       **kwargs))
        fetcher = AssumeRoleCredentialFetcher(creator, source, role_arn, extra_args=extra, cache=_NoCache())

        failed: list[tuple[float, AwsFault]] = []  # the last failure and when, while it holds
        clock: Callable[[], float] = time.monotonic if time_fetcher is None else (
            lambda: float(time_fetcher().timestamp()))

        def refresh() -> dict[str, Any]:
            if failed and clock() - failed[0][0] < ASSUME_FAILURE_HOLD:
                raise errors.AssumeRoleFailed(failed[0][1])
            try:
                answer: dict[str, Any] = fetcher.fetch_credentials()
            except Exception as error:
                fault = errors.classify_assume(error, role_arn)
                failed[:] = [(clock(), fault)]
                refreshed(fault)
                raise errors.AssumeRoleFailed(fault) from error
            failed.clear()
            refreshed(None)
            return answer

        options = {} if time_fetcher is None else {"time_fetcher": time_fetcher}
        credentials = DeferredRefreshableCredentials(refresh, "assume-role", **options)
        core = botocore.session.Session()
        core.register_component("data_loader", self.core.get_component("data_loader"))  # models parsed once
        core.register_component("credential_provider", CredentialResolver([_Given(credentials)]))
        core.register("before-send", _mark_cause)
        if self.metrics is not None:
            _Counted(self.metrics).register(core)
        return AwsSession(boto3.session.Session(botocore_session=core, region_name=self.region), config=self.config,
                          rate=self.rate, burst=self.burst, _assume_failed=failed,
                          other_account=role_arn.split(":")[4], metrics=self.metrics)

    def retry_assume(self) -> None:
        """Let the next call that needs this session's credentials ask STS again at once, even
        within `ASSUME_FAILURE_HOLD` of a failure (its account's check: a person may just have
        fixed the trust policy)."""
        self._assume_failed.clear()

    def caller_identity(self, region: str | None = None) -> tuple[str, str]:
        """(account, ARN) of whoever this session acts as: STS GetCallerIdentity (blocking)."""
        sts = self.session.client("sts", region_name=region or self.region, config=self.config)
        try:
            identity = sts.get_caller_identity()
        except Exception as error:
            raise errors.classify(error, "GetCallerIdentity", "the operator's AWS identity") from error
        return identity["Account"], identity["Arn"]

    def _limited(self, client: Any) -> Any:
        if self.rate > 0:
            client.meta.events.register("before-send", TokenBucket(self.rate, self.burst).before_send)
        return client

    @property
    def region(self) -> str | None:
        return self.session.region_name

    def iam(self) -> IAMClient:
        with self._lock:
            if self._iam is None:
                self._iam = self._limited(self.session.client("iam", config=self.config))
            client: IAMClient = self._iam
            return client

    def ecr(self, region: str) -> ECRClient:
        with self._lock:
            if region not in self._ecr:
                self._ecr[region] = self._limited(self.session.client("ecr", region_name=region, config=self.config))
            client: ECRClient = self._ecr[region]
            return client

    def defaults(self, region: str | None = None) -> Defaults:
        """The operator's partition, region and account, from STS GetCallerIdentity."""
        region = region or self.region
        if not region:
            raise ValueError("No AWS region: set AWS_REGION (or ECR_ACCESS_REGION, or --region)")
        account, arn = self.caller_identity(region)
        return Defaults(partition=arn.split(":")[1], region=region, account=account,
                        catalog=catalog.load(self.session, self.ecr(region)))



__all__ = ["RETRY_CONFIG", "AwsFault", "AwsSession"]
