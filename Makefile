# Every target sets up what it needs on a fresh machine: a .venv installed from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# aws-sam-cli pins its own boto3, so it lives in a venv of its own and never enters our dependencies.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
export SAM_CLI_TELEMETRY := 0
# dynalite, a second DynamoDB implementation (Node, from the npm registry): the tests run the store
# contract and the duplicate-delivery test on it beside moto. Pinned by its package-lock.json.
DYNALITE := infra/dynalite
DYNALITE_STAMP := $(DYNALITE)/node_modules/.installed
# What `sam build` puts beside framework/ and handlers/: the packages that hold your workflows.
WORKFLOW_PACKAGES ?= examples

.PHONY: demo dev test lint validate typecheck browser bench bench-peers build deploy clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

$(DYNALITE_STAMP): $(DYNALITE)/package.json $(DYNALITE)/package-lock.json
	cd $(DYNALITE) && npm ci --no-audit --no-fund --loglevel=error
	touch $(DYNALITE_STAMP)

# The dashboard's browser test (tests/e2e/test_dashboard.py) drives Debian's chromium through Playwright
# (the dev extra), never a browser that Playwright downloads. Installed as root, once: when chromium is
# on the PATH this does nothing.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

$(SAM):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	$(SAM_VENV)/bin/uv pip install -q --python $(SAM_VENV)/bin/python aws-sam-cli==$(SAM_CLI_VERSION)

demo: $(STAMP)
	$(BIN)/workflows demo

dev: $(STAMP)
	$(BIN)/workflows dev

lint: $(STAMP)
	$(BIN)/ruff check framework handlers tests examples bench infra
	$(BIN)/ruff format --check framework handlers tests examples bench infra
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m infra.lint_template
	$(MAKE) --no-print-directory validate

validate: $(SAM)
	$(SAM) validate --lint --region us-east-1

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck $(STAMP) $(DYNALITE_STAMP) browser
	$(BIN)/python -m pytest

# matplotlib draws the plots of docs/performance.md: an extra of its own, so that `make test` goes without.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

# The peers (DBOS, the AWS durable functions test runner) live in a venv of their own, pinned to versions
# verified with bench/peers.py, so that they never enter our dependencies. uv skips what is installed.
bench-peers:
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	test -x .venv-peers/bin/uv || .venv-peers/bin/python -m pip install -q --disable-pip-version-check uv
	.venv-peers/bin/uv pip install -q --python .venv-peers/bin/python -e '.[local]' dbos==3.4.0 \
		aws-durable-execution-sdk-python-testing==1.4.0 aws-durable-execution-sdk-python==3.0.0
	.venv-peers/bin/python -m bench.peers

# `sam build` (Metadata: BuildMethod: makefile) calls build-<LogicalId> for each function: one clean
# artifact with our package, its dependencies for Lambda's arm64 Python 3.12, and the workflow packages.
build: $(SAM) $(STAMP)
	$(SAM) build --config-file infra/samconfig.toml

# No prerequisite: `sam build --parallel` runs these at once, and `make build` has set up .venv already.
build-%Function:
	$(BIN)/uv pip install -q --target "$(ARTIFACTS_DIR)" --python-platform aarch64-manylinux2014 \
		--python-version 3.12 .
	for pkg in $(subst $(COMMA), ,$(WORKFLOW_PACKAGES)); do cp -R "$$pkg" "$(ARTIFACTS_DIR)/"; done
	rm -rf "$(ARTIFACTS_DIR)"/bin "$(ARTIFACTS_DIR)"/*.dist-info/RECORD

deploy: build
	$(SAM) deploy --guided --config-file infra/samconfig.toml

COMMA := ,

clean:
	rm -rf $(VENV) $(SAM_VENV) .venv-docs .venv-peers $(DYNALITE)/node_modules .aws-sam .mypy_cache .ruff_cache .import_linter_cache .pytest_cache .hypothesis
