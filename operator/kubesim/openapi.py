"""OpenAPI v3 (and a JSON OpenAPI v2) documents generated from the registry.

kubectl 1.32 needs them for two things: `kubectl apply`/`create` check in the v3 document that the PATCH
operation of a kind accepts the `fieldValidation` query parameter before sending `fieldValidation=Strict`
(otherwise they fall back to client-side validation, which needs protobuf OpenAPI v2), and `kubectl explain`
renders a kind's schema, descriptions included, from the v3 document of its group version.

The PATCH operations of built-in kinds deliberately list no strategic-merge request body, so kubectl computes
its strategic merge patches from its compiled-in Go types (which know every list's merge key) rather than from
kubesim's loose built-in schemas. Those schemas accept any field (`x-kubernetes-preserve-unknown-fields`), so
`kubectl apply`'s strict field validation never rejects a field of a built-in kind.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from kubesim import resources
from kubesim.resources import ResourceType

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_SCHEMAS = "#/components/schemas/"

_OBJECT_META_SCHEMA: dict[str, Any] = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects "
    "users must create.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {"type": "string", "description": "An optional prefix used by the server to generate a "
                         "unique name ONLY IF the Name field has not been provided."},
        "namespace": {"type": "string", "description": "Namespace defines the space within which each name must "
                      "be unique."},
        "uid": {"type": "string", "description": "UID is the unique in time and space value for this object."},
        "resourceVersion": {"type": "string", "description": "An opaque value that represents the internal "
                            "version of this object."},
        "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a "
                       "specific generation of the desired state."},
        "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a "
                              "timestamp representing the server time when this object was created."},
        "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is "
                              "RFC 3339 date and time at which this resource will be deleted."},
        "labels": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Map of string keys and values that can be used to organize and categorize "
                   "(scope and select) objects."},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Annotations is an unstructured key value map stored with a resource."},
        "finalizers": {"type": "array", "items": {"type": "string"},
                       "description": "Must be empty before the object is deleted from the registry."},
    },
}

_QUERY_PARAMETERS = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]


def schema_name(rtype: ResourceType, kind: str | None = None) -> str:
    """The component name the apiserver uses: the group reversed, then version and kind."""
    kind = kind or rtype.kind
    if not rtype.group:
        return f"io.k8s.api.core.v1.{kind}"
    if rtype.group == resources.CRD_GROUP:
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{rtype.version}.{kind}"
    if not rtype.custom:  # io.k8s.api.apps.v1.Deployment, io.k8s.api.rbac.v1.ClusterRole, ...
        return f"io.k8s.api.{rtype.group.split('.')[0]}.{rtype.version}.{kind}"
    reversed_group = ".".join(reversed(rtype.group.split(".")))
    return f"{reversed_group}.{rtype.version}.{kind}"


def _gvk(rtype: ResourceType, kind: str | None = None) -> dict[str, str]:
    return {"group": rtype.group, "version": rtype.version, "kind": kind or rtype.kind}


def _kind_schema(rtype: ResourceType, ref_prefix: str) -> dict[str, Any]:
    if rtype.schema is not None:
        body = copy.deepcopy(rtype.schema)
    else:
        body = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    body.setdefault("description", f"{rtype.kind} is served by kubesim.")
    properties = body.setdefault("properties", {})
    properties["apiVersion"] = {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object.",
    }
    properties["kind"] = {
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object represents.",
    }
    properties["metadata"] = {
        "description": "Standard object's metadata.",
        "allOf": [{"$ref": f"{ref_prefix}{OBJECT_META}"}],
        "default": {},
    }
    body["x-kubernetes-group-version-kind"] = [_gvk(rtype)]
    return body


def _list_schema(rtype: ResourceType, ref_prefix: str) -> dict[str, Any]:
    return {
        "description": f"{rtype.list_kind} is a list of {rtype.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": f"{ref_prefix}{schema_name(rtype)}"}},
            "metadata": {"type": "object"},
        },
        "x-kubernetes-group-version-kind": [_gvk(rtype, rtype.list_kind)],
    }


def _operation(rtype: ResourceType, action: str, with_body: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{action}{rtype.kind}",
        "tags": [rtype.group or "core"],
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMETERS
        ],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": f"{_SCHEMAS}{schema_name(rtype)}"}}},
            }
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rtype),
    }
    if with_body:
        content_types = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
        if action != "patch":
            content_types = ["application/json"]
        operation["requestBody"] = {
            "content": {ct: {"schema": {"type": "object"}} for ct in content_types},
            "required": True,
        }
    return operation


def _paths(rtype: ResourceType) -> dict[str, Any]:
    prefix = f"/apis/{rtype.group}/{rtype.version}" if rtype.group else f"/api/{rtype.version}"
    scope = "/namespaces/{namespace}" if rtype.namespaced else ""
    item = {
        "get": _operation(rtype, "get", False),
        "put": _operation(rtype, "put", True),
        "patch": _operation(rtype, "patch", True),
        "delete": _operation(rtype, "delete", False),
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
    }
    collection = {"get": _operation(rtype, "list", False), "post": _operation(rtype, "post", True)}
    paths = {
        f"{prefix}{scope}/{rtype.plural}": collection,
        f"{prefix}{scope}/{rtype.plural}/{{name}}": item,
    }
    if rtype.status_subresource:
        paths[f"{prefix}{scope}/{rtype.plural}/{{name}}/status"] = item
    return paths


def v3_root(registry: resources.Registry) -> dict[str, Any]:
    """`/openapi/v3`: one entry per group version, with a content hash so kubectl's cache stays honest."""
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            path = f"apis/{group}/{version}" if group else f"api/{version}"
            document = v3_group_version(registry, group, version)
            digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest().upper()[:128]
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def v3_group_version(registry: resources.Registry, group: str, version: str) -> dict[str, Any] | None:
    """`/openapi/v3/apis/{group}/{version}`."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    prefix = _SCHEMAS
    schemas: dict[str, Any] = {OBJECT_META: copy.deepcopy(_OBJECT_META_SCHEMA)}
    paths: dict[str, Any] = {}
    for rtype in types:
        schemas[schema_name(rtype)] = _kind_schema(rtype, prefix)
        schemas[schema_name(rtype, rtype.list_kind)] = _list_schema(rtype, prefix)
        paths.update(_paths(rtype))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def v2(registry: resources.Registry) -> dict[str, Any]:
    """`/openapi/v2` as JSON (kubectl asks for protobuf there and copes without it; other tools read JSON)."""
    prefix = "#/definitions/"
    definitions: dict[str, Any] = {OBJECT_META: copy.deepcopy(_OBJECT_META_SCHEMA)}
    for rtype in registry.all():
        definitions[schema_name(rtype)] = _kind_schema(rtype, prefix)
        definitions[schema_name(rtype, rtype.list_kind)] = _list_schema(rtype, prefix)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": {},
        "definitions": definitions,
    }
