# Every target sets up what it needs on a fresh machine: a .venv installed from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration e2e bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/workflows demo

lint: $(STAMP)
	$(BIN)/ruff check framework handlers tests examples bench infra
	$(BIN)/ruff format --check framework handlers tests examples bench infra
	$(BIN)/python -m infra.lint_template

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
