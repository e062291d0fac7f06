"""Discovery: what kopf and kubectl read to find resources, and how CRDs change it."""

from __future__ import annotations

from typing import Any

from kubesim_helpers import GROUP, WIDGET_CRD, Client

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def test_version_reports_a_1_32_server(client: Client) -> None:
    status, body, _ = client.get("/version")
    assert status == 200
    assert (body["major"], body["minor"]) == ("1", "32")
    assert body["gitVersion"].startswith("v1.32")


def test_core_group_lists_v1_and_builtin_resources(client: Client) -> None:
    assert client.get("/api")[1]["versions"] == ["v1"]
    status, body, _ = client.get("/api/v1")
    assert status == 200 and body["kind"] == "APIResourceList" and body["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in body["resources"]}
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["namespaces"]["shortNames"] == ["ns"]
    assert by_name["events"]["namespaced"] is True
    assert "watch" in by_name["events"]["verbs"]


def test_crd_versions_appear_in_discovery_with_subresources_and_names(client: Client, crd: dict[str, Any]) -> None:
    groups = {g["name"]: g for g in client.get("/apis")[1]["groups"]}
    assert groups[GROUP]["preferredVersion"] == {"groupVersion": f"{GROUP}/v1", "version": "v1"}
    assert "apiextensions.k8s.io" in groups and "events.k8s.io" in groups
    assert client.get(f"/apis/{GROUP}")[1]["kind"] == "APIGroup"
    status, body, _ = client.get(f"/apis/{GROUP}/v1")
    assert status == 200
    by_name = {r["name"]: r for r in body["resources"]}
    main = by_name["widgets"]
    assert main["singularName"] == "widget"
    assert main["kind"] == "Widget"
    assert main["shortNames"] == ["wd"]
    assert main["categories"] == ["kubesim"]
    assert set(main["verbs"]) >= {"create", "get", "list", "watch", "patch", "update", "delete"}
    assert by_name["widgets/status"]["verbs"] == ["get", "patch", "update"]


def test_deleting_the_crd_removes_its_group_from_discovery(client: Client, crd: dict[str, Any]) -> None:
    status, _, _ = client.delete(f"{CRDS}/widgets.{GROUP}")
    assert status == 200
    assert GROUP not in {g["name"] for g in client.get("/apis")[1]["groups"]}
    assert client.get(f"/apis/{GROUP}/v1")[0] == 404
    assert client.get(f"/apis/{GROUP}/v1/namespaces/default/widgets")[0] == 404


def test_crd_gets_established_and_names_accepted_conditions(client: Client, crd: dict[str, Any]) -> None:
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["status"] == "True"
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"
    assert crd["status"]["storedVersions"] == ["v1"]


def test_crd_with_a_mismatched_name_is_invalid(client: Client) -> None:
    bad = {**WIDGET_CRD, "metadata": {"name": "wrong.example.kubesim.io"}}
    status, body, _ = client.post(CRDS, bad)
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_aggregated_discovery_request_gets_legacy_json_so_clients_fall_back(client: Client) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    status, body, headers = client.get("/apis", headers={"Accept": accept})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert "apidiscovery" not in headers["Content-Type"]
    assert body["kind"] == "APIGroupList"


def test_unknown_paths_answer_a_404_status(client: Client) -> None:
    status, body, _ = client.get("/apis/nope.example.com/v1/things")
    assert status == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
