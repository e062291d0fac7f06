"""Structural-schema handling of custom resources: pruning, defaulting and validation (with CEL rules).

This mirrors what kube-apiserver does with a CRD's `openAPIV3Schema` on every write (prune, then default,
then validate) and on every read (prune, then default), and words each failure the way apimachinery's
`field.Error` does, so `kubectl apply` prints the same message a real cluster would.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from kubesim import cel
from kubesim.errors import FieldError

Schema = dict[str, Any]
ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _index(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


# --- pruning -------------------------------------------------------------------------------------------------


def prune(obj: dict[str, Any], schema: Schema) -> list[str]:
    """Drop fields the schema does not know, in place; returns their paths for fieldValidation."""
    unknown: list[str] = []
    _prune(obj, schema, "", unknown, embedded=True)
    return unknown


def _prune(value: Any, schema: Schema, path: str, unknown: list[str], embedded: bool = False) -> None:
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = embedded or bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            if embedded and key in ROOT_FIELDS:
                continue  # apiVersion, kind and metadata of a (embedded) resource are ObjectMeta's business
            if key in props:
                sub = props[key]
                if value[key] is None and not sub.get("nullable"):
                    # The apiserver drops nulls of non-nullable fields before defaulting.
                    del value[key]
                    continue
                _prune(value[key], sub, _child(path, key), unknown)
            elif isinstance(extra, dict):
                _prune(value[key], extra, _key(path, key), unknown)
            elif extra is True or preserve:
                continue
            else:
                unknown.append(_child(path, key))
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _prune(item, schema["items"], _index(path, index), unknown)


# --- defaulting ----------------------------------------------------------------------------------------------


def apply_defaults(value: Any, schema: Schema) -> None:
    """Fill in `default`s of absent fields, in place, depth first (a default is itself defaulted)."""
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in props:
                    apply_defaults(item, extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


# --- validation ----------------------------------------------------------------------------------------------


def validate(obj: dict[str, Any], schema: Schema, old: dict[str, Any] | None) -> list[FieldError]:
    """Validate a whole custom resource; `old` enables transition rules (`oldSelf`) on update.

    As in the apiserver, the CEL rules run only when the OpenAPI checks found no "blocking" error (a wrong
    type, a missing required field, an unsupported enum value, too long or too many); otherwise one note says
    that some rules were not checked.
    """
    errors: list[FieldError] = []
    view = _cel_view(obj)
    _validate(view, schema, "", errors)
    compiled = _compiled_schema(schema)
    if not compiled.has_rules:
        return errors
    if any(error.reason in _BLOCKING for error in errors):
        errors.append(FieldError(
            "FieldValueInvalid", "", "some validation rules were not checked because the object was invalid; "
            "correct the existing errors to complete validation", None, True,
        ))
        return errors
    old_view = _cel_view(old) if old is not None else cel.MISSING
    _check_rules(view, schema, "", old_view, errors, compiled)
    return errors


class _RuleIndex:
    """What `validate` needs to know of a schema before walking an object, computed once per schema.

    `has_rules`: some node holds `x-kubernetes-validations`. `walks(node)`: the rule walk must enter this node
    because it or a node below it (through properties, additionalProperties or items, the way `_check_rules`
    descends) has rules; the walk skips the rest, e.g. a grant's whole `status`. Served schemas are never
    mutated (a CRD update stores a new object, hence new schema dicts), so an index keyed by the schema's
    identity is invalidated by a CRD update; the entry holds the schema so that its id is not reused.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.has_rules = _has_rules(schema)
        self._walks: dict[int, bool] = {}
        self._index(schema)

    def _index(self, node: Schema) -> bool:
        key = id(node)
        if key in self._walks:
            return self._walks[key]
        self._walks[key] = True  # while in progress (JSON has no cycles; this only guards)
        children: list[Any] = []
        props = node.get("properties")
        if isinstance(props, dict):
            children.extend(props.values())
        for name in ("additionalProperties", "items"):
            if isinstance(node.get(name), dict):
                children.append(node[name])
        result = "x-kubernetes-validations" in node
        for child in children:  # a malformed (non-object) child is walked, as before
            result = (self._index(child) if isinstance(child, dict) else True) or result
        self._walks[key] = result
        return result

    def walks(self, node: Schema) -> bool:
        """Whether the rule walk must enter `node` (True for nodes this index has not seen)."""
        return self._walks.get(id(node), True)


_RULE_INDEXES: dict[int, _RuleIndex] = {}
_RULE_INDEX_LIMIT = 256


def _compiled_schema(schema: Schema) -> _RuleIndex:
    index = _RULE_INDEXES.get(id(schema))
    if index is None or index.schema is not schema:
        if len(_RULE_INDEXES) >= _RULE_INDEX_LIMIT:
            _RULE_INDEXES.clear()
        index = _RULE_INDEXES[id(schema)] = _RuleIndex(schema)
    return index


