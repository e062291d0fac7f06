"""Custom resource validation: OpenAPI checks, CEL rules, defaults, pruning and the Status they produce."""

from __future__ import annotations

from typing import Any

import pytest
from kubesim_helpers import GROUP, WIDGETS, Client, widget

from kubesim import cel, schema


def _messages(value: Any, node: dict[str, Any], old: Any = None) -> list[str]:
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}, "spec": value}
    root = {"type": "object", "properties": {"spec": node}}
    return [error.full() for error in schema.validate(obj, root, old)]


@pytest.mark.parametrize(
    ("node", "value", "expected"),
    [
        ({"type": "string"}, 5, ['spec: Invalid value: "integer": spec in body must be of type string: "integer"']),
        ({"type": "integer"}, "5", ['spec: Invalid value: "string": spec in body must be of type integer: "string"']),
        ({"type": "integer"}, True,
         ['spec: Invalid value: "boolean": spec in body must be of type integer: "boolean"']),
        ({"type": "number"}, 1.5, []),
        ({"type": "boolean"}, "true",
         ['spec: Invalid value: "string": spec in body must be of type boolean: "string"']),
        ({"type": "array"}, {}, ['spec: Invalid value: "object": spec in body must be of type array: "object"']),
        ({"type": "object"}, [], ['spec: Invalid value: "array": spec in body must be of type object: "array"']),
        ({"type": "string", "enum": ["A", "B"]}, "C", ['spec: Unsupported value: "C": supported values: "A", "B"']),
        ({"type": "string", "pattern": "^a+$"}, "b", ["spec: Invalid value: \"b\": spec in body should match '^a+$'"]),
        ({"type": "string", "minLength": 2}, "a",
         ['spec: Invalid value: "a": spec in body should be at least 2 chars long']),
        ({"type": "string", "maxLength": 2}, "abc", ["spec: Too long: may not be more than 2 bytes"]),
        ({"type": "array", "maxItems": 1}, [1, 2], ["spec: Too many: 2: must have at most 1 items"]),
        ({"type": "array", "minItems": 2}, [1],
         ['spec: Invalid value: "array": spec in body should have at least 2 items']),
        ({"type": "integer", "minimum": 2}, 1,
         ["spec: Invalid value: 1: spec in body should be greater than or equal to 2"]),
        ({"type": "integer", "maximum": 2}, 3,
         ["spec: Invalid value: 3: spec in body should be less than or equal to 2"]),
        ({"type": "string", "nullable": True}, None, []),
        ({"type": "string"}, None, ['spec: Invalid value: "null": spec in body must be of type string: "null"']),
        ({"x-kubernetes-int-or-string": True}, 5, []),
        ({"x-kubernetes-int-or-string": True}, "5%", []),
        ({"x-kubernetes-int-or-string": True}, 1.5,
         ['spec: Invalid value: "number": spec in body must be of type integer-or-string: "number"']),
        ({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}, ["a", "b", "a"],
         ['spec[2]: Duplicate value: "a"']),
        ({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
          "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}},
         [{"name": "a", "v": 1}, {"name": "a", "v": 2}], ['spec[1]: Duplicate value: "{\\"name\\": \\"a\\"}"']),
        ({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}, {},
         ["spec.a: Required value"]),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, {"x": 1, "y": "no"},
         ['spec[y]: Invalid value: "string": spec[y] in body must be of type integer: "string"']),
        ({"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
          "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}, {"a": "1", "b": "2"},
         ['spec: Invalid value: "object": spec in body must validate one and only one schema (oneOf)']),
        ({"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
          "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}, {},
         ['spec: Invalid value: "object": spec in body must validate at least one schema (anyOf)']),
        ({"type": "object", "allOf": [{"required": ["a"]}], "properties": {"a": {"type": "string"}}}, {},
         ["spec.a: Required value"]),
        ({"type": "string", "not": {"enum": ["x"]}}, "x",
         ['spec: Invalid value: "x": spec in body must not validate the schema (not)']),
    ],
)
def test_openapi_checks_word_errors_like_the_apiserver(node: dict[str, Any], value: Any, expected: list[str]) -> None:
    assert _messages(value, node) == expected


def test_cel_rules_message_reason_field_path_and_message_expression() -> None:
    node = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "n": {"type": "integer"}},
        "x-kubernetes-validations": [
            {"rule": "has(self.a) != has(self.b)", "message": "exactly one of a or b"},
            {"rule": "self.n < 5", "messageExpression": "'n is ' + string(self.n)", "fieldPath": ".n"},
            {"rule": "self.n != 7", "reason": "FieldValueForbidden", "message": "seven is forbidden"},
            {"rule": "self.n > 0"},
        ],
    }
    assert _messages({"a": "x", "b": "y", "n": 7}, node) == [
        'spec: Invalid value: "object": exactly one of a or b',
        'spec.n: Invalid value: "object": n is 7',
        "spec: Forbidden: seven is forbidden",
    ]
    assert _messages({"a": "x", "n": -1}, node) == ['spec: Invalid value: "object": failed rule: self.n > 0']


