"""API errors as the real apiserver shapes them.

kubectl prints `Error from server (<reason>): <message>` and kopf branches on `code`/`reason`, so every failure
leaves kubesim as a `Status` object with the same reason, code and message wording as kube-apiserver's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypedDict


class Cause(TypedDict):
    """One entry of `Status.details.causes`: a field-level reason, as in `field.Error`."""

    reason: str
    message: str
    field: str


@dataclasses.dataclass(frozen=True)
class FieldError:
    """A field-level validation failure; `detail` is the text after the type's own words."""

    reason: str  # FieldValueInvalid, FieldValueRequired, ...
    field: str
    detail: str = ""
    value: Any = None
    has_value: bool = False

    def message(self) -> str:
        """Render the cause message exactly as apimachinery's `field.Error.ErrorBody()` does."""
        words = _REASON_WORDS.get(self.reason, self.reason)
        shows_value = self.reason in _VALUE_REASONS and self.has_value
        body = f"{words}: {render_value(self.value)}" if shows_value else words
        return f"{body}: {self.detail}" if self.detail else body

    def full(self) -> str:
        """`<field>: <message>`, the form joined into the Status message."""
        return f"{self.field or '<nil>'}: {self.message()}"


_REASON_WORDS = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueRequired": "Required value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueNotFound": "Not found",
    "FieldValueTypeInvalid": "Invalid value",
}
_VALUE_REASONS = {
    "FieldValueInvalid",
    "FieldValueNotSupported",
    "FieldValueDuplicate",
    "FieldValueTooMany",
    "FieldValueNotFound",
    "FieldValueTypeInvalid",
}


def render_value(value: Any) -> str:
    """Go's `%#v`-ish rendering used in field errors: strings quoted, numbers bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _go_quote(value)
    if value is None:
        return '"null"'
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return _go_quote(str(value))


def _go_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class ApiError(Exception):
    """Raised anywhere below the HTTP layer; the HTTP layer turns it into a Status response."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The `Status` body for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified(plural: str, group: str) -> str:
    """`plural.group` (or just `plural` for the core group), the resource name used in messages."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    """404 NotFound for a named object."""
    return ApiError(
        404,
        "NotFound",
        f'{qualified(plural, group)} "{name}" not found',
        {"name": name, "group": group, "kind": plural},
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    """409 AlreadyExists on create."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(plural, group)} "{name}" already exists',
        {"name": name, "group": group, "kind": plural},
    )


def conflict(plural: str, group: str, name: str, why: str | None = None) -> ApiError:
    """409 Conflict: a stale resourceVersion or a failed precondition."""
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        {"name": name, "group": group, "kind": plural},
    )


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid with one cause per field error, message joined like `errors.NewInvalid`."""
    texts = [error.full() for error in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    causes: list[Cause] = [
        {"reason": error.reason, "message": error.message(), "field": error.field or "<nil>"} for error in errors
    ]
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {joined}',
        {"name": name, "group": group, "kind": kind, "causes": causes},
    )


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    """405 MethodNotAllowed."""
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    """415 UnsupportedMediaType, worded as the apiserver's patch handler words it."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}"
        + (f" (got {content_type})" if content_type else ""),
    )


def gone(message: str) -> ApiError:
    """410 Expired: a watch asked for history that has been compacted."""
    return ApiError(410, "Expired", message)


def path_not_found(path: str) -> ApiError:
    """404 for a URL that names no resource (the apiserver's bare `404 page not found` in Status form)."""
    return ApiError(404, "NotFound", f"the server could not find the requested resource ({path})", {})
