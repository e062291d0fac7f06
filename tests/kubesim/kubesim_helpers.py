"""Helpers for kubesim's own tests: a test CRD, a raw HTTP client with watch streams, and a kubectl runner."""

from __future__ import annotations

import http.client
import json
import pathlib
import subprocess
import urllib.parse
from typing import Any

from ecr_sandbox.kubectl import run_kubectl

KUBECTL = "/usr/bin/kubectl"
GROUP = "example.kubesim.io"
WIDGETS = f"/apis/{GROUP}/v1/namespaces/default/widgets"

# A test CRD of kubesim's own: status subresource, printer columns, defaults, CEL rules.
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"],
                  "categories": ["kubesim"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                    {"name": "Tags", "type": "string", "jsonPath": ".spec.tags[*]", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "A Widget is kubesim's test object.",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "description": "What the widget should be.",
                                "required": ["size"],
                                "x-kubernetes-validations": [
                                    {"rule": "has(self.color) != has(self.shade)",
                                     "message": "exactly one of color or shade must be set"},
                                    {"rule": "!has(oldSelf.size) || self.size >= oldSelf.size",
                                     "message": "size may not shrink", "fieldPath": ".size"},
                                ],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10,
                                             "description": "How big the widget is, from 1 to 10."},
                                    "color": {"type": "string", "enum": ["red", "blue"]},
                                    "shade": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                                    "mode": {"type": "string", "default": "Normal"},
                                    "tags": {"type": "array", "items": {"type": "string"},
                                             "x-kubernetes-list-type": "set", "maxItems": 3},
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                                "properties": {
                                    "phase": {"type": "string", "enum": ["Pending", "Created"]},
                                    "conditions": {
                                        "type": "array",
                                        "items": {"type": "object", "properties": {
                                            "type": {"type": "string"}, "status": {"type": "string"}}},
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, size: int = 3, **spec: Any) -> dict[str, Any]:
    """A valid Widget body."""
    body_spec: dict[str, Any] = {"size": size, **spec}
    if "color" not in spec and "shade" not in spec:
        body_spec["color"] = "red"
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": body_spec}


class Client:
    """A small blocking HTTP client that returns (status, decoded body, headers)."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, http.client.HTTPMessage]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        all_headers = {"Content-Type": content_type, **(headers or {})}
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        raw = response.read()
        connection.close()
        decoded = json.loads(raw) if raw and raw.strip()[:1] in (b"{", b"[") else raw.decode()
        return response.status, decoded, response.headers

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any, http.client.HTTPMessage]:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> tuple[int, Any, http.client.HTTPMessage]:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any) -> tuple[int, Any, http.client.HTTPMessage]:
        return self.request("PUT", path, body, **kwargs)

    def patch(self, path: str, body: Any, content_type: str = "application/merge-patch+json",
              **kwargs: Any) -> tuple[int, Any, http.client.HTTPMessage]:
        return self.request("PATCH", path, body, content_type=content_type, **kwargs)

    def delete(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any, http.client.HTTPMessage]:
        return self.request("DELETE", path, body, **kwargs)

    def stream(self, path: str, headers: dict[str, str] | None = None) -> Watch:
        """Open a watch and read its events one by one."""
        return Watch(self.host, self.port, path, headers or {})


class Watch:
    """A watch stream read line by line (http.client decodes the chunked encoding)."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=10)
        self.connection.request("GET", path, headers=headers)
        self.response = self.connection.getresponse()

    def next(self) -> dict[str, Any] | None:
        """The next event, or None when the server ended the stream."""
        line = self.response.readline()
        return json.loads(line) if line.strip() else None

    def close(self) -> None:
        self.connection.close()


class Kubectl:
    """The real kubectl against one kubesim, with its own kubeconfig and discovery cache."""

    def __init__(self, kubeconfig: pathlib.Path, cache: pathlib.Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache = cache

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True,
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run_kubectl(*args, kubeconfig=self.kubeconfig, cache_dir=self.cache, stdin=stdin, check=check,
                           timeout=timeout, executable=KUBECTL, failure=AssertionError)
