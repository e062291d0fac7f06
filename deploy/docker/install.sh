#!/bin/sh
# Install the operator and its pinned dependencies into a new virtualenv.
#   install.sh VENV SOURCE_DIR
# The Dockerfile runs this in its build stage; tests/deploy/test_docker.py runs the same script in a clean
# temporary directory, since no Docker engine is available to the tests. Keep every install step here.
set -eu
venv="$1"
src="$2"
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --quiet \
  --constraint "$src/constraints.txt" "$src"
# The image runs Python with PYTHONOPTIMIZE=2 (no docstrings: 17 MiB less RSS); compile that bytecode now,
# since the image does not write bytecode at run time. A few test fixtures inside third-party packages do
# not compile; they are never imported, so the exit status is ignored.
"$venv/bin/python" -OO -m compileall -q -j 0 "$venv/lib" >/dev/null 2>&1 || true
# Fail the build, not the pod, if the entry point cannot start.
"$venv/bin/ecr-access-operator" run --help >/dev/null