def test_cel_transition_rules_run_only_with_an_old_value() -> None:
    node = {"type": "object", "properties": {"id": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.id == oldSelf.id", "message": "id is immutable"}]}
    assert _messages({"id": "b"}, node) == []
    old = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"id": "a"}}
    assert _messages({"id": "b"}, node, old) == ['spec: Invalid value: "object": id is immutable']


def test_cel_rules_on_map_list_items_correlate_by_key() -> None:
    node = {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}},
                      "x-kubernetes-validations": [{"rule": "self.v >= oldSelf.v", "message": "v may not drop"}]}}
    old = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"},
           "spec": [{"name": "b", "v": 5}, {"name": "a", "v": 1}]}
    assert _messages([{"name": "a", "v": 2}, {"name": "b", "v": 4}], node, old) == [
        'spec[1]: Invalid value: "object": v may not drop']


def test_blocking_errors_skip_cel_with_a_note() -> None:
    node = {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "false", "message": "never"}]}
    assert _messages({}, node) == [
        "spec.a: Required value",
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation",
    ]


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        ("self.s.lowerAscii() == 'abc'", {"s": "ABC"}),
        ("self.s.upperAscii() == 'ABC'", {"s": "abc"}),
        ("self.s.split(',').size() == 3", {"s": "a,b,c"}),
        ("self.s.indexOf('c') == 2", {"s": "abc"}),
        ("self.s.replace('a', 'x') == 'xbc'", {"s": "abc"}),
        ("self.s.trim() == 'a'", {"s": " a "}),
        ("self.s.substring(1) == 'bc'", {"s": "abc"}),
        ("self.s.matches('^a.c$')", {"s": "abc"}),
        ("self.s.startsWith('a') && self.s.endsWith('c') && self.s.contains('b')", {"s": "abc"}),
        ("size(self.s) == 3", {"s": "abc"}),
        ("self.l.isSorted() && self.l.sum() == 6 && self.l.min() == 1 && self.l.max() == 3", {"l": [1, 2, 3]}),
        ("self.l.all(x, x > 0) && self.l.exists(x, x == 2) && self.l.exists_one(x, x == 3)", {"l": [1, 2, 3]}),
        ("self.l.filter(x, x > 1).size() == 2 && self.l.map(x, x * 2)[2] == 6", {"l": [1, 2, 3]}),
        ("['a', 'b'].join('-') == 'a-b'", {}),
        ("!has(self.missing) && has(self.s)", {"s": "x"}),
        ("isURL('https://example.com/x') && !isURL('nope')", {}),
        ("'k' in self.m && self.m.k == 1", {"m": {"k": 1}}),
    ],
)
def test_kubernetes_cel_library_functions(rule: str, value: dict[str, Any]) -> None:
    assert cel.evaluate(rule, value) == cel.Outcome(True)


def test_cel_evaluation_errors_fail_the_rule() -> None:
    outcome = cel.evaluate("self.missing == 1", {})
    assert not outcome.passed and "no such" in outcome.message


def test_defaults_apply_recursively() -> None:
    node = {"type": "object", "properties": {
        "a": {"type": "string", "default": "x"},
        "nested": {"type": "object", "default": {}, "properties": {"b": {"type": "integer", "default": 2}}},
        "items": {"type": "array",
                  "items": {"type": "object", "properties": {"c": {"type": "boolean", "default": True}}}},
    }}
    value: dict[str, Any] = {"items": [{}, {"c": False}]}
    schema.apply_defaults(value, node)
    assert value == {"a": "x", "nested": {"b": 2}, "items": [{"c": True}, {"c": False}]}


