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
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(TOOLS)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# fmt needs no CLI configuration: an empty one, so that a TF_CLI_CONFIG_FILE naming a missing file
# (a warning on every command) or a user's provider mirrors cannot change what it does; no
# checkpoint (version check) call either, since nothing here may reach the network.
TERRAFORM_ENV := TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1

.PHONY: help setup test check fmt lint typecheck bench run demo bundle wheel deploy checkov scopes clean

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

lint: $(STAMP) ## Format check, ruff (security rules S and B), import contracts, terraform fmt -check
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	@if command -v terraform >/dev/null 2>&1; then \
		echo "terraform -chdir=terraform fmt -check -recursive"; \
		$(TERRAFORM_ENV) terraform -chdir=terraform fmt -check -recursive; \
	else \
		echo "terraform is not on the PATH: skipping terraform fmt -check"; \
	fi

typecheck: $(STAMP) ## mypy --strict on the library
	$(VENV)/bin/mypy

check: lint typecheck checkov test ## The CI gate: format check, ruff, mypy, checkov, tests

# checkov pins its own dependency tree: it lives in its own venv so it never fights uv.lock.
$(CHECKOV_STAMP): $(UV)
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv --without-pip $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python "checkov==$(CHECKOV_VERSION)"
	@touch $@

checkov: $(CHECKOV_STAMP) ## Policy scan of terraform/, offline; fails on any failed check
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --skip-download --framework terraform \
		--directory terraform --compact --quiet

bundle: $(STAMP) ## Build dist/<function>.zip, reproducibly, and print their sha256
	$(PY) scripts/bundle.py

wheel: $(UV) ## Build dist/instantly_guard-<version>-py3-none-any.whl (README, Install)
	$(UV) build --wheel --out-dir dist .

deploy: bundle ## make bundle, then terraform apply (run terraform init in terraform/ first)
	terraform -chdir=terraform apply

fmt: $(STAMP) ## Format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

scopes: $(STAMP) ## Regenerate the scope table and the vocabulary from the OpenAPI document
	$(PY) scripts/gen_scopes.py
	$(PY) scripts/gen_vocabulary.py

bench: $(STAMP) ## Run every benchmark and print one table
	$(PY) -m benchmarks

run: $(STAMP) ## Start the local stack (sandbox + functions); Ctrl-C stops it
	$(PY) -m instantly_guard.cli localstack $(ARGS)

demo: $(STAMP) ## Scripted walkthrough against the local stack
	$(PY) -m instantly_guard.cli demo $(ARGS)

clean: ## Remove the virtual environments, build output and local state
	rm -rf $(VENV) $(TOOLS) dist .guard .pytest_cache .mypy_cache .ruff_cache
