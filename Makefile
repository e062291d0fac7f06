# The README's quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Two installs into the one .venv: `make demo` needs only the [sandbox] extra (moto, cel-python); every
# other target needs [dev], which includes [sandbox], so a dev install stands for both.
SANDBOX_STAMP := $(VENV)/.installed-sandbox
DEV_STAMP     := $(VENV)/.installed-dev

.PHONY: help venv test check lint typecheck importlint unit integration kubesim e2e run demo deploy bench bench-quick bench-large bench-trickle600 bench-metrics lock clean

help:
	@echo "make demo   - run the operator end to end on the embedded sandbox (kubesim + moto)"
	@echo "make test   - lint, type-check, import contracts and the whole pytest suite"
	@echo "make check  - lint, type-check, import contracts and the unit tests (well under a minute)"
	@echo "make run    - run the operator against the current kubeconfig and AWS credentials"
	@echo "make deploy - install into the current kubectl context (OVERLAY=irsa|pod-identity|argocd)"

# $(call install,EXTRA): the project, editable, with EXTRA, into .venv (created on first use), pinned.
# The operator runs with PYTHONOPTIMIZE=2, as in the image (see Dockerfile): give it compiled bytecode,
# since PYTHONDONTWRITEBYTECODE machines would otherwise compile it at every start. A third-party file
# that does not compile (some packages ship such test fixtures) is never imported: its error is ignored.
define install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[$(1)]"
	-$(BIN)/python -OO -m compileall -q -j 0 $(VENV)/lib operator >/dev/null 2>&1
endef

# Re-install whenever the pins change; the stamps keep repeat runs fast.
$(SANDBOX_STAMP): pyproject.toml constraints.txt
	$(call install,sandbox)
	$(BIN)/python -c "import ecr_access, ecr_sandbox.sandbox, kubesim, kopf, boto3, moto.server, celpy, yaml, prometheus_client"
	touch $(SANDBOX_STAMP)

$(DEV_STAMP): pyproject.toml constraints.txt
	$(call install,dev)
	$(BIN)/python -c "import ecr_access, ecr_sandbox.sandbox, kubesim, awsproxy, moto.server, celpy, pytest, mypy"
	touch $(SANDBOX_STAMP) $(DEV_STAMP)

venv: $(DEV_STAMP)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

importlint: $(DEV_STAMP)
	$(BIN)/lint-imports

unit: $(DEV_STAMP)
	$(BIN)/pytest tests/unit

integration: $(DEV_STAMP)
	$(BIN)/pytest tests/integration

kubesim: $(DEV_STAMP)
	$(BIN)/pytest tests/kubesim

e2e: $(DEV_STAMP)
	$(BIN)/pytest tests/e2e

# The benchmark (not a test): bursts of N = 10, 100, 1000 grants and N=1000 trickled over 60 s, resync
# 20 s; results in bench/results/<date>.{json,png}. About 15 minutes.
bench: $(DEV_STAMP)
	$(BIN)/python -m bench.harness --scenarios burst,trickle60 --sizes 10,100,1000 --trickle-sizes 1000 \
		--resync 20 --steady-intervals 2 --drift-samples 2

# N=1000 trickled over 10 minutes at the default 300 s resync interval: about 12 minutes.
bench-trickle600: $(DEV_STAMP)
	$(BIN)/python -m bench.harness --scenarios trickle600 --trickle-sizes 1000 --resync 300 \
		--steady-intervals 0 --drift-samples 0 --out bench/results/$$(date -u +%F)-trickle600.json

# N=10,000 grants (500 repositories, 1,000 roles) against issue 17's targets: about 20 minutes (2026-12-03).
bench-large: $(DEV_STAMP)
	$(BIN)/python -m bench.large --resync 150 --steady-intervals 1

# The metrics add no calls (issue 15): one burst of 100 with the metrics port on, one with it off,
# and bench.compare says whether the operator called the same (exit 1 if not). About 3 minutes.
bench-metrics: $(DEV_STAMP)
	$(BIN)/python -m bench.harness --scenarios burst --sizes 100 --resync 10 --steady-intervals 2 --drift-samples 0 \
		--no-plot --out bench/results/$$(date -u +%F)-metrics-on.json
	$(BIN)/python -m bench.harness --scenarios burst --sizes 100 --resync 10 --steady-intervals 2 --drift-samples 0 \
		--no-plot --no-metrics --out bench/results/$$(date -u +%F)-metrics-off.json
	$(BIN)/python -m bench.compare bench/results/$$(date -u +%F)-metrics-on.json bench/results/$$(date -u +%F)-metrics-off.json

# A small run of the same harness, about 90 s: a burst and a 5 s trickle of 10 grants.
bench-quick: $(DEV_STAMP)
	$(BIN)/python -m bench.harness --scenarios burst,trickle5 --sizes 10 --trickle-sizes 10 --resync 3 \
		--steady-intervals 2 --drift-samples 1 --out $${TMPDIR:-/tmp}/ecr-access-bench-quick.json

demo: $(SANDBOX_STAMP)
	BIN=$(BIN) scripts/demo.sh

test: lint typecheck importlint
	$(BIN)/pytest

# The fast loop while editing: everything but the tests that start servers or moto.
check: lint typecheck importlint
	$(BIN)/pytest -q tests/unit

# Install into the current kubectl context: `make deploy` (deploy/base) or `make deploy OVERLAY=irsa`.
OVERLAY ?=
deploy:
	kubectl apply -k deploy/$(if $(OVERLAY),overlays/$(OVERLAY),base)

run: $(DEV_STAMP)
	$(BIN)/ecr-access-operator run

lock: $(DEV_STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^(pip|setuptools)==' > constraints.txt.new
	(echo "# The full resolved dependency tree, pinned. Regenerate with: make lock"; cat constraints.txt.new) > constraints.txt
	rm constraints.txt.new

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .sandbox
