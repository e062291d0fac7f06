"""How grants reach the API server, and what the bench reads back from the sandbox.

- `burst`: all N with one `kubectl create -f`, each grant's creation time taken from the line
  kubectl prints as the server accepts it;
- `trickle`: each grant POSTed to kubesim directly at its scheduled time (one kubectl per grant
  would cost a process start each, more than the spacing at N=1,000 over 60 s);
- `PassLog`: the operator's drift passes as they end, read from its log.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

import yaml

from ecr_sandbox.sandbox import Sandbox

GRANTS = "/apis/ecraccess.io/v1alpha1/namespaces/default/ecraccessgrants"
# The line the operator logs as each drift pass ends (`drift.DriftChecker.run`), stamped as kopf's
# `full` log format (the default, `cli.configure_logging`) stamps it: local time to the millisecond,
# in brackets ("[2026-12-03 06:20:02,946] ecr_access.drift [INFO] Drift check: ...").
PASS_ENDED = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]? .*Drift check: (\d+) grants checked")
CREATED = re.compile(r"/(\S+) created$")


def server(sandbox: Sandbox) -> str:
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def kube_get(sandbox: Sandbox, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(server(sandbox) + path, timeout=120) as answer:  # loopback kubesim
        return dict(json.loads(answer.read()))


def kube_post(base: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:  # loopback kubesim
        answer.read()


class Creator(threading.Thread):
    """Creates the grants in the background, keeping when each was accepted (time.time())."""

    def __init__(self, sandbox: Sandbox, manifests: Sequence[dict[str, Any]], schedule: Sequence[float] | None,
                 workdir: pathlib.Path) -> None:
        """`schedule`: seconds from the start for each manifest (a trickle); None: one kubectl (a burst)."""
        super().__init__(daemon=True)
        self.sandbox, self.manifests, self.schedule, self.workdir = sandbox, manifests, schedule, workdir
        self.created: dict[str, float] = {}
        self.started = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        self.started = time.time()
        try:
            if self.schedule is None:
                self._burst()
            else:
                self._trickle(self.schedule)
        except BaseException as error:  # reported by the caller
            self.error = error

    def _burst(self) -> None:
        manifest = self.workdir / "grants.yaml"
        manifest.write_text(yaml.safe_dump_all(list(self.manifests)))
        with subprocess.Popen(["kubectl", "--kubeconfig", str(self.sandbox.kubeconfig), "create", "-f", str(manifest)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as kubectl:
            assert kubectl.stdout is not None
            for line in kubectl.stdout:
                found = CREATED.search(line.strip())
                if found:
                    self.created[found.group(1)] = time.time()
            if kubectl.wait() != 0:
                raise RuntimeError(f"kubectl create failed: {kubectl.stderr.read() if kubectl.stderr else ''}")

    def _trickle(self, schedule: Sequence[float]) -> None:
        base = server(self.sandbox)
        for manifest, offset in zip(self.manifests, schedule, strict=True):
            delay = self.started + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            kube_post(base, GRANTS, manifest)
            self.created[manifest["metadata"]["name"]] = time.time()


class PassLog:
    """The operator's drift checks as they end, read from its log as it grows."""

    def __init__(self, path: pathlib.Path, grants: int) -> None:
        self.path = path
        self.grants = grants  # a pass checks all of them; a check of fewer is a retry or a recheck
        self._offset = path.stat().st_size if path.exists() else 0
        self._tail = ""
        self.ended: list[tuple[float, int]] = []  # (when it ended, time.time(); grants checked), in order

    def poll(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        *lines, self._tail = (self._tail + data.decode(errors="replace")).split("\n")
        for line in lines:
            found = PASS_ENDED.search(line)
            if found:
                when = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                self.ended.append((when, int(found.group(2))))

    def full_ends(self, after: float) -> list[float]:
        """When each pass over all the grants ended, after `after`."""
        return [when for when, checked in self.ended if checked >= self.grants and when > after]

    def others(self, start: float, end: float) -> int:
        """How many checks of fewer grants ended from `start` to `end`."""
        return sum(1 for when, checked in self.ended if checked < self.grants and start < when <= end)


def status_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status: VmHWM is the peak resident set, VmRSS the current one."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0
