"""Reading an AWS request well enough to name its operation, and answering it with an AWS error.

An injected fault is only useful if the SDK takes it for the real thing: botocore must parse a
throttling answer into a ClientError with the code AWS uses, so that its retry logic, and the
caller's error classification, run exactly as they would against AWS. That means the error must
be in the wire format of the request's protocol:
- query protocol (IAM, STS): a form body `Action=GetRole&...`, errors as `<ErrorResponse>` XML;
- JSON protocol (ECR): `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetRepositoryPolicy`,
  errors as `{"__type": ..., "message": ...}` plus the `x-amzn-ErrorType` header.
The service comes from the SigV4 signing scope (`Credential=AKID/20240101/us-west-2/ecr/aws4_request`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import uuid
from collections.abc import Mapping
from urllib.parse import parse_qs

_SCOPE_RE = re.compile(r"Credential=[^/,\s]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
# JSON-protocol target prefixes whose service name is not simply the prefix in lower case.
_TARGET_SERVICES = {
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
    "AmazonEC2ContainerServiceV20141113": "ecs",
}


class Protocol(enum.Enum):
    QUERY = "query"
    JSON = "json"
    OTHER = "other"  # REST protocols: named by method and path, answered in XML


# The token ecr-access-operator puts on its User-Agent to say why it calls (`ecr_access.cause`:
# change, drift or sweep). The proxy knows nothing of the operator; this is its wire format.
CAUSE_RE = re.compile(r"(?:^|\s)ecr-access-cause/([a-z]+)(?:\s|$)")


@dataclasses.dataclass(frozen=True)
class Call:
    """One AWS request, as far as the proxy needs to know it."""

    service: str
    operation: str
    protocol: Protocol
    cause: str = ""  # why the client called, from its User-Agent (`CAUSE_RE`), or ""
    subject: str = ""  # the role or repository it names (`RoleName`, `repositoryName`), or ""


def identify(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Call:
    """Name the service and operation of a request, and its cause; never fails (unknown parts
    become "unknown")."""
    lower = {key.lower(): value for key, value in headers.items()}
    found = CAUSE_RE.search(lower.get("user-agent", ""))
    return dataclasses.replace(_identify(method, path, query, lower, body), cause=found[1] if found else "")


def _identify(method: str, path: str, query: str, lower: Mapping[str, str], body: bytes) -> Call:
    scope = _SCOPE_RE.search(lower.get("authorization", ""))
    service = scope["service"] if scope else ""
    target = lower.get("x-amz-target", "")
    if target:
        prefix, _, operation = target.rpartition(".")
        service = service or _TARGET_SERVICES.get(prefix, prefix.split("_")[0].lower())
        return Call(service or "unknown", operation or "unknown", Protocol.JSON, subject=_json_subject(body))
    form = query.encode()
    action = _form_value(form, "Action")
    if action is None and "x-www-form-urlencoded" in lower.get("content-type", ""):
        form = body
        action = _form_value(body, "Action")
    if action is not None:
        return Call(service or "unknown", action, Protocol.QUERY, subject=_form_value(form, "RoleName") or "")
    return Call(service or "unknown", f"{method.upper()} {path}", Protocol.OTHER)


def _json_subject(body: bytes) -> str:
    """The repository a JSON-protocol request names, for the timeline (calls told apart by subject)."""
    try:
        name = json.loads(body or b"{}").get("repositoryName", "")
    except (ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def _form_value(raw: bytes, name: str) -> str | None:
    try:
        values = parse_qs(raw.decode("utf-8"), keep_blank_values=True).get(name)
    except UnicodeDecodeError:
        return None
    return values[0] if values else None


@dataclasses.dataclass(frozen=True)
class ErrorAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes


# (HTTP status, query/XML code and fault type, JSON `__type`) per injected error kind.
THROTTLING = (400, "Throttling", "Sender", "ThrottlingException", "Rate exceeded")
SERVER_ERROR = (500, "InternalFailure", "Receiver", "ServerException", "Injected internal failure")
# Not injected: what the client gets when the upstream itself cannot be reached.
UPSTREAM_FAILURE = (502, "ServiceUnavailable", "Receiver", "ServiceUnavailableException", "The upstream did not answer")


def error_answer(call: Call, kind: tuple[int, str, str, str, str]) -> ErrorAnswer:
    """An AWS error answer for `call`, in its protocol's wire format."""
    status, query_code, fault_type, json_type, message = kind
    request_id = str(uuid.uuid4())
    if call.protocol is Protocol.JSON:
        body = json.dumps({"__type": json_type, "message": message}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "x-amzn-ErrorType": json_type,
            "x-amzn-RequestId": request_id,
        }
        return ErrorAnswer(status, headers, body)
    xml = (
        "<ErrorResponse><Error>"
        f"<Type>{fault_type}</Type><Code>{query_code}</Code><Message>{message}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return ErrorAnswer(status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, xml.encode())
