# One command surface: what CI runs (.ci/run -> make check) is what a person runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help setup test check fmt lint typecheck bench run demo bundle deploy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Re-sync only when the lock or the project definition changed: fast when nothing did.
$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(STAMP) ## Create .venv with the locked dependencies

test: $(STAMP) ## Run the test suite (the README's test command)
	$(PY) -m pytest

lint: $(STAMP) ## Format check and ruff (includes the security rules S and B)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(STAMP) ## mypy --strict on the library
	$(VENV)/bin/mypy

check: lint typecheck test ## The CI gate: format check, ruff, mypy, tests

fmt: $(STAMP) ## Format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) ## Run every benchmark and print one table
	$(PY) -m benchmarks

run: $(STAMP) ## Start the local stack (sandbox + functions); Ctrl-C stops it
	$(PY) -m instantly_guard.cli localstack

demo: $(STAMP) ## Scripted walkthrough against the local stack
	$(PY) -m instantly_guard.cli demo

clean: ## Remove the virtual environments, build output and local state
	rm -rf $(VENV) $(TOOLS) dist .guard .pytest_cache .mypy_cache .ruff_cache
