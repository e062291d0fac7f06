"""How fast kubesim takes `kubectl create -f` of many EcrAccessGrants, with and without watches attached.

    python -m bench.kubesim_throughput [--n 1000] [--watchers 0,3] [--repeat 2] [--patch]
                                       [--kubesim-source DIR] [--profile FILE]

It starts kubesim as the sandbox does (`python -m kubesim --port 0 --kubeconfig FILE`, no operator),
installs crds/ with `kubectl apply -k crds`, and then, for each watcher count K and each repetition,
deletes the grants of the previous round, opens K streaming watches on the grants (`GET ...?watch=true
&allowWatchBookmarks=true&resourceVersion=RV`, as kopf opens them; each reads and decodes every event),
runs one `kubectl create -f` of N grants from one multi-document file, and waits until every watch has
seen all N ADDED events. `--patch` makes the first watch also do what kopf does with a new object: a
merge patch adding a finalizer and an annotation, and one to the status subresource, for each grant as
it arrives (the operator's write load, without the operator).

It prints one JSON line per round and a summary line with the objects per second of each K (every
repetition, and the min/max spread). `--kubesim-source DIR` runs the kubesim package found in DIR
(a directory holding `kubesim/`), e.g. an export of an older commit, so that one command compares two
versions. `--profile FILE` runs kubesim under cProfile and writes its stats to FILE on exit.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRANTS = "/apis/ecraccess.io/v1alpha1/namespaces/default/ecraccessgrants"


def manifest(n: int) -> str:
    """N valid grants in one multi-document YAML file."""
    return "---\n".join(
        f"apiVersion: ecraccess.io/v1alpha1\nkind: EcrAccessGrant\nmetadata:\n  name: grant-{i}\n"
        f"  namespace: default\nspec:\n  role:\n    anyscaleCloudId: cld_x\n  repositories:\n"
        f"  - name: r{i % 50}\n"
        for i in range(n)
    )


class Server:
    """`python -m kubesim` in a child process, as the sandbox starts it."""

    def __init__(self, workdir: pathlib.Path, source: pathlib.Path, profile: str | None) -> None:
        self.kubeconfig = workdir / "kubeconfig"
        self.cache = workdir / "kubectl-cache"
        env = dict(os.environ, PYTHONPATH=str(source))
        command = [sys.executable]
        if profile:
            command += ["-m", "cProfile", "-o", profile]
        command += ["-m", "kubesim", "--port", "0", "--kubeconfig", str(self.kubeconfig)]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"kubesim did not start: {line.strip() or 'no output'}")
        parsed = urllib.parse.urlparse(line.split()[-1])
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # drain

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache),
                               *args], capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=payload, headers={"Content-Type": content_type})
            response = connection.getresponse()
            data = response.read()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
            return json.loads(data)
        finally:
            connection.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # cProfile writes its stats on a clean exit
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Watch(threading.Thread):
    """One streaming watch on the grants, reading and decoding every event, as kopf's watcher does."""

    def __init__(self, server: Server, rv: str, expect: int, patch: bool) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.expect = expect
        self.patch = patch
        self.added = 0
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.connection = http.client.HTTPConnection(server.host, server.port, timeout=600)
        self.connection.request("GET", f"{GRANTS}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}"
                                       "&timeoutSeconds=600")
        self.response = self.connection.getresponse()
        self.writer = http.client.HTTPConnection(server.host, server.port, timeout=60) if patch else None

    def _patch(self, path: str, body: dict[str, Any]) -> None:
        assert self.writer is not None
        self.writer.request("PATCH", path, body=json.dumps(body).encode(),
                            headers={"Content-Type": "application/merge-patch+json"})
        response = self.writer.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"PATCH {path}: {response.status} {data[:300]!r}")

    def run(self) -> None:
        try:
            while self.added < self.expect:
                line = self.response.readline()
                if not line:
                    raise RuntimeError(f"watch ended after {self.added} of {self.expect} ADDED events")
                event = json.loads(line)
                if event["type"] != "ADDED":
                    continue
                self.added += 1
                if self.patch:
                    name = event["object"]["metadata"]["name"]
                    self._patch(f"{GRANTS}/{name}", {"metadata": {
                        "finalizers": ["ecraccess.io/cleanup"],
                        "annotations": {"kopf.zalando.org/last-handled-configuration": json.dumps(
                            event["object"]["spec"])}}})
                    self._patch(f"{GRANTS}/{name}/status", {"status": {"observedGeneration": 1}})
        except BaseException as error:  # reported by the main thread
            self.error = error
        finally:
            self.done.set()

    def close(self) -> None:
        self.connection.close()
        if self.writer is not None:
            self.writer.close()