def test_pruning_keeps_known_and_preserved_fields() -> None:
    root = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "known": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "embedded": {"type": "object", "x-kubernetes-embedded-resource": True,
                         "properties": {"spec": {"type": "object"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        }}}}
    obj: dict[str, Any] = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}, "extra": 1, "spec": {
        "known": "k", "unknown": 1, "free": {"anything": {"goes": True}},
        "embedded": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "spec": {}, "junk": 1},
        "labels": {"a": "b"}}}
    unknown = schema.prune(obj, root)
    assert unknown == ["extra", "spec.unknown", "spec.embedded.junk"]
    assert obj["spec"]["free"] == {"anything": {"goes": True}}
    assert obj["spec"]["embedded"] == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "spec": {}}
    assert obj["spec"]["labels"] == {"a": "b"} and obj["metadata"] == {"name": "x"}


def test_a_metadata_property_in_the_schema_does_not_prune_metadata() -> None:
    root = {"type": "object", "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}}}
    obj: dict[str, Any] = {"apiVersion": "x/v1", "kind": "X", "spec": {},
                           "metadata": {"name": "x", "labels": {"a": "b"}, "annotations": {"c": "d"}}}
    assert schema.prune(obj, root) == []
    assert obj["metadata"] == {"name": "x", "labels": {"a": "b"}, "annotations": {"c": "d"}}


def test_invalid_object_gets_a_422_status_shaped_like_the_apiserver(client: Client, crd: dict[str, Any]) -> None:
    body = widget("bad", 30, color="green", tags=["a", "a"])
    status, result, _ = client.post(WIDGETS, body)
    assert status == 422
    assert result["kind"] == "Status" and result["apiVersion"] == "v1"
    assert result["status"] == "Failure" and result["reason"] == "Invalid" and result["code"] == 422
    assert result["message"].startswith(f'Widget.{GROUP} "bad" is invalid: [')
    assert result["details"]["name"] == "bad"
    assert result["details"]["group"] == GROUP
    assert result["details"]["kind"] == "Widget"
    causes = {c["field"]: c for c in result["details"]["causes"]}
    assert causes["spec.color"] == {"reason": "FieldValueNotSupported", "field": "spec.color",
                                    "message": 'Unsupported value: "green": supported values: "red", "blue"'}
    assert causes["spec.size"]["reason"] == "FieldValueInvalid"
    assert causes["spec.tags[1]"]["reason"] == "FieldValueDuplicate"


def test_cel_rule_failure_through_http(client: Client, crd: dict[str, Any]) -> None:
    status, result, _ = client.post(WIDGETS, widget("w1", color="red", shade="dark"))
    assert status == 422
    assert result["message"] == (f'Widget.{GROUP} "w1" is invalid: spec: Invalid value: "object": '
                                 "exactly one of color or shade must be set")


def test_transition_rule_through_http(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1", 5))
    status, result, _ = client.patch(f"{WIDGETS}/w1", {"spec": {"size": 4}})
    assert status == 422
    assert result["details"]["causes"][0]["field"] == "spec.size"
    assert "size may not shrink" in result["message"]
    assert client.patch(f"{WIDGETS}/w1", {"spec": {"size": 6}})[0] == 200


def test_field_validation_strict_warn_and_ignore(client: Client, crd: dict[str, Any]) -> None:
    body = widget("w1")
    body["spec"]["bogus"] = 1
    status, result, _ = client.post(f"{WIDGETS}?fieldValidation=Strict", body)
    assert status == 400
    assert 'strict decoding error: unknown field "spec.bogus"' in result["message"]
    status, result, headers = client.post(f"{WIDGETS}?fieldValidation=Warn", body)
    assert status == 201 and "bogus" not in result["spec"]
    assert headers.get_all("Warning") == ['299 - "unknown field \\"spec.bogus\\""']
    client.delete(f"{WIDGETS}/w1")
    status, result, headers = client.post(WIDGETS, body)
    assert status == 201 and "bogus" not in result["spec"] and headers.get_all("Warning") is None
    assert client.post(f"{WIDGETS}?fieldValidation=Loose", body)[0] == 400


def test_defaults_show_on_read_after_the_crd_gains_one(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1"))
    updated = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}")[1]
    spec_schema = updated["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["flavour"] = {"type": "string", "default": "vanilla"}
    status, _, _ = client.put(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}", updated)
    assert status == 200
    assert client.get(f"{WIDGETS}/w1")[1]["spec"]["flavour"] == "vanilla"
