# Shortcuts for ./kpt-catalog, and the developer's targets (test, lint, e2e, bench, world, demo).
# `make help` lists them; `./kpt-catalog --help` lists the commands and their exit codes.

STACK ?= dev
# Extra arguments for pulumi, e.g. `make up PULUMI_ARGS=--yes`.
PULUMI_ARGS ?=
# The package `make reapply` re-applies; make status / make diff: one package only.
PACKAGE ?=
PYTHON ?= python3
# Read the catalog from here instead of the stack's catalogDir (make plan only).
CATALOG_DIR ?=
# make status / make diff: the bound on the whole run, packages checked at once.
TIMEOUT ?= 5m
JOBS ?= 8
# make preview: DRIFT=1 shows the objects of every package, not only of those the preview changes.
DRIFT ?=
# make e2e: a context of your KUBECONFIG to run the end-to-end tests on instead of a local control plane.
E2E_CONTEXT ?=

# Pulumi.yaml names this virtualenv (`virtualenv: venv`), so Pulumi runs the program in it too.
# ./kpt-catalog installs requirements.txt into it on first use; `make test` adds the test tools.
VENV := venv
DEV_STAMP := $(VENV)/.dev-installed
KPT_CATALOG := ./kpt-catalog

# The recipes read STACK, PACKAGE, CATALOG_DIR, ... from their environment ("$$STACK"): a value
# is never pasted into a shell line, where a quote, `;` or `$$(...)` in it would change the command.
export STACK
export PACKAGE
export CATALOG_DIR TIMEOUT JOBS E2E_CONTEXT

.DEFAULT_GOAL := help
.PHONY: help venv up preview reapply destroy destroy-all test test-floor lint plan plan-picture status diff bench world e2e demo demo-down clean

help: ## List these targets (the command itself: ./kpt-catalog --help)
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z0-9-]*:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo "Variables: STACK=$$STACK  PULUMI_ARGS=$(PULUMI_ARGS)  CATALOG_DIR=$$CATALOG_DIR  PYTHON=$(PYTHON)  PACKAGE=$$PACKAGE  TIMEOUT=$$TIMEOUT  JOBS=$$JOBS  DRIFT=$(DRIFT)"
	@echo "Every target but test, lint, bench, world, e2e and demo calls ./kpt-catalog; call it directly for its exit codes (make turns every failure into 2)."

venv: $(DEV_STAMP) ## Create ./venv with the runtime and the test tools

$(DEV_STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

up: ## Deploy the catalog to stack STACK (asks first; PULUMI_ARGS=--yes skips that)
	$(KPT_CATALOG) up --stack "$$STACK" $(PULUMI_ARGS)

preview: ## Show what `make up` would change: Pulumi's diff, then each changing package's objects (DRIFT=1: all)
	$(KPT_CATALOG) preview --stack "$$STACK" $(if $(DRIFT),--drift) $(PULUMI_ARGS)

reapply: ## Re-apply one package to correct its drift: make reapply PACKAGE=headscale
	$(KPT_CATALOG) reapply --stack "$$STACK" --package "$$PACKAGE" $(PULUMI_ARGS)

# kube-vip is protected: it is removed only when the whole cluster goes (destroy-all).
destroy: ## Roll the catalog back in reverse order, keeping protected packages (kube-vip)
	$(KPT_CATALOG) destroy --stack "$$STACK" $(PULUMI_ARGS)

destroy-all: ## Unprotect and remove everything, kube-vip too: only when the whole cluster goes
	$(KPT_CATALOG) destroy-all --stack "$$STACK" $(PULUMI_ARGS)

test: venv ## Lint, type-check and run the tests (needs only Python, kpt and kubectl)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/pytest

# The lowest versions requirements.txt admits, in a virtualenv of their own (CI runs it too).
test-floor: ## Run the tests on the lowest versions requirements.txt admits (./venv-floor)
	$(PYTHON) tools/floor.py requirements.txt >venv-floor.constraints
	$(PYTHON) -m venv venv-floor
	venv-floor/bin/pip install -q -r requirements-dev.txt -c venv-floor.constraints
	venv-floor/bin/pip list 2>/dev/null | grep -i -E '^(pulumi|pulumi.command|pulumi.kubernetes|pyyaml) '
	venv-floor/bin/pytest -q

lint: venv ## ruff and mypy only
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

plan: ## Print the deploy and rollback order of stack STACK (CATALOG_DIR=... to read another)
	$(KPT_CATALOG) plan --stack "$$STACK" $(if $(CATALOG_DIR),--catalog-dir "$$CATALOG_DIR")

# The picture in docs/architecture.md is of packages.yaml (read as the dev stack reads it),
# whatever STACK says; a test compares the two.
plan-picture: ## Regenerate the graph picture in docs/architecture.md from packages.yaml
	$(KPT_CATALOG) plan --stack dev --write-picture

status: ## Check each package's health on the cluster, or PACKAGE's (./kpt-catalog status gives the exit codes)
	$(KPT_CATALOG) status --stack "$$STACK" --timeout "$$TIMEOUT" --jobs "$$JOBS" $(if $(CATALOG_DIR),--catalog-dir "$$CATALOG_DIR") $(if $(PACKAGE),--package "$$PACKAGE")

diff: ## Each package's objects against the cluster: changes, creates, prunes (./kpt-catalog diff gives the exit codes)
	$(KPT_CATALOG) diff --stack "$$STACK" --timeout "$$TIMEOUT" --jobs "$$JOBS" $(if $(CATALOG_DIR),--catalog-dir "$$CATALOG_DIR") $(if $(PACKAGE),--package "$$PACKAGE")

bench: venv ## Run the benchmarks (the program and make diff, then the fleet rollout engine)
	$(VENV)/bin/python -m tools.bench
	$(VENV)/bin/python -m tools.bench_fleet

# The world: etcd, the Kubernetes control plane, the pulumi CLI and both providers, built from
# their Go modules into ~/.cache/kpt-catalog/world (once; later runs find them there).
world: ## Build (or find) the local test world: a Kubernetes control plane, the pulumi CLI and its providers
	bash world/build.sh

# Without E2E_CONTEXT: every user journey on a local control plane of its own. With it: the older
# end-to-end run against your own throwaway cluster (KUBECONFIG, that context).
e2e: venv ## User journeys through the real pulumi CLI on a local control plane (E2E_CONTEXT=<context>: on your cluster)
	@if [ -n "$$E2E_CONTEXT" ]; then \
		KPT_CATALOG_E2E_CONTEXT="$$E2E_CONTEXT" $(VENV)/bin/pytest -m "e2e and cluster" tests/e2e -rs; \
	else \
		bash world/build.sh >/dev/null && \
		$(VENV)/bin/pytest -m "e2e and not cluster" tests/e2e -rs; \
	fi

demo: ## Deploy the example catalog onto a local control plane with the real engine; it keeps running until make demo-down
	$(KPT_CATALOG) --help >/dev/null
	$(VENV)/bin/python -m world demo-up

demo-down: ## Roll the demo back (kube-vip too) and stop its control plane
	$(KPT_CATALOG) --help >/dev/null
	$(VENV)/bin/python -m world demo-down

clean: ## Remove the venv and tool caches (never .pulumi-state: it records what is deployed)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