def clear(server: Server) -> None:
    """Delete every grant (finalizers first) so that each round starts from an empty collection."""
    listed = server.request("GET", GRANTS)
    for item in listed["items"]:
        name = item["metadata"]["name"]
        if item["metadata"].get("finalizers"):
            server.request("PATCH", f"{GRANTS}/{name}", {"metadata": {"finalizers": None}},
                           "application/merge-patch+json")
    server.request("DELETE", GRANTS)


def one_round(server: Server, path: pathlib.Path, n: int, watchers: int, patch: bool) -> dict[str, Any]:
    clear(server)
    rv = server.request("GET", GRANTS)["metadata"]["resourceVersion"]
    watches = [Watch(server, rv, n, patch and i == 0) for i in range(watchers)]
    for watch in watches:
        watch.start()
    started = time.monotonic()
    server.kubectl("create", "-f", str(path))
    created = time.monotonic() - started
    for watch in watches:
        watch.done.wait(timeout=600)
    delivered = time.monotonic() - started
    for watch in watches:
        watch.close()
        if watch.error is not None:
            raise RuntimeError(f"a watch failed: {watch.error}")
    count = len(server.request("GET", GRANTS)["items"])
    if count != n:
        raise RuntimeError(f"{count} grants stored, {n} expected")
    return {"n": n, "watchers": watchers, "patch": patch, "create_s": round(created, 3),
            "create_per_s": round(n / created, 1), "all_delivered_s": round(delivered, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kubesim_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="grants per kubectl create")
    parser.add_argument("--watchers", default="0,3", help="comma-separated watch counts to measure")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per watch count")
    parser.add_argument("--patch", action="store_true", help="the first watch patches each grant, as kopf does")
    parser.add_argument("--kubesim-source", default=str(ROOT / "operator"),
                        help="directory holding the kubesim package to run")
    parser.add_argument("--profile", default=None, help="run kubesim under cProfile, stats to this file")
    args = parser.parse_args(argv)
    counts = [int(k) for k in args.watchers.split(",") if k.strip()]
    with tempfile.TemporaryDirectory(prefix="kubesim-throughput-") as tmp:
        workdir = pathlib.Path(tmp)
        path = workdir / "grants.yaml"
        path.write_text(manifest(args.n))
        server = Server(workdir, pathlib.Path(args.kubesim_source), args.profile)
        try:
            server.kubectl("apply", "-k", str(ROOT / "crds"))
            server.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
            rounds = []
            for k in counts:
                for _ in range(args.repeat):
                    result = one_round(server, path, args.n, k, args.patch)
                    print(json.dumps(result), flush=True)
                    rounds.append(result)
        finally:
            server.stop()
    summary: dict[str, Any] = {"summary": True, "n": args.n, "patch": args.patch,
                               "kubesim_source": args.kubesim_source, "per_s": {}}
    for k in counts:
        rates = [r["create_per_s"] for r in rounds if r["watchers"] == k]
        delivered = [round(args.n / r["all_delivered_s"], 1) for r in rounds if r["watchers"] == k]
        summary["per_s"][str(k)] = {"create": rates, "min": min(rates), "max": max(rates),
                                    "delivered": delivered}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
