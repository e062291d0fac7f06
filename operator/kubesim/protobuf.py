"""Decoding the protobuf bodies that kubectl's typed clients send for built-in kinds.

`kubectl create namespace NAME` (and `create configmap|secret|serviceaccount`) posts
`application/vnd.kubernetes.protobuf` and, unlike for CBOR, client-go does not fall back to JSON when the server
refuses it. kubesim therefore reads the `k8s\\0` envelope and the fields of those few kinds (field numbers from
k8s.io/api's generated.proto); any other protobuf body is answered with 415.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from kubesim import errors

MAGIC = b"k8s\x00"
Fields = list[tuple[int, int, Any]]


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if position >= len(data):
            raise errors.bad_request("truncated protobuf varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> Fields:
    """(field number, wire type, value) triples; length-delimited values stay bytes."""
    result: Fields = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value, position = data[position : position + length], position + length
        elif wire == 1:
            value, position = data[position : position + 8], position + 8
        elif wire == 5:
            value, position = data[position : position + 4], position + 4
        else:
            raise errors.bad_request(f"unsupported protobuf wire type {wire}")
        result.append((number, wire, value))
    return result


def _text(fields: Fields, number: int) -> str | None:
    values = [v for n, w, v in fields if n == number and w == 2]
    return values[-1].decode() if values else None


def _texts(fields: Fields, number: int) -> list[str]:
    return [v.decode() for n, w, v in fields if n == number and w == 2]


def _string_map(fields: Fields, number: int) -> dict[str, str]:
    result = {}
    for n, w, entry in fields:
        if n == number and w == 2:
            parts = _fields(entry)
            result[_text(parts, 1) or ""] = _text(parts, 2) or ""
    return result


def _bytes_map(fields: Fields, number: int) -> dict[str, str]:
    """A map<string, bytes>, its values base64-encoded as in JSON."""
    result = {}
    for n, w, entry in fields:
        if n == number and w == 2:
            parts = _fields(entry)
            value = next((v for k, kw, v in parts if k == 2 and kw == 2), b"")
            result[_text(parts, 1) or ""] = base64.b64encode(value).decode()
    return result


def _flag(fields: Fields, number: int) -> bool | None:
    values = [v for n, w, v in fields if n == number and w == 0]
    return bool(values[-1]) if values else None


def _references(fields: Fields, number: int) -> list[dict[str, str]]:
    """Repeated ObjectReference / LocalObjectReference: kind 1, namespace 2, name 3 (LocalObjectReference: name 1)."""
    result = []
    for n, w, entry in fields:
        if n == number and w == 2:
            parts = _fields(entry)
            reference = {key: _text(parts, k) for key, k in (("kind", 1), ("namespace", 2), ("name", 3))}
            result.append({key: value for key, value in reference.items() if value})
    return result


def _object_meta(data: bytes) -> dict[str, Any]:
    fields = _fields(data)
    meta: dict[str, Any] = {}
    for key, number in (("name", 1), ("generateName", 2), ("namespace", 3), ("resourceVersion", 6)):
        value = _text(fields, number)
        if value:
            meta[key] = value
    for key, number in (("labels", 11), ("annotations", 12)):
        mapping = _string_map(fields, number)
        if mapping:
            meta[key] = mapping
    finalizers = _texts(fields, 14)
    if finalizers:
        meta["finalizers"] = finalizers
    return meta


def _namespace(fields: Fields, obj: dict[str, Any]) -> None:
    spec_bytes = next((v for n, w, v in fields if n == 2 and w == 2), None)
    if spec_bytes is not None:
        finalizers = _texts(_fields(spec_bytes), 1)
        if finalizers:
            obj["spec"] = {"finalizers": finalizers}


def _config_map(fields: Fields, obj: dict[str, Any]) -> None:
    _set(obj, "data", _string_map(fields, 2))
    _set(obj, "binaryData", _bytes_map(fields, 3))
    _set(obj, "immutable", _flag(fields, 4))


def _secret(fields: Fields, obj: dict[str, Any]) -> None:
    _set(obj, "data", _bytes_map(fields, 2))
    _set(obj, "type", _text(fields, 3))
    _set(obj, "stringData", _string_map(fields, 4))
    _set(obj, "immutable", _flag(fields, 5))


def _service_account(fields: Fields, obj: dict[str, Any]) -> None:
    _set(obj, "secrets", _references(fields, 2))
    names = [_text(entry, 1) for entry in _fields_of(fields, 3)]
    _set(obj, "imagePullSecrets", [{"name": name} for name in names if name])
    _set(obj, "automountServiceAccountToken", _flag(fields, 4))


def _fields_of(fields: Fields, number: int) -> list[Fields]:
    return [_fields(v) for n, w, v in fields if n == number and w == 2]


def _set(obj: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, {}, [], ""):
        obj[key] = value


_KINDS: dict[tuple[str, str], Callable[[Fields, dict[str, Any]], None]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _service_account,
}


def decode(body: bytes) -> dict[str, Any]:
    """A JSON-shaped object from a protobuf-encoded Namespace, ConfigMap, Secret or ServiceAccount."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body without the k8s envelope")
    envelope = _fields(body[len(MAGIC) :])
    type_meta = next((_fields(v) for n, w, v in envelope if n == 1 and w == 2), [])
    api_version, kind = _text(type_meta, 1) or "", _text(type_meta, 2) or ""
    raw = next((v for n, w, v in envelope if n == 2 and w == 2), b"")
    decode_kind = _KINDS.get((api_version, kind))
    if decode_kind is None:
        known = ", ".join(k for _, k in _KINDS)
        raise errors.ApiError(
            415, "UnsupportedMediaType",
            f"kubesim decodes protobuf only for v1 {known} (got {api_version} {kind}); send application/json "
            "(e.g. `kubectl apply` instead of `kubectl create`)",
        )
    fields = _fields(raw)
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    meta_bytes = next((v for n, w, v in fields if n == 1 and w == 2), None)
    if meta_bytes is not None:
        obj["metadata"] = _object_meta(meta_bytes)
    decode_kind(fields, obj)
    return obj