def _has_rules(node: Any) -> bool:
    if isinstance(node, dict):
        return "x-kubernetes-validations" in node or any(_has_rules(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_rules(item) for item in node)
    return False


_BLOCKING = {"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany",
             "FieldValueTypeInvalid"}


def _cel_view(obj: dict[str, Any]) -> dict[str, Any]:
    """CEL rules at the root see only metadata.name and metadata.generateName, as in the apiserver."""
    view = dict(obj)
    meta = obj.get("metadata") or {}
    view["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return view


_TYPE_NAMES = {bool: "boolean", str: "string", int: "integer", float: "number", dict: "object", list: "array"}


def _type_name(value: Any) -> str:
    return "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)


def _has_type(value: Any, wanted: str) -> bool:
    if wanted == "object":
        return isinstance(value, dict)
    if wanted == "array":
        return isinstance(value, list)
    if wanted == "string":
        return isinstance(value, str)
    if wanted == "boolean":
        return isinstance(value, bool)
    if wanted == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if wanted == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, detail, value, True)


def _type_invalid(path: str, found: str, detail: str) -> FieldError:
    return FieldError("FieldValueTypeInvalid", path, detail, found, True)


def _validate(value: Any, schema: Schema, path: str, errors: list[FieldError]) -> None:
    where = path or "body"
    if value is None:
        if not schema.get("nullable") and (schema.get("type") or schema.get("x-kubernetes-int-or-string")):
            wanted = "integer-or-string" if schema.get("x-kubernetes-int-or-string") else schema.get("type")
            errors.append(_type_invalid(path, "null", f"{where} in body must be of type {wanted}: \"null\""))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, int | str) and not isinstance(value, bool)):
            found = _type_name(value)
            errors.append(_type_invalid(path, found, f"{where} in body must be of type integer-or-string: \"{found}\""))
            return
    elif schema.get("type") and not _has_type(value, schema["type"]):
        found = _type_name(value)
        errors.append(_type_invalid(path, found, f"{where} in body must be of type {schema['type']}: \"{found}\""))
        return
    _validate_enum(value, schema, path, errors)
    if isinstance(value, str):
        _validate_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, errors)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errors)
    _validate_combinators(value, schema, path, errors)


def _validate_enum(value: Any, schema: Schema, path: str, errors: list[FieldError]) -> None:
    allowed = schema.get("enum")
    if allowed is not None and value not in allowed:
        supported = ", ".join(json.dumps(item) for item in allowed)
        errors.append(FieldError("FieldValueNotSupported", path, f"supported values: {supported}", value, True))


def _validate_string(value: str, schema: Schema, path: str, errors: list[FieldError]) -> None:
    where = path or "body"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(FieldError("FieldValueTooLong", path, f"may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(_invalid(path, value, f"{where} in body should be at least {schema['minLength']} chars long"))
    pattern = schema.get("pattern")
    if pattern is not None and not _compiled(pattern).search(value):
        errors.append(_invalid(path, value, f"{where} in body should match '{pattern}'"))


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]


def _validate_number(value: float, schema: Schema, path: str, errors: list[FieldError]) -> None:
    where = path or "body"
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            errors.append(_invalid(path, value, f"{where} in body should be greater than {minimum}"))
        elif value < minimum:
            errors.append(_invalid(path, value, f"{where} in body should be greater than or equal to {minimum}"))
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            errors.append(_invalid(path, value, f"{where} in body should be less than {maximum}"))
        elif value > maximum:
            errors.append(_invalid(path, value, f"{where} in body should be less than or equal to {maximum}"))
    multiple = schema.get("multipleOf")
    if multiple and (value / multiple) != int(value / multiple):
        errors.append(_invalid(path, value, f"{where} in body should be a multiple of {multiple}"))


def _old_member(old: Any, key: str) -> Any:
    return old[key] if isinstance(old, dict) and key in old else cel.MISSING


def _validate_object(value: dict[str, Any], schema: Schema, path: str, errors: list[FieldError]) -> None:
    props: dict[str, Schema] = schema.get("properties") or {}
    for key in schema.get("required") or []:
        if key not in value:
            errors.append(FieldError("FieldValueRequired", _child(path, key)))
    for key, sub in props.items():
        if key in value and not (key == "metadata" and not path):
            _validate(value[key], sub, _child(path, key), errors)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, item in value.items():
            if key not in props:
                _validate(item, extra, _key(path, key), errors)
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(FieldError("FieldValueTooMany", path, f"must have at most {schema['maxProperties']} items",
                                 len(value), True))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(_invalid(path, len(value),
                               f"{path or 'body'} in body should have at least {schema['minProperties']} properties"))


def _map_key(item: Any, keys: list[str]) -> tuple[Any, ...]:
    return tuple(json.dumps(item.get(k), sort_keys=True) if isinstance(item, dict) else None for k in keys)


def _validate_array(value: list[Any], schema: Schema, path: str, errors: list[FieldError]) -> None:
    list_type = schema.get("x-kubernetes-list-type")
    map_keys: list[str] = schema.get("x-kubernetes-list-map-keys") or []
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, _index(path, index), errors)
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(FieldError("FieldValueTooMany", path, f"must have at most {schema['maxItems']} items",
                                 len(value), True))
    if "minItems" in schema and len(value) < schema["minItems"]:
        minimum = schema["minItems"]
        errors.append(_invalid(path, value, f"{path or 'body'} in body should have at least {minimum} items"))
    if list_type == "set":
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                errors.append(FieldError("FieldValueDuplicate", _index(path, index), "", item, True))
            seen.append(item)
    elif list_type == "map":
        seen_keys: set[tuple[Any, ...]] = set()
        for index, item in enumerate(value):
            key = _map_key(item, map_keys)
            if key in seen_keys:
                shown = json.dumps({k: item.get(k) for k in map_keys if isinstance(item, dict)}, sort_keys=True)
                errors.append(FieldError("FieldValueDuplicate", _index(path, index), "", shown, True))
            seen_keys.add(key)


