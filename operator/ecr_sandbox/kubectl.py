"""The real kubectl, run the one way the sandbox and the tests that drive it share."""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Sequence


def run_kubectl(
    *args: str,
    kubeconfig: pathlib.Path | None = None,
    cache_dir: pathlib.Path | None = None,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 60,
    executable: str = "kubectl",
    failure: type[Exception] = RuntimeError,
) -> subprocess.CompletedProcess[str]:
    """`kubectl [--kubeconfig K] [--cache-dir C] ARGS`, with `stdin` as its input and its output captured as text.

    With `check`, a non-zero exit raises `failure` (tests pass AssertionError) naming the command and
    kubectl's stderr; without it the caller reads `returncode` itself.
    """
    options: Sequence[str] = [
        *(("--kubeconfig", str(kubeconfig)) if kubeconfig is not None else ()),
        *(("--cache-dir", str(cache_dir)) if cache_dir is not None else ()),
    ]
    done = subprocess.run([executable, *options, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise failure(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done
