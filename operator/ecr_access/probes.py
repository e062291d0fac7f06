"""The readiness probe (issue 15): `/readyz` answers 200 once the operator can do its work, 503 before.

Ready means both:
- **AWS answered**: the operator's own identity (`sts:GetCallerIdentity`) came back at start-up, so
  its credentials and region work;
- **the indexes are complete**: kopf has listed every grant, policy, namespace and account, so what
  the operator decides is judged against the whole cluster, not a partial listing (kopf runs no
  resource handler before that; the first handler call, or a start-up with no grants, says so).

It is never unready again once ready: a passing AWS outage is a grant's `Reconciling`, not a reason to
take the pod out of a Service, and liveness (kopf's own endpoint) already restarts a hung loop.

Served on a thread of its own with the standard library, as prometheus_client serves /metrics, and
bound before kopf starts, so that a taken port fails the start-up at once with the reason.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from typing import Any


class Readiness:
    """What the readiness probe reports; set from the event loop, read from the server's thread
    (two booleans: a torn read cannot happen)."""

    def __init__(self) -> None:
        self.aws_answered = False
        self.indexes_complete = False

    @property
    def ready(self) -> bool:
        return self.aws_answered and self.indexes_complete

    def waiting_for(self) -> list[str]:
        """What the operator still waits for, in words, for the probe's answer body."""
        return ([] if self.aws_answered else ["AWS to answer sts:GetCallerIdentity"]) + (
            [] if self.indexes_complete else ["kopf to list every grant, policy, namespace and account"])


def serve(endpoint: str, readiness: Readiness) -> http.server.ThreadingHTTPServer:
    """Serve `readiness` at `endpoint` (e.g. `http://0.0.0.0:8081/readyz`) on a daemon thread.
    Raises ValueError for an endpoint it cannot serve, OSError for a port it cannot bind."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme != "http" or not parts.port:
        raise ValueError(f"the readiness endpoint must be http://HOST:PORT/PATH, got {endpoint!r}")
    path = parts.path or "/"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urllib.parse.urlsplit(self.path).path != path:
                self._answer(404, {"error": f"not found; the readiness probe is at {path}"})
            elif readiness.ready:
                self._answer(200, {"ready": True})
            else:
                self._answer(503, {"ready": False, "waitingFor": readiness.waiting_for()})

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a probe every 10 s is not news

    server = http.server.ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="readiness", daemon=True).start()
    return server
