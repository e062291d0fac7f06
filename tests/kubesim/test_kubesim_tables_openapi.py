"""Table responses for `kubectl get`, the JSONPath they use, and the OpenAPI documents kubectl reads."""

from __future__ import annotations

from typing import Any

import pytest
from kubesim_helpers import GROUP, WIDGETS, Client, widget

from kubesim import jsonpath, tables

TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.size", [3]),
        ("{.spec.size}", [3]),
        (".status.conditions[?(@.type==\"Ready\")].status", ["True"]),
        (".status.conditions[?(@.type=='Stalled')].status", []),
        (".status.conditions[*].type", ["Ready", "Other"]),
        (".status.conditions[0].type", ["Ready"]),
        (".status.conditions[-1].type", ["Other"]),
        (".spec.missing", []),
        ("..type", ["Ready", "Other"]),
        (".metadata['name']", ["w"]),
    ],
)
def test_jsonpath(path: str, expected: list[Any]) -> None:
    obj = {"metadata": {"name": "w"}, "spec": {"size": 3},
           "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]}}
    assert jsonpath.find(obj, path) == expected


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (30 * 3600, "30h"),
     (3 * 86400 + 3600, "3d1h"), (400 * 86400, "400d"), (3 * 365 * 86400, "3y")],
)
def test_human_duration_matches_kubectl_ages(seconds: int, shown: str) -> None:
    assert tables.human_duration(seconds) == shown


def test_custom_resource_table_uses_printer_columns(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("a", 4, tags=["x", "y"]))
    client.patch(f"{WIDGETS}/a/status", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    status, body, _ = client.get(WIDGETS, headers=TABLE)
    assert status == 200 and body["kind"] == "Table" and body["apiVersion"] == "meta.k8s.io/v1"
    assert [(c["name"], c["type"], c["priority"]) for c in body["columnDefinitions"]] == [
        ("Name", "string", 0), ("Size", "integer", 0), ("Ready", "string", 0), ("Tags", "string", 1),
        ("Age", "date", 0)]
    row = body["rows"][0]
    assert row["cells"][:4] == ["a", 4, "True", "x,y"]
    assert row["cells"][4].endswith("s")  # an age such as "0s"
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "a"
    single = client.get(f"{WIDGETS}/a", headers=TABLE)[1]
    assert single["kind"] == "Table" and len(single["rows"]) == 1
    assert "object" not in client.get(f"{WIDGETS}?includeObject=None", headers=TABLE)[1]["rows"][0]


def test_builtin_tables(client: Client) -> None:
    body = client.get("/api/v1/namespaces", headers=TABLE)[1]
    assert [c["name"] for c in body["columnDefinitions"]] == ["Name", "Status", "Age"]
    assert ["default", "Active"] in [row["cells"][:2] for row in body["rows"]]


def test_openapi_v3_advertises_field_validation_for_patch(client: Client, crd: dict[str, Any]) -> None:
    root = client.get("/openapi/v3")[1]
    url = root["paths"][f"apis/{GROUP}/v1"]["serverRelativeURL"]
    assert url.startswith(f"/openapi/v3/apis/{GROUP}/v1?hash=")
    assert "api/v1" in root["paths"] and "apis/apiextensions.k8s.io/v1" in root["paths"]
    document = client.get(url)[1]
    patch = document["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/widgets/{{name}}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": GROUP, "version": "v1", "kind": "Widget"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"] if p["in"] == "query"]
    kind = document["components"]["schemas"]["io.kubesim.example.v1.Widget"]
    assert kind["properties"]["spec"]["properties"]["size"]["description"] == "How big the widget is, from 1 to 10."
    assert kind["x-kubernetes-group-version-kind"] == [{"group": GROUP, "version": "v1", "kind": "Widget"}]


def test_openapi_v3_hash_changes_when_the_crd_changes(client: Client, crd: dict[str, Any]) -> None:
    before = client.get("/openapi/v3")[1]["paths"][f"apis/{GROUP}/v1"]["serverRelativeURL"]
    current = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}")[1]
    current["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "Changed."
    client.put(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}", current)
    after = client.get("/openapi/v3")[1]["paths"][f"apis/{GROUP}/v1"]["serverRelativeURL"]
    assert before != after


def test_openapi_v2_is_json_and_refuses_protobuf(client: Client, crd: dict[str, Any]) -> None:
    status, body, _ = client.get("/openapi/v2", headers={"Accept": "application/json"})
    assert status == 200 and "io.kubesim.example.v1.Widget" in body["definitions"]
    protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    assert client.get("/openapi/v2", headers={"Accept": protobuf})[0] == 406
