"""Server-side printing: `meta.k8s.io/v1` Table responses, which is what `kubectl get` renders.

Custom resources get the Name column plus their CRD's `additionalPrinterColumns` (or Age when there are none),
with cells typed and dates turned into ages the way the apiextensions table convertor does. Built-ins
without columns of their own here (Deployments, RBAC kinds, ...) show Name and Age.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from kubesim import jsonpath
from kubesim.resources import ResourceType

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    "priority": 0,
}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}

_BUILTIN_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "/namespaces": [
        {"name": "Status", "type": "string", "jsonPath": ".status.phase", "description": "The phase of the namespace"},
        _AGE,
    ],
    "apiextensions.k8s.io/customresourcedefinitions": [
        {"name": "Created At", "type": "string", "jsonPath": ".metadata.creationTimestamp",
         "description": "When the CRD was created"},
    ],
    "/events": [
        {"name": "Type", "type": "string", "jsonPath": ".type", "description": "Normal or Warning"},
        {"name": "Reason", "type": "string", "jsonPath": ".reason", "description": "Why the event happened"},
        {"name": "Object", "type": "string", "jsonPath": ".involvedObject.name", "description": "What it is about"},
        {"name": "Message", "type": "string", "jsonPath": ".message", "description": "What happened"},
    ],
}


def human_duration(seconds_total: float) -> str:
    """apimachinery's `duration.HumanDuration`, which kubectl shows in the AGE column."""
    seconds = int(seconds_total)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return human_duration((datetime.datetime.now(datetime.UTC) - stamp).total_seconds())


def _cell(column_type: str, value: Any) -> Any:
    """The apiextensions `cellForJSONValue`: typed cells, nil when the value has the wrong type."""
    if value is None:
        return None
    if column_type == "date":
        return _age(value)
    if column_type == "integer":
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column_type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value


def columns_for(rtype: ResourceType) -> list[dict[str, Any]]:
    """The printer columns of a type, without the Name column."""
    if rtype.custom:
        return rtype.printer_columns or [_AGE]
    return _BUILTIN_COLUMNS.get(rtype.storage_key, [_AGE])


def _row_cells(obj: dict[str, Any], columns: list[dict[str, Any]]) -> list[Any]:
    cells: list[Any] = [obj.get("metadata", {}).get("name", "")]
    for column in columns:
        try:
            values = jsonpath.find(obj, column.get("jsonPath", ""))
        except jsonpath.JSONPathError:
            values = []
        if not values:
            cells.append(None)
        elif len(values) == 1:
            cells.append(_cell(column.get("type", "string"), values[0]))
        else:
            cells.append(",".join(v if isinstance(v, str) else json.dumps(v) for v in values))
    return cells


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(
    rtype: ResourceType,
    objects: list[dict[str, Any]],
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str = "",
    with_definitions: bool = True,
) -> dict[str, Any]:
    """A Table for a list (or, for watch events, a single object)."""
    columns = columns_for(rtype)
    definitions = [_NAME_COLUMN] + [
        {
            "name": column.get("name", ""),
            "type": "string" if column.get("type") == "date" and not rtype.custom else column.get("type", "string"),
            "format": column.get("format", ""),
            "description": column.get("description", ""),
            "priority": int(column.get("priority", 0)),
        }
        for column in columns
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": _row_cells(obj, columns)}
        shown = _row_object(obj, include_object)
        if shown is not None:
            row["object"] = shown
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions if with_definitions else [],
        "rows": rows,
    }
