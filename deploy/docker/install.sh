#!/bin/sh
# Install the operator and its pinned dependencies into a new virtualenv.
#   install.sh VENV SOURCE_DIR
# SOURCE_DIR holds what the Dockerfile copies: pyproject.toml, constraints.txt, README.md and operator/ecr_access
# alone, so that the package the project builds is the operator and nothing else (the dev tools beside it in
# operator/ are not copied).
# The Dockerfile runs this in its build stage; tests/deploy/test_docker.py runs the same script in a clean
# temporary directory, since no Docker engine is available to the tests. Keep every install step here.
set -eu
venv="$1"
src="$2"
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --quiet \
  --constraint "$src/constraints.txt" "$src"
# The image runs Python with PYTHONOPTIMIZE=2 (no docstrings: 17 MiB less RSS); compile that bytecode now,
# since the image does not write bytecode at run time. A file a third-party package ships that does not compile
# (some ship such test fixtures) is never imported, so the exit status is ignored.
"$venv/bin/python" -OO -m compileall -q -j 0 "$venv/lib" >/dev/null 2>&1 || true
# Fail the build, not the pod, if the entry point cannot start.
"$venv/bin/ecr-access-operator" run --help >/dev/null
# Fail it too if a development tool or an emulator got in (-I: whatever PYTHONPATH the caller has is ignored).
"$venv/bin/python" -I -c '
import importlib.util, sys
found = [name for name in ("kubesim", "awsproxy", "ecr_sandbox", "moto", "celpy") if importlib.util.find_spec(name)]
sys.exit("install.sh: not for the image, but installed: " + ", ".join(found) if found else 0)
'
