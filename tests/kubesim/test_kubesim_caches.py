"""The caches that make kubesim fast under load change nothing it answers: CEL outcomes, the schema's rule
index, OpenAPI documents and watch-event encodings each follow the state they were derived from."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubesim_helpers import GROUP, WIDGET_CRD, WIDGETS, Client, widget

from kubesim import api, cel, routes, schema, server, store

CRD_PATH = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}"


# --- CEL outcomes -------------------------------------------------------------------------------------------


@pytest.fixture
def outcomes() -> Any:
    cel.OUTCOMES.clear()
    yield cel.OUTCOMES
    cel.OUTCOMES.clear()


def test_a_repeated_rule_is_answered_from_the_cache(outcomes: cel.OutcomeCache) -> None:
    assert cel.evaluate("self.size > 1", {"size": 2}) == cel.Outcome(True)
    assert (outcomes.hits, outcomes.misses) == (0, 1)
    assert cel.evaluate("self.size > 1", {"size": 2}) == cel.Outcome(True)
    assert outcomes.hits == 1
    assert not cel.evaluate("self.size > 1", {"size": 1}).passed  # another value: evaluated
    assert not cel.evaluate("self.size > 2", {"size": 2}).passed  # another rule: evaluated
    assert cel.evaluate("self.size >= oldSelf.size", {"size": 2}, {"size": 1}).passed
    assert not cel.evaluate("self.size >= oldSelf.size", {"size": 2}, {"size": 3}).passed  # oldSelf is keyed too
    assert outcomes.hits == 1


@pytest.mark.parametrize("rule", ["self == 1", "self == 1.0", "self == true", "self == {'1': 'a'}",
                                  "self.map(k, k)[0] == 'a'", "size(self) == 2", "type(self) == int"])
def test_values_cel_tells_apart_are_cached_apart(outcomes: cel.OutcomeCache, rule: str) -> None:
    values: list[Any] = [1, 1.0, True, "1", {"1": "a"}, {1: "a"}, {"a": 1, "b": 2}, {"b": 2, "a": 1}, [1, 2],
                         [2, 1], None]
    for _ in range(2):  # the second round is answered from the cache
        for value in values:
            assert cel.evaluate(rule, value) == cel._evaluate(rule, value, cel.MISSING), (rule, value)
    assert outcomes.hits == len(values)


def test_message_expressions_are_cached_by_value(outcomes: cel.OutcomeCache) -> None:
    assert cel.evaluate_message("'size ' + string(self.size)", {"size": 2}) == "size 2"
    assert cel.evaluate_message("'size ' + string(self.size)", {"size": 3}) == "size 3"
    assert cel.evaluate_message("'size ' + string(self.size)", {"size": 2}) == "size 2"
    assert cel.evaluate_message("self.missing", {"size": 2}) is None
    assert cel.evaluate_message("self.missing", {"size": 2}) is None
    assert outcomes.hits == 2


def test_the_cache_is_bounded() -> None:
    cache = cel.OutcomeCache(max_chars=1_000, max_key_chars=500)
    assert cache.key("rule", "self.x", "y" * 600, cel.MISSING) is None  # too large to keep
    for i in range(100):
        key = cache.key("rule", "self.x", {"x": i}, cel.MISSING)
        assert key is not None
        cache.put(key, cel.Outcome(True))
    assert 0 < len(cache) < 100
    assert cache._chars <= 1_000
    newest = cache.key("rule", "self.x", {"x": 99}, cel.MISSING)
    oldest = cache.key("rule", "self.x", {"x": 0}, cel.MISSING)
    assert newest is not None and oldest is not None
    assert cache.get(newest) == cel.Outcome(True)
    assert cache.get(oldest) is cel.MISSING


# --- the rule index -----------------------------------------------------------------------------------------


def test_rules_below_maps_and_lists_are_still_run() -> None:
    node_rule = {"type": "object", "properties": {"n": {"type": "integer"}},
                 "x-kubernetes-validations": [{"rule": "self.n > 0", "message": "n must be positive"}]}
    crd_schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "plain": {"type": "object", "properties": {"a": {"type": "string"}}},
            "byName": {"type": "object", "additionalProperties": {"type": "array", "items": node_rule}},
        }},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }}
    obj = {"metadata": {"name": "x"}, "spec": {"plain": {"a": "b"}, "byName": {"k": [{"n": 1}, {"n": 0}]}},
           "status": {"anything": [1, 2]}}
    for _ in range(2):  # the second time with the index built
        failures = schema.validate(obj, crd_schema, None)
        assert [(f.field, f.detail) for f in failures] == [("spec.byName[k][1]", "n must be positive")]


def test_a_crd_update_reaches_the_rule_index(client: Client, crd: dict[str, Any]) -> None:
    assert client.post(WIDGETS, widget("a"))[0] == 201
    assert client.patch(f"{WIDGETS}/a/status", {"status": {"phase": "Created"}})[0] == 200
    # The CRD gains a rule on status, where it had none (so validation used to skip status entirely).
    _, current, _ = client.get(CRD_PATH)
    updated = copy.deepcopy(current)
    status = updated["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    status["properties"]["phase"]["x-kubernetes-validations"] = [
        {"rule": "self != 'Pending'", "message": "phase may not go back to Pending"}]
    assert client.put(CRD_PATH, updated)[0] == 200
    status_code, body, _ = client.patch(f"{WIDGETS}/a/status", {"status": {"phase": "Pending"}})
    assert status_code == 422, body
    assert "phase may not go back to Pending" in body["message"]
    # And removing it again lets the same write through.
    assert client.put(CRD_PATH, {**current, "metadata": client.get(CRD_PATH)[1]["metadata"]})[0] == 200
    assert client.patch(f"{WIDGETS}/a/status", {"status": {"phase": "Pending"}})[0] == 200


# --- OpenAPI documents --------------------------------------------------------------------------------------


def test_openapi_documents_follow_crd_changes(client: Client) -> None:
    path = f"apis/{GROUP}/v1"
    assert path not in client.get("/openapi/v3")[1]["paths"]
    assert client.get(f"/openapi/v3/{path}")[0] == 404
    assert client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)[0] == 201
    root = client.get("/openapi/v3")[1]
    assert client.get("/openapi/v3")[1] == root  # served again unchanged
    first_url = root["paths"][path]["serverRelativeURL"]
    doc = client.get(f"/openapi/v3/{path}")[1]
    assert doc["components"]["schemas"]["io.kubesim.example.v1.Widget"]["description"] == (
        "A Widget is kubesim's test object.")
    _, current, _ = client.get(CRD_PATH)
    current["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "A changed Widget."
    assert client.put(CRD_PATH, current)[0] == 200
    assert client.get("/openapi/v3")[1]["paths"][path]["serverRelativeURL"] != first_url
    doc = client.get(f"/openapi/v3/{path}")[1]
    assert doc["components"]["schemas"]["io.kubesim.example.v1.Widget"]["description"] == "A changed Widget."
    assert "io.kubesim.example.v1.Widget" in client.get("/openapi/v2")[1]["definitions"]
    assert client.delete(CRD_PATH)[0] == 200
    assert path not in client.get("/openapi/v3")[1]["paths"]
    assert client.get(f"/openapi/v3/{path}")[0] == 404
    assert "io.kubesim.example.v1.Widget" not in client.get("/openapi/v2")[1]["definitions"]


# --- watch fan-out ------------------------------------------------------------------------------------------


def test_every_watch_gets_the_same_lines_of_a_burst(sim: server.ThreadHandle, client: Client,
                                                    crd: dict[str, Any]) -> None:
    rv = client.get(WIDGETS)[1]["metadata"]["resourceVersion"]
    streams = [client.stream(f"{WIDGETS}?watch=true&resourceVersion={rv}") for _ in range(3)]

    def burst() -> None:  # one turn of the server's loop: the events queue up and go out together
        widgets = sim.sim.registry.get(GROUP, "v1", "widgets")
        assert widgets is not None
        for i in range(40):
            sim.sim.api.create(widgets, "default", widget(f"w{i}"), api.WriteOptions())

    sim.call(burst)
    lines = [[stream.response.readline() for _ in range(40)] for stream in streams]
    for stream in streams:
        stream.close()
    assert lines[0] == lines[1] == lines[2]
    events = [json.loads(line) for line in lines[0]]
    assert [e["object"]["metadata"]["name"] for e in events] == [f"w{i}" for i in range(40)]
    assert {e["type"] for e in events} == {"ADDED"}
    stored = client.get(f"{WIDGETS}/w7")[1]
    assert events[7]["object"] == stored
    assert lines[0][7] == (json.dumps({"type": "ADDED", "object": stored}, separators=(",", ":")) + "\n").encode()


class _Response:
    async def write(self, data: bytes) -> None:  # pragma: no cover - not awaited here
        raise AssertionError("not used")


def test_an_event_is_encoded_again_after_stored_objects_change_in_place(sim: server.ThreadHandle) -> None:
    rtype = sim.sim.registry.get("", "v1", "configmaps")
    assert rtype is not None
    objects = store.Store()
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default",
                                                                 "resourceVersion": "1"}, "data": {"a": "1"}}
    event = store.Event("ADDED", rtype.storage_key, "default", obj, None, 1)
    send = routes._Sender(_Response(), rtype, False, "Metadata",  # type: ignore[arg-type]
                          lambda _rtype, shown: shown, lambda: objects.epoch)
    first = send.line("ADDED", event, obj)
    obj["data"]["a"] = "2"  # as a CRD update re-prunes stored objects
    assert send.line("ADDED", event, obj) == first  # the same epoch: the encoding of the event is reused
    objects.touch()
    assert json.loads(send.line("MODIFIED", event, obj)) == {"type": "MODIFIED", "object": obj}