def _matches(value: Any, schema: Schema, path: str) -> bool:
    sub_errors: list[FieldError] = []
    _validate(value, schema, path, sub_errors)
    return not sub_errors


def _validate_combinators(value: Any, schema: Schema, path: str, errors: list[FieldError]) -> None:
    where = path or "body"
    for sub in schema.get("allOf") or []:
        _validate(value, sub, path, errors)
    if "anyOf" in schema and not any(_matches(value, sub, path) for sub in schema["anyOf"]):
        errors.append(_invalid(path, value, f"{where} in body must validate at least one schema (anyOf)"))
    if "oneOf" in schema and sum(_matches(value, sub, path) for sub in schema["oneOf"]) != 1:
        errors.append(_invalid(path, value, f"{where} in body must validate one and only one schema (oneOf)"))
    if "not" in schema and _matches(value, schema["not"], path):
        errors.append(_invalid(path, value, f"{where} in body must not validate the schema (not)"))


def _check_rules(value: Any, schema: Schema, path: str, old: Any, errors: list[FieldError],
                 index: _RuleIndex | None = None) -> None:
    """Walk the object and run every node's `x-kubernetes-validations`, correlating old values for `oldSelf`."""
    if value is None or (index is not None and not index.walks(schema)):
        return
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props and not (key == "metadata" and not path):
                _check_rules(item, props[key], _child(path, key), _old_member(old, key), errors, index)
            elif key not in props and isinstance(extra, dict):
                _check_rules(item, extra, _key(path, key), _old_member(old, key), errors, index)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        # Only items of map lists correlate with old items (by their keys), as in the apiserver.
        map_keys: list[str] = schema.get("x-kubernetes-list-map-keys") or []
        old_by_key: dict[tuple[Any, ...], Any] = {}
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            old_by_key = {_map_key(item, map_keys): item for item in old}
        for position, item in enumerate(value):
            item_old = old_by_key.get(_map_key(item, map_keys), cel.MISSING) if old_by_key else cel.MISSING
            _check_rules(item, schema["items"], _index(path, position), item_old, errors, index)
    _validate_rules(value, schema, path, old, errors)


def _schema_type(value: Any, schema: Schema) -> str:
    return str(schema.get("type") or _type_name(value))


def _validate_rules(value: Any, schema: Schema, path: str, old: Any, errors: list[FieldError]) -> None:
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule.get("rule", "")
        if cel.is_transition_rule(text) and old is cel.MISSING:
            continue
        outcome = cel.evaluate(text, value, old)
        if outcome.passed:
            continue
        message = outcome.message
        if not message:
            expression = rule.get("messageExpression")
            message = (cel.evaluate_message(expression, value, old) if expression else None) or rule.get(
                "message"
            ) or f"failed rule: {text}"
        field = path
        field_path = rule.get("fieldPath")
        if field_path:
            suffix = field_path.lstrip(".") if not path else field_path
            field = f"{path}{suffix}" if path and suffix.startswith(("[", ".")) else _child(path, suffix)
        reason = rule.get("reason") or "FieldValueInvalid"
        if reason == "FieldValueInvalid":
            errors.append(FieldError(reason, field, message, _schema_type(value, schema), True))
        else:
            errors.append(FieldError(reason, field, message))
