"""Classify botocore failures into `AwsFault` kinds, in one place (STYLE: one error boundary).

The split that matters downstream is transient (retry: Reconciling) versus terminal (a person must
act: Stalled). ECR reports a principal it cannot see yet, typically a role created seconds ago, as an
invalid policy; that is IAM propagation, so it is transient rather than a bad request.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ecr_access.ports import AwsFault, FaultKind

_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
}
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
                  "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch"}
_NOT_FOUND = {"NoSuchEntity", "NoSuchEntityException", "RepositoryNotFoundException", "RegistryNotFoundException",
              "RepositoryPolicyNotFoundException"}
_LIMIT = {"LimitExceeded", "LimitExceededException"}
_UNAVAILABLE = {"ServiceFailure", "ServiceUnavailable", "ServiceUnavailableException", "ServerException",
                "InternalFailure", "InternalError", "InternalServerError"}
_INVALID = {"InvalidParameterException", "InvalidInput", "MalformedPolicyDocument", "ValidationError",
            "ValidationException", "InvalidParameterValue"}
# What ECR says about a principal that IAM has not propagated to it yet.
_PROPAGATION_HINTS = ("invalid repository policy provided", "principal not found", "invalid principal")


class AssumeRoleFailed(Exception):
    """The role of an EcrAccessAccount could not be assumed (or assumed again before its credentials
    expired), raised through botocore to the call that needed the credentials."""

    def __init__(self, fault: AwsFault) -> None:
        super().__init__(str(fault))
        self.fault = fault


def classify_assume(error: Exception, role_arn: str) -> AwsFault:
    """Why AssumeRole failed: ACCOUNT_UNAVAILABLE, with what AWS said, for every cause (trust
    policy, external id, throttling, network): the grants wait for the account, whatever it was."""
    try:
        found = classify(error, "AssumeRole", role_arn)
        detail, cause = found.detail, found.kind
    except Exception:  # not an AWS error at all (a bug in a credential provider): still the account's
        detail, cause = f"{type(error).__name__}: {error}", FaultKind.UNAVAILABLE
    return AwsFault(FaultKind.ACCOUNT_UNAVAILABLE, "AssumeRole", role_arn, detail, cause)


def classify(error: Exception, operation: str, resource: str) -> AwsFault:
    """Map any botocore exception to an AwsFault; unknown errors count as AWS being unavailable."""
    if isinstance(error, AssumeRoleFailed):
        return AwsFault(FaultKind.ACCOUNT_UNAVAILABLE, operation, resource,
                        f"assuming {error.fault.resource} failed: {error.fault.detail}", error.fault.cause)
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        message = str(details.get("Message", "")) or code
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return AwsFault(_kind(code, message, status), operation, resource, f"{code}: {message}")
    if isinstance(error, EndpointConnectionError | ConnectionClosedError | ConnectTimeoutError | ReadTimeoutError):
        return AwsFault(FaultKind.UNAVAILABLE, operation, resource, type(error).__name__)
    if isinstance(error, BotoCoreError):
        return AwsFault(FaultKind.UNAVAILABLE, operation, resource, str(error))
    raise error


def _kind(code: str, message: str, status: int) -> FaultKind:
    if code in _THROTTLING:
        return FaultKind.THROTTLED
    if code in _ACCESS_DENIED:
        return FaultKind.ACCESS_DENIED
    if code in _NOT_FOUND:
        return FaultKind.NOT_FOUND
    if code in _LIMIT:
        return FaultKind.LIMIT_EXCEEDED
    if code in _INVALID:
        lowered = message.lower()
        if any(hint in lowered for hint in _PROPAGATION_HINTS):
            return FaultKind.PROPAGATING
        return FaultKind.INVALID
    if code in _UNAVAILABLE or status >= 500:
        return FaultKind.UNAVAILABLE
    if status == 429:
        return FaultKind.THROTTLED
    return FaultKind.INVALID if 400 <= status < 500 else FaultKind.UNAVAILABLE
