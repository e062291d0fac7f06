"""Create, read, update, patch and delete through raw HTTP, with the apiserver's bookkeeping."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubesim_helpers import GROUP, WIDGET_CRD, WIDGETS, Client, widget

import kubesim.api

NAMESPACES = "/api/v1/namespaces"


def test_default_and_kube_system_namespaces_exist_with_uids(client: Client) -> None:
    status, body, _ = client.get(NAMESPACES)
    assert status == 200 and body["kind"] == "NamespaceList"
    names = {item["metadata"]["name"]: item for item in body["items"]}
    assert {"default", "kube-system"} <= set(names)
    assert re.fullmatch(r"[0-9a-f-]{36}", names["kube-system"]["metadata"]["uid"])
    assert names["default"]["status"]["phase"] == "Active"


def test_create_assigns_uid_rv_generation_and_timestamp(client: Client, crd: dict[str, Any]) -> None:
    status, body, _ = client.post(WIDGETS, widget("w1"))
    assert status == 201
    meta = body["metadata"]
    assert meta["namespace"] == "default"
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > int(crd["metadata"]["resourceVersion"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["uid"]
    assert body["spec"]["mode"] == "Normal"  # defaulted


def test_generate_name_makes_a_unique_name(client: Client, crd: dict[str, Any]) -> None:
    body = widget("")
    body["metadata"] = {"generateName": "gen-"}
    first = client.post(WIDGETS, body)[1]["metadata"]["name"]
    second = client.post(WIDGETS, body)[1]["metadata"]["name"]
    assert first.startswith("gen-") and len(first) == 9 and first != second


def test_a_generated_name_that_is_taken_is_generated_again(client: Client, crd: dict[str, Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """As the apiserver does (RetryGenerateName, GA in Kubernetes 1.32): five random characters collide
    among 10,000 names about three times (kopf's Events at N=10,000 lost three `Applied` to 409s)."""
    picks = iter("bbbbb" "bbbbb" "ccccc")
    monkeypatch.setattr(kubesim.api.secrets, "choice", lambda alphabet: next(picks))
    body = widget("")
    body["metadata"] = {"generateName": "gen-"}
    assert client.post(WIDGETS, body)[1]["metadata"]["name"] == "gen-bbbbb"
    status, created, _ = client.post(WIDGETS, body)
    assert (status, created["metadata"]["name"]) == (201, "gen-ccccc")


def test_create_twice_is_409_already_exists(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1"))
    status, body, _ = client.post(WIDGETS, widget("w1"))
    assert status == 409
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
    assert body["message"] == f'widgets.{GROUP} "w1" already exists'
    assert body["details"] == {"name": "w1", "group": GROUP, "kind": "widgets"}


def test_create_in_a_missing_namespace_is_404(client: Client, crd: dict[str, Any]) -> None:
    status, body, _ = client.post(f"/apis/{GROUP}/v1/namespaces/nope/widgets", widget("w1"))
    assert status == 404 and body["message"] == 'namespaces "nope" not found'


def test_get_missing_object_is_404_status(client: Client, crd: dict[str, Any]) -> None:
    status, body, _ = client.get(f"{WIDGETS}/missing")
    assert status == 404
    assert body["reason"] == "NotFound" and body["message"] == f'widgets.{GROUP} "missing" not found'


def test_list_has_list_kind_and_resource_version(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("b"))
    client.post(WIDGETS, widget("a"))
    status, body, _ = client.get(WIDGETS)
    assert status == 200
    assert body["kind"] == "WidgetList" and body["apiVersion"] == f"{GROUP}/v1"
    assert [i["metadata"]["name"] for i in body["items"]] == ["a", "b"]
    assert int(body["metadata"]["resourceVersion"]) >= max(int(i["metadata"]["resourceVersion"]) for i in body["items"])


def test_cluster_wide_list_spans_namespaces(client: Client, crd: dict[str, Any]) -> None:
    client.post(NAMESPACES, {"metadata": {"name": "team"}})
    client.post(WIDGETS, widget("a"))
    client.post(f"/apis/{GROUP}/v1/namespaces/team/widgets", widget("b"))
    body = client.get(f"/apis/{GROUP}/v1/widgets")[1]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]] == [
        ("default", "a"), ("team", "b")]
    assert [i["metadata"]["name"] for i in client.get(f"/apis/{GROUP}/v1/namespaces/team/widgets")[1]["items"]] == ["b"]


