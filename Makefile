# Everyday commands for kpt-catalog. `make help` lists them.
#
# up/preview/destroy go through tools/pulumi-stack.sh, which checks for pulumi, kpt and kubectl,
# picks a state backend (your login, or ./.pulumi-state) and selects the stack $(STACK).

STACK ?= dev
# Extra arguments for pulumi, e.g. `make up PULUMI_ARGS=--yes`.
PULUMI_ARGS ?=
PYTHON ?= python3
# Read the catalog from here instead of the stack's catalogDir (make plan only).
CATALOG_DIR ?=

# Pulumi.yaml names this virtualenv (`virtualenv: venv`), so Pulumi runs the program in it too.
VENV := venv
VENV_STAMP := $(VENV)/.installed
PULUMI_STACK := sh tools/pulumi-stack.sh

# The wrapper reads STACK from its environment.
export STACK

.DEFAULT_GOAL := help
.PHONY: help venv up preview destroy destroy-all test lint plan plan-readme status bench e2e clean

help: ## List these targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z0-9-]*:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo "Variables: STACK=$(STACK)  PULUMI_ARGS=$(PULUMI_ARGS)  CATALOG_DIR=$(CATALOG_DIR)  PYTHON=$(PYTHON)"

venv: $(VENV_STAMP) ## Create ./venv with runtime and test dependencies

$(VENV_STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements-dev.txt
	touch $@

up: venv ## Deploy the catalog to stack STACK (asks first; PULUMI_ARGS=--yes skips that)
	$(PULUMI_STACK) up $(PULUMI_ARGS)

preview: venv ## Show what `make up` would change, as a diff
	$(PULUMI_STACK) preview --diff $(PULUMI_ARGS)

# kube-vip is protected: it is removed only when the whole cluster goes (destroy-all).
destroy: venv ## Roll the catalog back in reverse order, keeping protected packages (kube-vip)
	$(PULUMI_STACK) destroy --exclude-protected $(PULUMI_ARGS)

# If the destroy is declined, fails or is interrupted, kube-vip is protected again before it returns.
destroy-all: venv ## Unprotect and remove everything, kube-vip too: only when the whole cluster goes
	$(PULUMI_STACK) destroy-all $(PULUMI_ARGS)

test: venv ## Lint, type-check and run the tests (needs only Python, kpt and kubectl)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/pytest

lint: venv ## ruff and mypy only
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# tools/ is a package run with -m, so that its scripts can import components/ from the project root.
plan: venv ## Print the deploy and rollback order of stack STACK (CATALOG_DIR=... to read another)
	$(VENV)/bin/python -m tools.plan --stack $(STACK) $(if $(CATALOG_DIR),--catalog-dir '$(CATALOG_DIR)')

# The README's picture is of packages.yaml (read as the dev stack reads it), whatever STACK says;
# a test compares the two.
plan-readme: venv ## Regenerate the README's graph from packages.yaml
	$(VENV)/bin/python -m tools.plan --stack dev --write-readme

status: venv ## Show each package of stack STACK as deployed on the cluster
	$(VENV)/bin/python -m tools.status --stack $(STACK) $(if $(CATALOG_DIR),--catalog-dir '$(CATALOG_DIR)')

bench: venv ## Run the benchmarks
	$(VENV)/bin/python -m tools.bench

e2e: venv ## End-to-end tests against a real cluster (skipped without one)
	$(VENV)/bin/pytest -m e2e tests/e2e -rs

clean: ## Remove the venv and tool caches (never .pulumi-state: it records what is deployed)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
