"""`ecr-access-operator sandbox`: the whole system on one machine, with no cluster and no AWS account.

It starts three processes, like a small real installation:
- kubesim (an emulated Kubernetes API server) on 127.0.0.1;
- a moto server (emulated AWS, with the AWS managed policies loaded) on 127.0.0.1;
- the operator, as `ecr-access-operator run`: the same code path production runs.

Then it installs `crds/` (the EcrAccessGrant and EcrGrantPolicy CRDs, `kubectl apply -k crds`), seeds
AWS like an Anyscale cloud (a node role, two repositories, one of them already holding someone else's
statement), creates the EcrGrantPolicy `sandbox-allow-all` (every namespace may grant any role pull on
any repository: `seed.ALLOW_ALL_POLICY`), starts the operator and applies `examples/` (the example grants
in namespace `default`, and the example policy `team-ml`, which selects no sandbox namespace). `--empty`
(`seed=False`) seeds nothing, AWS or policy, and applies no examples. Like a Deployment, it restarts
the operator if the operator dies, which is what lets end-to-end tests kill it at random.

The contract others script against (keep it stable): `--dir DIR` receives `kubeconfig`, `aws.env`
(KEY=VALUE lines: AWS_ENDPOINT_URL, fake credentials, AWS_DEFAULT_REGION), `operator.pid` (and
`kubesim.pid`, `moto.pid`), and last of
all `ready`, once everything is up and the operator is watching: by then both CRDs are served and,
unless `--empty`, the policy `sandbox-allow-all` exists and the examples are applied.

A development tool, not the product: it runs from a source checkout (it takes `crds/` and `examples/`
from there) with the `[sandbox]` extra installed, and the image has none of it.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any, TextIO

import yaml

from ecr_sandbox.kubectl import run_kubectl
from ecr_sandbox.seed import ALLOW_ALL_POLICY, REGION, REPOSITORIES, ROLES, SANDBOX_POLICY, aws_client, seed_aws

# The children need the [sandbox] extra: say so at import (ecr-access-operator sandbox turns this into one
# line), not 60 s later when the moto server does not come up.
for _needed in ("moto", "celpy"):
    if importlib.util.find_spec(_needed) is None:
        raise ModuleNotFoundError(f"No module named {_needed!r}", name=_needed)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 8.0
RESTART_BACKOFF = 1.0  # seconds before retrying a failed operator restart; doubles...
RESTART_BACKOFF_MAX = 30.0  # ...up to this


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_env_file(path: pathlib.Path) -> dict[str, str]:
    """Parse `aws.env`."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _wait_for(what: str, check: Callable[[], bool], timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as answer:  # loopback URLs we built
        return 200 <= int(answer.status) < 300


