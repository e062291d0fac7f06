"""The HTTP face of kubesim: URL routing, query parameters, content negotiation and watch streaming.

Everything about what a verb means lives in `api.py`; this module only translates the apiserver's REST
conventions (paths, `?watch=true`, `Accept: ...;as=Table`, patch content types, `Warning` headers) to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from typing import Any

import yaml
from aiohttp import web

from kubesim import api, discovery, errors, openapi, protobuf, selectors, tables
from kubesim.resources import ResourceType
from kubesim.store import Event, Obj

logger = logging.getLogger(__name__)
_WATCH_BATCH = 256  # events written to a watch in one go at most

_JSON = "application/json"


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    response = web.Response(text=_dumps(body), status=status, content_type=_JSON)
    for warning in warnings or []:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


@dataclasses.dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str


@dataclasses.dataclass
class WatchSettings:
    """Knobs for long-lived watches (tests shorten them)."""

    bookmark_interval: float = 60.0
    default_timeout: float = 1800.0  # the apiserver picks 30-60 min when the client gives no timeoutSeconds
    poll_interval: float = 1.0  # how often an idle watch checks that its client is still there


class Routes:
    """One aiohttp handler that dispatches every URL the way kube-apiserver's mux does."""

    def __init__(self, objects: api.Api, settings: WatchSettings) -> None:
        self.api = objects
        self.registry = objects.registry
        self.store = objects.store
        self.settings = settings
        self.stopping = False
        self._openapi_cache: dict[tuple[str, ...], dict[str, Any] | None] = {}
        self._openapi_generation = -1

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The single entry point: errors become Status objects."""
        try:
            return await self._dispatch(request)
        except errors.ApiError as error:
            return _json(error.status(), error.code)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as error:  # a kubesim bug must still answer like an apiserver, not drop the connection
            logger.exception("internal error serving %s %s", request.method, request.path)
            return _json(errors.ApiError(500, "InternalError", f"kubesim internal error: {error!r}").status(), 500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [part for part in request.path.split("/") if part]
        method = request.method
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return web.Response(text="ok")
        if method == "GET":
            document = self._document(parts, request)
            if document is not None:
                return _json(document)
        if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
            return await self._resource(request, "", "v1", parts[2:])
        if len(parts) >= 4 and parts[0] == "apis":
            return await self._resource(request, parts[1], parts[2], parts[3:])
        raise errors.path_not_found(request.path)

    def _document(self, parts: list[str], request: web.Request) -> dict[str, Any] | None:
        """Discovery, version and OpenAPI documents; None when the path names none of them."""
        result: dict[str, Any] | None = None
        if parts == ["version"]:
            result = dict(discovery.server_version())
        elif parts == ["api"]:
            result = discovery.core_versions(request.host)
        elif parts == ["apis"]:
            result = discovery.group_list(self.registry)
        elif parts == ["api", "v1"]:
            result = discovery.resource_list(self.registry, "", "v1")
        elif len(parts) == 2 and parts[0] == "apis":
            result = discovery.group(self.registry, parts[1])
            if result is None:
                raise errors.path_not_found(request.path)
        elif len(parts) == 3 and parts[0] == "apis":
            result = discovery.resource_list(self.registry, parts[1], parts[2])
            if result is None:
                raise errors.path_not_found(request.path)
        elif parts == ["openapi", "v2"]:
            if "protobuf" in request.headers.get("Accept", "") and "json" not in request.headers.get("Accept", ""):
                raise errors.ApiError(406, "NotAcceptable", "kubesim serves OpenAPI v2 as JSON only")
            result = self._openapi(("v2",), lambda: openapi.v2(self.registry))
        elif parts == ["openapi", "v3"]:
            result = self._openapi(("v3",), lambda: openapi.v3_root(self.registry))
        elif len(parts) >= 4 and parts[:2] == ["openapi", "v3"]:
            group, version = ("", parts[3]) if parts[2] == "api" else (parts[3], parts[4] if len(parts) > 4 else "")
            result = self._openapi(("v3", group, version),
                                   lambda: openapi.v3_group_version(self.registry, group, version))
            if result is None:
                raise errors.path_not_found(request.path)
        return result

    def _openapi(self, key: tuple[str, ...], build: Any) -> dict[str, Any] | None:
        """An OpenAPI document, built once per registry generation: every kubectl run fetches /openapi/v3, whose
        hashes need every group version's document, and kubesim's CRD handling never changes a served schema
        without a new generation."""
        if self._openapi_generation != self.registry.generation:
            self._openapi_cache.clear()
            self._openapi_generation = self.registry.generation
        if key not in self._openapi_cache:
            self._openapi_cache[key] = build()
        document: dict[str, Any] | None = self._openapi_cache[key]
        return document

    def _target(self, group: str, version: str, rest: list[str], path: str) -> Target:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise errors.path_not_found(path)
        rtype = self.registry.get(group, version, rest[0])
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise errors.path_not_found(path)
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and (subresource != "status" or not rtype.status_subresource):
            raise errors.path_not_found(path)
        return Target(rtype, namespace, name, subresource)

    async def _resource(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.StreamResponse:
        target = self._target(group, version, rest, request.path)
        query = request.query
        method = request.method
        if target.name is None:
            if method == "GET":
                if query.get("watch") in ("true", "1"):
                    return await self._watch(request, target)
                return self._list(request, target)
            if method == "POST":
                created = self.api.create(target.rtype, target.namespace, await _body(request), _options(request))
                return _json(created.obj, 201, created.warnings)
            if method == "DELETE":
                deleted = self.api.delete_collection(
                    target.rtype, target.namespace, query.get("labelSelector"), query.get("fieldSelector")
                )
                return _json(self._list_body(target.rtype, deleted, str(self.store.resource_version)))
            raise errors.method_not_allowed()
        rtype, name = target.rtype, target.name
        if method == "GET":
            obj = self.api.get(rtype, target.namespace, name)
            if _wants_table(request):
                return _json(tables.table(rtype, [obj], obj["metadata"]["resourceVersion"],
                                          query.get("includeObject", "Metadata")))
            return _json(obj)
        if method == "PUT":
            updated = self.api.update(rtype, target.namespace, name, await _body(request), _options(request),
                                      target.subresource)
            return _json(updated.obj, 200, updated.warnings)
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            patched = self.api.patch(rtype, target.namespace, name, content_type, await _body(request),
                                     _options(request), target.subresource)
            return _json(patched.obj, 200, patched.warnings)
        if method == "DELETE" and not target.subresource:
            raw = await request.read()
            body = json.loads(raw) if raw.strip() else None
            removed = self.api.delete(rtype, target.namespace, name, body, _options(request).dry_run)
            return _json(removed)
        raise errors.method_not_allowed()

    def _list_body(self, rtype: ResourceType, items: list[Obj], rv: str, token: str = "",
                   remaining: int | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"resourceVersion": rv}
        if token:
            metadata["continue"] = token
        if remaining is not None:
            metadata["remainingItemCount"] = remaining
        return {"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": metadata, "items": items}

    def _list(self, request: web.Request, target: Target) -> web.Response:
        query = request.query
        try:
            limit = int(query.get("limit") or 0)
        except ValueError as error:
            raise errors.bad_request(f"invalid limit: {query.get('limit')}") from error
        result = self.api.list_objects(
            target.rtype,
            target.namespace,
            query.get("labelSelector"),
            query.get("fieldSelector"),
            limit,
            query.get("continue", ""),
        )
        if _wants_table(request):
            return _json(tables.table(target.rtype, result.items, result.resource_version,
                                      query.get("includeObject", "Metadata"), result.continue_token))
        return _json(self._list_body(target.rtype, result.items, result.resource_version,
                                     result.continue_token, result.remaining))

    # --- watch ---------------------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        rtype = target.rtype
        namespace = target.namespace if rtype.namespaced else None
        labels = selectors.parse_labels(query.get("labelSelector"))
        fields = selectors.parse_fields(query.get("fieldSelector"), self.api.field_labels(rtype))
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial_events = query.get("sendInitialEvents") == "true"
        timeout = _timeout(query.get("timeoutSeconds"), self.settings.default_timeout)
        rv_param = query.get("resourceVersion", "")

        def matches(obj: Obj | None) -> bool:
            return obj is not None and selectors.matches_labels(labels, obj) and selectors.matches_fields(fields, obj)

        # Subscribing and reading the snapshot/backlog happen with no await in between: nothing is missed.
        watcher = self.store.subscribe(rtype.storage_key, namespace)
        try:
            backlog: list[tuple[str, Obj]] = []
            expired: str | None = None
            last_rv = self.store.resource_version
            if rv_param in ("", "0") or initial_events:
                for obj in self.store.select(rtype.storage_key, namespace):
                    if matches(obj):
                        backlog.append(("ADDED", obj))
            else:
                try:
                    since = int(rv_param)
                except ValueError as error:
                    raise errors.bad_request(f"invalid resource version: {rv_param}") from error
                if since < self.store.compacted_rv:
                    expired = f"too old resource version: {since} ({self.store.compacted_rv})"
                else:
                    for event in self.store.history_since(rtype.storage_key, namespace, since):
                        translated = _translate(event, matches)
                        if translated:
                            backlog.append(translated)
            response = web.StreamResponse(status=200, headers={"Content-Type": _JSON, "Cache-Control": "no-cache"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            send = _Sender(response, rtype, _wants_table(request), query.get("includeObject", "Metadata"),
                           self.api.present, lambda: self.store.epoch)
            if expired is not None:
                await send.raw({"type": "ERROR", "object": errors.gone(expired).status()})
                return response
            for kind, obj in backlog:
                await send.event(kind, self.api.present(rtype, obj))
            if initial_events and bookmarks:
                await send.bookmark(str(last_rv), initial_end=True)
            await self._stream(request, watcher, send, matches, last_rv, timeout, bookmarks)
            return response
        finally:
            self.store.unsubscribe(watcher)

    async def _stream(
        self,
        request: web.Request,
        watcher: Any,
        send: _Sender,
        matches: Any,
        last_rv: int,
        timeout: float,
        bookmarks: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + self.settings.bookmark_interval
        while not self.stopping:
            now = loop.time()
            if now >= deadline:
                return
            if bookmarks and now >= next_bookmark:
                # Only a version whose events this watch has sent: a client resumes from the last
                # version it saw, and would never get the events still queued here.
                await send.bookmark(str(self.store.resource_version if watcher.queue.empty() else last_rv))
                next_bookmark = now + self.settings.bookmark_interval
            wait = min(deadline, next_bookmark if bookmarks else deadline, now + self.settings.poll_interval) - now
            try:
                if watcher.queue.empty():
                    event = await asyncio.wait_for(watcher.queue.get(), timeout=max(wait, 0.001))
                else:
                    event = watcher.queue.get_nowait()  # no timer and task per event while events are waiting
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return
                continue
            # Events that queued up meanwhile go out in one write (the same lines, fewer sends under load).
            batch = [event]
            while event is not None and len(batch) < _WATCH_BATCH and not watcher.queue.empty():
                event = watcher.queue.get_nowait()
                batch.append(event)
            lines = []
            for queued in batch:
                if queued is None:
                    break
                if queued.rv <= last_rv:
                    continue
                last_rv = queued.rv  # sent, or not this watch's to send
                translated = _translate(queued, matches)
                if translated is not None:
                    lines.append(send.line(translated[0], queued, translated[1]))
            if lines:
                await send.write("".join(lines))
            if batch[-1] is None:
                return


class _Sender:
    """Writes newline-delimited watch events; each write is flushed to the socket at once."""

    def __init__(self, response: web.StreamResponse, rtype: ResourceType, as_table: bool, include: str,
                 present: Any = None, epoch: Any = None) -> None:
        self.response = response
        self.rtype = rtype
        self.as_table = as_table
        self.include = include
        self.first = True
        self._present = present or (lambda rtype, obj: obj)
        self._epoch = epoch or (lambda: 0)

    async def write(self, text: str) -> None:
        await self.response.write(text.encode())

    async def raw(self, event: dict[str, Any]) -> None:
        await self.write(_dumps(event) + "\n")

    def line(self, kind: str, event: Event, obj: Obj) -> str:
        """One event's line; the object's JSON is encoded once per event and served version, for every watch."""
        if self.as_table:
            presented = self._present(self.rtype, obj)
            shown = tables.table(self.rtype, [presented], presented["metadata"]["resourceVersion"], self.include,
                                 with_definitions=self.first)
            self.first = False
            return _dumps({"type": kind, "object": shown}) + "\n"
        key = (self.rtype.api_version, self._epoch())
        encoded = event.encoded.get(key) if obj is event.obj else None
        if encoded is None:
            encoded = _dumps(self._present(self.rtype, obj))
            if obj is event.obj:
                event.encoded[key] = encoded
        # Byte for byte what _dumps({"type": kind, "object": ...}) writes.
        return f'{{"type":{_dumps(kind)},"object":{encoded}}}\n'

    async def event(self, kind: str, obj: Obj) -> None:
        shown: Any = obj
        if self.as_table:
            shown = tables.table(self.rtype, [obj], obj["metadata"]["resourceVersion"], self.include,
                                 with_definitions=self.first)
            self.first = False
        await self.raw({"type": kind, "object": shown})

    async def bookmark(self, rv: str, initial_end: bool = False) -> None:
        metadata: dict[str, Any] = {"resourceVersion": rv}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        await self.raw({"type": "BOOKMARK",
                        "object": {"kind": self.rtype.kind, "apiVersion": self.rtype.api_version,
                                   "metadata": metadata}})


def _translate(event: Event, matches: Any) -> tuple[str, Obj] | None:
    """Map a store event to what a filtered watch sees: objects entering or leaving the selection."""
    now_matches = matches(event.obj)
    before = matches(event.previous)
    if event.type == "ADDED":
        return ("ADDED", event.obj) if now_matches else None
    if event.type == "DELETED":
        return ("DELETED", event.obj) if now_matches or before else None
    if now_matches and before:
        return ("MODIFIED", event.obj)
    if now_matches:
        return ("ADDED", event.obj)
    if before:
        return ("DELETED", event.obj)
    return None


def _timeout(value: str | None, default: float) -> float:
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError as error:
            raise errors.bad_request(f"invalid timeoutSeconds: {value}") from error
    return default * (1 + random.random())


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _options(request: web.Request) -> api.WriteOptions:
    query = request.query
    validation = query.get("fieldValidation", "Ignore")
    if validation not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation parameter unsupported: "{validation}". Supported values are Ignore, Warn, Strict'
        )
    return api.WriteOptions(dry_run="All" in query.getall("dryRun", []), field_validation=validation)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise errors.bad_request("the request body is empty")
    content_type = request.headers.get("Content-Type", "")
    if "protobuf" in content_type:
        return protobuf.decode(raw)
    if "cbor" in content_type:
        # client-go falls back to JSON when a server refuses CBOR with 415.
        raise errors.unsupported_media_type(content_type, ["application/json", "application/yaml"])
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as error:
        raise errors.bad_request(f"the request body could not be decoded: {error}") from error

