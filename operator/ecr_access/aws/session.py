"""Build boto3 clients the same way everywhere, and learn who and where the operator is.

botocore's `standard` retry mode retries throttling and 5xx with backoff before an error ever
reaches reconcile; the operator's own retry (kopf TemporaryError) sits above it.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig

from ecr_access.aws import catalog, errors
from ecr_access.aws.ratelimit import TokenBucket
from ecr_access.model import Defaults
from ecr_access.ports import AwsFault

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_iam import IAMClient

# Bounded, so that an outage is reported (Reconciling: AwsUnavailable) within about a minute:
# 3 attempts of at most 5 s to connect and 15 s to read, plus standard mode's backoff (under 1 s,
# then under 2 s) — about 63 s at worst, where botocore's defaults (60 s each) and the 6 attempts
# set here before (`max_attempts` counts retries, not attempts) allowed minutes.
RETRY_CONFIG = BotoConfig(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=15)


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

    @classmethod
    def create(cls, region: str | None = None, rate: float = 0.0, burst: float = 1.0) -> AwsSession:
        """A session whose clients take a token from their (service, region) bucket before each request."""
        return cls(boto3.session.Session(region_name=region), rate=rate, burst=burst)

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
        sts = self.session.client("sts", region_name=region, config=self.config)
        try:
            identity = sts.get_caller_identity()
        except Exception as error:
            raise errors.classify(error, "GetCallerIdentity", "the operator's AWS identity") from error
        arn = identity["Arn"]
        return Defaults(partition=arn.split(":")[1], region=region, account=identity["Account"],
                        catalog=catalog.load(self.session, self.ecr(region)))


__all__ = ["RETRY_CONFIG", "AwsFault", "AwsSession"]