class Sandbox:
    """Starts, supervises and stops the three processes. Use as a context manager."""

    def __init__(
        self,
        directory: pathlib.Path,
        *,
        seed: bool = True,
        apply_examples: bool | None = None,
        seed_policy: bool | None = None,
        resync_interval: float | None = None,
        cluster_id: str | None = None,
        operator_args: Sequence[str] = (),
        operator_env: Mapping[str, str] | None = None,
        route_operator_aws: Callable[[str], str] | None = None,
        crds: pathlib.Path = REPO_ROOT / "crds",
        examples: pathlib.Path = REPO_ROOT / "examples",
        log: TextIO = sys.stderr,
    ) -> None:
        self.dir = directory
        self.seed = seed
        self.apply_examples = seed if apply_examples is None else apply_examples
        # The allow-all EcrGrantPolicy goes with the seeding unless told otherwise: tests of tenancy
        # itself seed AWS without it (seed_policy=False), the benchmark seeds it alone (seed=False,
        # seed_policy=True).
        self.seed_policy = seed if seed_policy is None else seed_policy
        self.resync_interval = resync_interval
        self.cluster_id = cluster_id
        self.operator_args = list(operator_args)
        self.operator_env_overrides = dict(operator_env or {})
        # Given the moto server's URL, the URL the operator should use instead (a counting or
        # fault-injecting proxy in front of it); the sandbox's own clients keep talking to moto.
        self.route_operator_aws = route_operator_aws
        self.crds = crds  # a kustomization directory (applied with -k) or one manifest file
        self.examples = examples
        self.log = log
        self.kubeconfig = directory / "kubeconfig"
        self.kubesim: subprocess.Popen[bytes] | None = None
        self.moto: subprocess.Popen[bytes] | None = None
        self.operator: subprocess.Popen[bytes] | None = None
        self.operator_restarts = 0
        self.operator_start_failures = 0  # restarts that failed (see `supervise`)
        self.aws_env: dict[str, str] = {}
        self._liveness_port = free_port()
        self._metrics_port = free_port()  # the same across operator restarts, so metrics-url stays true
        self._readiness_port = free_port()  # likewise readiness-url
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in ("ready", "operator.pid", "kubesim.pid", "moto.pid", "kubeconfig", "aws.env", "metrics-url",
                     "readiness-url"):
            (self.dir / name).unlink(missing_ok=True)
        self._say("starting kubesim (emulated Kubernetes API)")
        self._start_kubesim()
        self._say("starting moto server (emulated AWS, managed policies loaded)")
        self._start_moto()
        if self.route_operator_aws is not None:
            self.operator_env_overrides["AWS_ENDPOINT_URL"] = self.route_operator_aws(self.aws_env["AWS_ENDPOINT_URL"])
        self._say("installing the CRDs")
        # Every CRD crds/kustomization.yaml lists, each waited for until the API server serves it.
        installed = self.kubectl("apply", "-k" if self.crds.is_dir() else "-f", str(self.crds), "-o", "name")
        self.kubectl("wait", "--for=condition=Established", *installed.stdout.split(), "--timeout=30s")
        if self.seed:
            self._say(f"seeding AWS: roles {', '.join(ROLES)}; repositories {', '.join(REPOSITORIES)}")
            self.seed_aws()
        if self.seed_policy:
            # Before the operator starts: its first look at the grants already sees the policy.
            self._say(f"creating EcrGrantPolicy {SANDBOX_POLICY} (every namespace may grant any role pull on any"
                      " repository)")
            self.seed_policies()
        self._say("starting the operator (ecr-access-operator run)")
        self.start_operator()
        (self.dir / "metrics-url").write_text(f"{self.metrics_url}\n")
        (self.dir / "readiness-url").write_text(f"{self.readiness_url}\n")
        if self.apply_examples:
            self._say(f"applying {self.examples}/")
            self.kubectl("apply", "-f", str(self.examples))
        (self.dir / "ready").write_text(f"{time.time()}\n")

    def stop(self) -> None:
        """Stop the operator first (so it never sees its servers vanish mid-write), then both servers
        together; anything still running after STOP_TIMEOUT in all is killed."""
        self._stopping.set()
        deadline = time.monotonic() + STOP_TIMEOUT
        for group in ((self.operator,), (self.kubesim, self.moto)):
            running = [proc for proc in group if proc is not None and proc.poll() is None]
            for proc in running:
                proc.send_signal(signal.SIGTERM)
            for proc in running:
                try:
                    proc.wait(timeout=max(0.1, min(deadline - time.monotonic(), STOP_TIMEOUT / 2)))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        (self.dir / "ready").unlink(missing_ok=True)

    def supervise(self) -> None:
        """Block until stopped; restart the operator whenever it dies, as a Deployment would.

        A restart that fails (the operator dies again before its liveness endpoint answers) is
        retried after a back-off that doubles up to RESTART_BACKOFF_MAX, like a pod in
        CrashLoopBackOff; kubesim and moto, and all their state, stay up meanwhile.
        """
        backoff, next_try = RESTART_BACKOFF, 0.0
        while not self._stopping.wait(0.5):
            for name, proc in (("kubesim", self.kubesim), ("moto server", self.moto)):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {proc.returncode}")
            dead = self.operator is not None and self.operator.poll() is not None
            if not dead or self._stopping.is_set() or time.monotonic() < next_try:
                continue
            assert self.operator is not None
            self.operator_restarts += 1
            self._say(f"the operator exited ({self.operator.returncode}); restarting it")
            try:
                self.start_operator()
            except RuntimeError as error:
                self.operator_start_failures += 1
                next_try = time.monotonic() + backoff
                self._say(f"the operator did not start ({error}); trying again in {backoff:.0f}s")
                backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
            else:
                backoff, next_try = RESTART_BACKOFF, 0.0

    def operator_healthy(self) -> bool:
        """Whether the operator's liveness endpoint answers."""
        try:
            return _http_ok(f"http://127.0.0.1:{self._liveness_port}/healthz")
        except OSError:
            return False

    # -- the three processes ------------------------------------------------------------------------

    def _start_kubesim(self) -> None:
        self.kubesim = subprocess.Popen(
            [sys.executable, "-m", "kubesim", "--port", "0", "--kubeconfig", str(self.kubeconfig)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self._base_env(),
        )
        assert self.kubesim.stdout is not None
        line = self.kubesim.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"kubesim did not start: {line.strip() or 'no output'}")
        self._drain(self.kubesim, "kubesim")
        (self.dir / "kubesim.pid").write_text(f"{self.kubesim.pid}\n")

    def _start_moto(self) -> None:
        port = free_port()
        env = {**self._base_env(), "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
        self.moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        )
        self._drain(self.moto, "moto", quiet=True)
        (self.dir / "moto.pid").write_text(f"{self.moto.pid}\n")
        url = f"http://127.0.0.1:{port}"
        _wait_for("moto server", lambda: _http_ok(f"{url}/moto-api/"))
        self.aws_env = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        (self.dir / "aws.env").write_text("".join(f"{key}={value}\n" for key, value in self.aws_env.items()))

    def start_operator(self) -> None:
        args = ["run", "--liveness", f"http://127.0.0.1:{self._liveness_port}/healthz",
                "--readiness", self.readiness_url, "--metrics-port", str(self._metrics_port), *self.operator_args]
        if self.resync_interval is not None:
            args += ["--resync-interval", str(self.resync_interval)]
        if self.cluster_id is not None:
            args += ["--cluster-id", self.cluster_id]
        self.operator = subprocess.Popen(
            [sys.executable, "-m", "ecr_access.cli", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**self._base_env(), **self.operator_env()},
        )
        (self.dir / "operator.pid").write_text(f"{self.operator.pid}\n")
        self._drain(self.operator, "operator", log_file=self.dir / "operator.log")
        # Up as a Deployment's rollout counts it: live, then ready (AWS answered, every index listed).
        _wait_for("the operator's liveness endpoint", lambda: self._operator_up(f"http://127.0.0.1:{self._liveness_port}/healthz"))
        _wait_for("the operator's readiness endpoint", lambda: self._operator_up(self.readiness_url))

    def _operator_up(self, url: str) -> bool:
        if self.operator is not None and self.operator.poll() is not None:
            raise RuntimeError(f"the operator exited with code {self.operator.returncode}; see {self.dir}/operator.log")
        return _http_ok(url)

    def operator_env(self) -> dict[str, str]:
        """The operator's environment: the sandbox's kubeconfig and AWS, plus any overrides (tests use
        them to route the operator's AWS traffic through a fault-injecting proxy)."""
        image = {"MALLOC_ARENA_MAX": "2", "PYTHONOPTIMIZE": "2"}  # as in the Dockerfile: run like the image
        local = {"ECR_ACCESS_METRICS_ADDRESS": "127.0.0.1"}  # this machine only, on a free port (metrics-url)
        return {"KUBECONFIG": str(self.kubeconfig), **image, **local, **self.aws_env, **self.operator_env_overrides}

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def metrics_url(self) -> str:
        """Where the operator serves Prometheus metrics (also written to DIR/metrics-url)."""
        return f"http://127.0.0.1:{self._metrics_port}/metrics"

    @property
    def readiness_url(self) -> str:
        """Where the operator answers its readiness probe (also written to DIR/readiness-url)."""
        return f"http://127.0.0.1:{self._readiness_port}/readyz"

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_kubectl(*args, kubeconfig=self.kubeconfig, stdin=stdin, check=check)

    def aws(self, service: str, region: str = REGION) -> Any:
        return aws_client(self.aws_env, service, region)

    def seed_aws(self) -> None:
        seed_aws(self.aws_env)

    def seed_policies(self) -> None:
        """Create (or restore) the allow-all EcrGrantPolicy `seed.SANDBOX_POLICY`."""
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(ALLOW_ALL_POLICY))

    def _base_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "KUBECONFIG"))}
        source = str(REPO_ROOT / "operator")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
        return env

    def _drain(self, proc: subprocess.Popen[bytes], name: str, quiet: bool = False,
               log_file: pathlib.Path | None = None) -> None:
        """Copy a child's output to a log file (or drop it), so that a full pipe never blocks it."""
        def pump() -> None:
            assert proc.stdout is not None
            sink = open(log_file, "ab") if log_file else open(self.dir / f"{name}.log", "ab")  # noqa: SIM115
            with sink:
                for line in proc.stdout:
                    if not quiet:
                        sink.write(line)
                        sink.flush()
        threading.Thread(target=pump, name=f"drain-{name}", daemon=True).start()

    def _say(self, message: str) -> None:
        print(f"sandbox: {message}", file=self.log, flush=True)


def main(directory: pathlib.Path, *, seed: bool, resync_interval: float | None, cluster_id: str | None) -> int:
    """Run the sandbox until SIGINT/SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    sandbox = Sandbox(directory, seed=seed, resync_interval=resync_interval, cluster_id=cluster_id)
    try:
        with sandbox:
            print(
                f"\nThe sandbox is ready. In another shell:\n"
                f"  export KUBECONFIG={sandbox.kubeconfig}\n"
                f"  set -a; . {directory}/aws.env; set +a     # boto3 and the AWS CLI now talk to moto\n"
                f"  kubectl get ecrgrants\n"
                f"  kubectl get ecrgrantpolicies        # what each namespace may grant\n"
                f"Stop it with Ctrl-C.\n",
                flush=True,
            )
            sandbox.supervise()
    except KeyboardInterrupt:
        pass
    return 0