def _names(client: Client, query: str) -> list[str]:
    status, body, _ = client.get(f"{WIDGETS}?{query}")
    assert status == 200, body
    return [i["metadata"]["name"] for i in body["items"]]


def test_label_selectors(client: Client, crd: dict[str, Any]) -> None:
    for name, labels in [("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {})]:
        body = widget(name)
        body["metadata"]["labels"] = labels
        client.post(WIDGETS, body)
    assert _names(client, "labelSelector=app%3Dx") == ["a"]
    assert _names(client, "labelSelector=app%3D%3Dy") == ["b"]
    assert _names(client, "labelSelector=app!%3Dx") == ["b", "c"]
    assert _names(client, "labelSelector=app+in+(x,y)") == ["a", "b"]
    assert _names(client, "labelSelector=app+notin+(x)") == ["b", "c"]
    assert _names(client, "labelSelector=tier") == ["a"]
    assert _names(client, "labelSelector=!app") == ["c"]
    assert _names(client, "labelSelector=app,tier%3Dweb") == ["a"]
    assert client.get(f"{WIDGETS}?labelSelector=a+b+c")[0] == 400


def test_field_selectors_on_name_and_namespace(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("a"))
    client.post(WIDGETS, widget("b"))
    assert _names(client, "fieldSelector=metadata.name%3Db") == ["b"]
    assert _names(client, "fieldSelector=metadata.name!%3Db") == ["a"]
    assert _names(client, "fieldSelector=metadata.namespace%3Ddefault") == ["a", "b"]
    status, body, _ = client.get(f"{WIDGETS}?fieldSelector=spec.size%3D3")
    assert status == 400 and "field label not supported" in body["message"]


def test_limit_and_continue_page_through_a_list(client: Client, crd: dict[str, Any]) -> None:
    for name in "abcde":
        client.post(WIDGETS, widget(name))
    first = client.get(f"{WIDGETS}?limit=2")[1]
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 3
    token = first["metadata"]["continue"]
    second = client.get(f"{WIDGETS}?limit=2&continue={token}")[1]
    assert [i["metadata"]["name"] for i in second["items"]] == ["c", "d"]
    third = client.get(f"{WIDGETS}?limit=2&continue={second['metadata']['continue']}")[1]
    assert [i["metadata"]["name"] for i in third["items"]] == ["e"]
    assert "continue" not in third["metadata"]


def test_put_with_stale_resource_version_is_409_conflict(client: Client, crd: dict[str, Any]) -> None:
    created = client.post(WIDGETS, widget("w1"))[1]
    fresh = dict(created, spec={**created["spec"], "size": 4})
    status, updated, _ = client.put(f"{WIDGETS}/w1", fresh)
    assert status == 200 and updated["spec"]["size"] == 4
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    stale = dict(created, spec={**created["spec"], "size": 5})
    status, body, _ = client.put(f"{WIDGETS}/w1", stale)
    assert status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_put_without_resource_version_on_a_custom_resource_is_invalid(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1"))
    status, body, _ = client.put(f"{WIDGETS}/w1", widget("w1", 4))
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_generation_bumps_on_spec_changes_only(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1"))
    after_labels = client.patch(f"{WIDGETS}/w1", {"metadata": {"labels": {"a": "b"}}})[1]
    assert after_labels["metadata"]["generation"] == 1
    after_status = client.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Created"}})[1]
    assert after_status["metadata"]["generation"] == 1
    after_spec = client.patch(f"{WIDGETS}/w1", {"spec": {"size": 4}})[1]
    assert after_spec["metadata"]["generation"] == 2


def test_noop_patch_does_not_bump_resource_version(client: Client, crd: dict[str, Any]) -> None:
    created = client.post(WIDGETS, widget("w1"))[1]
    same = client.patch(f"{WIDGETS}/w1", {"spec": {"size": 3}})[1]
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_status_subresource_split(client: Client, crd: dict[str, Any]) -> None:
    body = widget("w1")
    body["status"] = {"phase": "Created"}
    created = client.post(WIDGETS, body)[1]
    assert "status" not in created  # status is dropped on create
    main = client.patch(f"{WIDGETS}/w1", {"spec": {"size": 5}, "status": {"phase": "Created"}})[1]
    assert main["spec"]["size"] == 5 and "status" not in main
    sneaky = {"spec": {"size": 9}, "metadata": {"labels": {"x": "y"}}, "status": {"phase": "Created"}}
    status_write = client.patch(f"{WIDGETS}/w1/status", sneaky)[1]
    assert status_write["status"] == {"phase": "Created"}
    assert status_write["spec"]["size"] == 5
    assert "labels" not in status_write["metadata"]
    assert client.get(f"{WIDGETS}/w1/status")[1]["status"] == {"phase": "Created"}
    # PUT /status with a stale resourceVersion is a conflict too.
    stale = dict(created, status={"phase": "Pending"})
    assert client.put(f"{WIDGETS}/w1/status", stale)[0] == 409


def test_status_updates_are_validated(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1"))
    status, body, _ = client.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Bogus"}})
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "status.phase"


def test_json_patch_and_failed_test_op(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1", tags=["a"]))
    ops = [{"op": "test", "path": "/spec/size", "value": 3}, {"op": "replace", "path": "/spec/size", "value": 6},
           {"op": "add", "path": "/spec/tags/-", "value": "b"}]
    status, body, _ = client.patch(f"{WIDGETS}/w1", ops, content_type="application/json-patch+json")
    assert status == 200 and body["spec"]["size"] == 6 and body["spec"]["tags"] == ["a", "b"]
    failing = [{"op": "test", "path": "/spec/size", "value": 1}, {"op": "remove", "path": "/spec/tags"}]
    status, body, _ = client.patch(f"{WIDGETS}/w1", failing, content_type="application/json-patch+json")
    assert status == 422 and body["kind"] == "Status"
    assert client.get(f"{WIDGETS}/w1")[1]["spec"]["tags"] == ["a", "b"]


def test_merge_patch_removes_with_null(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1", tags=["a"]))
    body = client.patch(f"{WIDGETS}/w1", {"spec": {"tags": None}})[1]
    assert "tags" not in body["spec"]


def test_patch_with_resource_version_is_conditional(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1"))
    status, body, _ = client.patch(f"{WIDGETS}/w1", {"metadata": {"resourceVersion": "1"}, "spec": {"size": 4}})
    assert status == 409 and body["reason"] == "Conflict"


def test_strategic_merge_patch_on_custom_resources_is_415(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1"))
    status, body, _ = client.patch(f"{WIDGETS}/w1", {"spec": {"size": 4}},
                                   content_type="application/strategic-merge-patch+json")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    assert "application/merge-patch+json" in body["message"]


def test_server_side_apply_is_a_clear_415(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("w1"))
    status, body, _ = client.patch(f"{WIDGETS}/w1", b"spec: {size: 4}", content_type="application/apply-patch+yaml")
    assert status == 415 and "server-side apply" in body["message"]


def test_strategic_merge_patch_on_namespaces(client: Client) -> None:
    client.post(NAMESPACES, {"metadata": {"name": "team", "labels": {"a": "1"}}})
    patch = {"metadata": {"labels": {"b": "2"}, "finalizers": ["example.com/x"]}}
    status, body, _ = client.patch(f"{NAMESPACES}/team", patch, content_type="application/strategic-merge-patch+json")
    assert status == 200
    assert body["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert body["metadata"]["finalizers"] == ["example.com/x"]


def test_finalizers_delay_deletion_until_removed(client: Client, crd: dict[str, Any]) -> None:
    body = widget("w1")
    body["metadata"]["finalizers"] = ["example.com/one"]
    client.post(WIDGETS, body)
    status, deleting, _ = client.delete(f"{WIDGETS}/w1")
    assert status == 200
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 0
    assert client.get(f"{WIDGETS}/w1")[0] == 200
    status, body, _ = client.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": ["example.com/one", "new"]}})
    assert status == 422  # no new finalizers while deleting
    status, gone, _ = client.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": None}})
    assert status == 200 and gone["metadata"]["name"] == "w1"
    assert client.get(f"{WIDGETS}/w1")[0] == 404


def test_delete_without_finalizers_is_immediate_and_honours_preconditions(client: Client, crd: dict[str, Any]) -> None:
    created = client.post(WIDGETS, widget("w1"))[1]
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}}
    status, body, _ = client.delete(f"{WIDGETS}/w1", options)
    assert status == 409 and "Precondition failed" in body["message"]
    options = {"propagationPolicy": "Background", "preconditions": {"uid": created["metadata"]["uid"]}}
    status, body, _ = client.delete(f"{WIDGETS}/w1", options)
    assert status == 200 and body["metadata"]["name"] == "w1"
    assert client.get(f"{WIDGETS}/w1")[0] == 404
    assert client.delete(f"{WIDGETS}/w1")[0] == 404


def test_delete_collection_with_a_selector(client: Client, crd: dict[str, Any]) -> None:
    for name, labels in [("a", {"x": "1"}), ("b", {"x": "1"}), ("c", {})]:
        body = widget(name)
        body["metadata"]["labels"] = labels
        client.post(WIDGETS, body)
    status, body, _ = client.delete(f"{WIDGETS}?labelSelector=x%3D1")
    assert status == 200 and len(body["items"]) == 2
    assert _names(client, "") == ["c"]


def test_dry_run_stores_nothing(client: Client, crd: dict[str, Any]) -> None:
    status, body, _ = client.post(f"{WIDGETS}?dryRun=All", widget("w1"))
    assert status == 201 and body["spec"]["mode"] == "Normal"
    assert client.get(f"{WIDGETS}/w1")[0] == 404


def test_deleting_a_namespace_deletes_its_objects(client: Client, crd: dict[str, Any]) -> None:
    client.post(NAMESPACES, {"metadata": {"name": "team"}})
    team = f"/apis/{GROUP}/v1/namespaces/team/widgets"
    client.post(team, widget("a"))
    held = widget("b")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    client.post(team, held)
    status, body, _ = client.delete(f"{NAMESPACES}/team")
    assert status == 200 and body["status"]["phase"] == "Terminating"
    assert client.get(f"{team}/a")[0] == 404
    assert client.get(f"{team}/b")[1]["metadata"]["deletionTimestamp"]
    assert client.get(f"{NAMESPACES}/team")[0] == 200  # still terminating: b has a finalizer
    client.patch(f"{team}/b", {"metadata": {"finalizers": None}})
    assert client.get(f"{NAMESPACES}/team")[0] == 404


def test_deleting_a_crd_deletes_its_objects(client: Client, crd: dict[str, Any]) -> None:
    client.post(WIDGETS, widget("a"))
    client.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}")
    client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert client.get(WIDGETS)[1]["items"] == []


def test_core_v1_events_accept_kopf_style_posts(client: Client) -> None:
    event = {
        "metadata": {"namespace": "default", "generateName": "kopf-event-"},
        "action": "Action?", "type": "Normal", "reason": "Logging", "message": "Handler succeeded.",
        "involvedObject": {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "name": "w1", "namespace": "default",
                           "uid": "u-1"},
        "firstTimestamp": "2024-01-01T00:00:00.000000+00:00", "eventTime": "2024-01-01T00:00:00.000000+00:00",
    }
    status, body, _ = client.post("/api/v1/namespaces/default/events", event)
    assert status == 201 and body["metadata"]["name"].startswith("kopf-event-")
    query = "fieldSelector=involvedObject.name%3Dw1,involvedObject.uid%3Du-1"
    listed = client.get(f"/api/v1/namespaces/default/events?{query}")[1]
    assert [e["reason"] for e in listed["items"]] == ["Logging"]
    assert client.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dother")[1]["items"] == []


def test_resource_versions_are_monotonic_across_resources(client: Client, crd: dict[str, Any]) -> None:
    versions = []
    for index in range(5):
        versions.append(int(client.post(WIDGETS, widget(f"w{index}"))[1]["metadata"]["resourceVersion"]))
        namespace = client.post(NAMESPACES, {"metadata": {"name": f"ns{index}"}})[1]
        versions.append(int(namespace["metadata"]["resourceVersion"]))
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
