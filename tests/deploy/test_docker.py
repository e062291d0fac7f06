"""The Dockerfile. No Docker engine is available, so the build stage's install is replayed: the files its COPY
instructions take from the build context go into a clean directory, the script its RUN calls installs them into a
fresh virtualenv, and the installed entry point must start and print its help, with the operator's package alone
installed (no dev tool beside it in operator/, no emulator)."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.manifests import ROOT, deployment, kustomize

DOCKERFILE = ROOT / "Dockerfile"
# Beside ecr_access in operator/, for development only: none of them may be in the image.
DEV_TOOLS = ("kubesim", "awsproxy", "ecr_sandbox")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from another stage)."""
    copies = []
    for instruction, args in stage:
        if instruction == "COPY" and "--from" not in args:
            *sources, destination = args.split()
            copies.append((sources, destination))
    return copies


def _ignored(path: str) -> bool:
    """.dockerignore semantics: the last pattern matching the path or one of its parents decides."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if body.startswith("**/"):
            matches = any(fnmatch.fnmatchcase(Path(c).name, body[3:]) for c in candidates)
        else:
            matches = any(fnmatch.fnmatchcase(c, body) and c.count("/") == body.count("/") for c in candidates)
        if matches:
            ignored = not negated
    return ignored


def test_dockerfile_is_multi_stage_on_slim_python_311() -> None:
    stages = _stages()
    assert len(stages) >= 2
    args = dict(arg.split("=", 1) for kind, arg in _instructions() if kind == "ARG" and "=" in arg)
    base = args.get("PYTHON_IMAGE", "")
    assert base.startswith("python:3.11-slim"), base
    assert all("${PYTHON_IMAGE}" in stage[0][1] for stage in stages)
    runtime = stages[-1]
    assert any(kind == "COPY" and "--from=build" in arg for kind, arg in runtime)
    assert not _copies(runtime), "the runtime stage takes only the built virtualenv, no sources"


def test_image_runs_as_the_non_root_user_the_deployment_expects() -> None:
    (user,) = [arg for kind, arg in _stages()[-1] if kind == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric UID lets the kubelet verify runAsNonRoot"
    pod = deployment(kustomize("base"))["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def test_entry_point_is_ecr_access_operator_run() -> None:
    (entrypoint,) = [arg for kind, arg in _stages()[-1] if kind == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["ecr-access-operator", "run"]


def test_build_context_keeps_what_the_dockerfile_copies_and_nothing_else() -> None:
    for sources, _ in _copies(_stages()[0]):
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not _ignored(source), f"{source} is excluded by .dockerignore"
    dev_tools = [f"operator/{tool}" for tool in DEV_TOOLS]
    for path in (".venv", ".git", "tests", "deploy/helm", ".venv/bin/python", *dev_tools):
        assert _ignored(path), f"{path} would be sent to the Docker daemon"


def test_install_is_pinned_by_constraints() -> None:
    script = _install_script()
    assert '--constraint "$src/constraints.txt"' in script.read_text()


def _install_script() -> Path:
    """The script the build stage's RUN calls, found through the COPY that puts it on the PATH."""
    (run,) = [arg for kind, arg in _stages()[0] if kind == "RUN"]
    command = run.split()[-3]  # PIP_NO_CACHE_DIR=1 <command> <venv> <src>
    for sources, destination in _copies(_stages()[0]):
        if destination.endswith("/" + command):
            return ROOT / sources[0]
    pytest.fail(f"RUN calls {command}, which no COPY provides")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_install_steps_produce_a_working_entry_point(tmp_path: Path) -> None:
    build = _stages()[0]
    workdir = next(arg for kind, arg in build if kind == "WORKDIR")
    src = tmp_path / workdir.lstrip("/")
    src.mkdir(parents=True)
    # COPY <sources> <dest>: relative destinations are under WORKDIR; the install script is taken from the repo.
    for sources, destination in _copies(build):
        if not destination.startswith("/"):
            target = src / destination
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
    venv = tmp_path / "venv"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)  # the venv alone, not this checkout's operator/, must answer below
    result = subprocess.run(["sh", str(_install_script()), str(venv), str(src)], capture_output=True, text=True,
                            env=env, timeout=220, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    top = subprocess.run([str(venv / "bin" / "ecr-access-operator"), "--help"], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert top.returncode == 0 and "run" in top.stdout, top.stderr
    run = subprocess.run([str(venv / "bin" / "ecr-access-operator"), "run", "--help"], capture_output=True,
                         text=True, env=env, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    for flag in ("--liveness", "--cluster-id", "--namespace", "--region", "--resync-interval"):
        assert flag in run.stdout
    # Only the runtime dependencies are installed, each at its pinned version.
    def canonical(name: str) -> str:
        return name.lower().replace("_", "-")

    pins = {canonical(name): version for name, version in (
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#"))}
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True,
                            env=env, timeout=60, check=True).stdout
    installed = {canonical(name): version for name, version in (
        line.split("==") for line in freeze.splitlines() if "==" in line)}
    assert "pytest" not in installed and "moto" not in installed
    for name, version in installed.items():
        if name != "ecr-access-operator":
            assert pins.get(name) == version, f"{name}=={version} is not the pinned {pins.get(name)}"
    # The project installs the operator's package alone: no dev tool, no emulator is importable.
    probe = ("import importlib.metadata as m, importlib.util as u, json; print(json.dumps(["
             "m.distribution('ecr-access-operator').read_text('top_level.txt').split(), "
             f"[name for name in {[*DEV_TOOLS, 'moto', 'celpy']!r} if u.find_spec(name)]]))")
    top_level, importable = json.loads(subprocess.run([str(venv / "bin" / "python"), "-I", "-c", probe],
                                                      capture_output=True, text=True, timeout=60, check=True).stdout)
    assert top_level == ["ecr_access"]
    assert importable == []
    # So the sandbox subcommand says, in one line, what is missing and how to get it.
    sandbox = subprocess.run([str(venv / "bin" / "ecr-access-operator"), "sandbox", "--dir", str(tmp_path / "sb")],
                             capture_output=True, text=True, env=env, timeout=60, check=False)
    assert sandbox.returncode != 0
    assert len(sandbox.stderr.strip().splitlines()) == 1 and "[sandbox]" in sandbox.stderr, sandbox.stderr
    assert not (tmp_path / "sb").exists()
