# Everyday commands for kpt-catalog. `make help` lists them.
#
# up/preview/destroy go through tools/pulumi-stack.sh, which checks for pulumi, kpt and kubectl,
# picks a state backend (your login, or ./.pulumi-state) and selects the stack $(STACK).

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
VENV := venv
VENV_STAMP := $(VENV)/.installed
PULUMI_STACK := sh tools/pulumi-stack.sh

# The wrapper reads STACK from its environment, and so does every recipe ("$$STACK",
# "$$PACKAGE", "$$CATALOG_DIR", ...): a value is never pasted into a shell line, where a quote,
# `;` or `$$(...)` in it would change the command.
export STACK
export PACKAGE
export CATALOG_DIR TIMEOUT JOBS E2E_CONTEXT

.DEFAULT_GOAL := help
.PHONY: help venv up preview reapply destroy destroy-all test test-floor lint plan plan-readme status diff bench world e2e demo demo-down clean

help: ## List these targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z0-9-]*:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo "Variables: STACK=$$STACK  PULUMI_ARGS=$(PULUMI_ARGS)  CATALOG_DIR=$$CATALOG_DIR  PYTHON=$(PYTHON)  PACKAGE=$$PACKAGE  TIMEOUT=$$TIMEOUT  JOBS=$$JOBS  DRIFT=$(DRIFT)"

venv: $(VENV_STAMP) ## Create ./venv with runtime and test dependencies

$(VENV_STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements-dev.txt
	touch $@

up: venv ## Deploy the catalog to stack STACK (asks first; PULUMI_ARGS=--yes skips that)
	$(PULUMI_STACK) up $(PULUMI_ARGS)

# The second preview only tells which packages change; their objects are then diffed against the
# cluster. Its JSON goes to a temporary file, so that a failed preview fails make preview (with
# the errors the JSON holds) instead of being hidden behind the diff's status.
preview: venv ## Show what `make up` would change: Pulumi's diff, then each changing package's objects (DRIFT=1: all)
	$(PULUMI_STACK) preview --diff $(PULUMI_ARGS)
	json="$$(mktemp)" && trap 'rm -f "$$json"' EXIT && \
	if ! $(PULUMI_STACK) preview --json $(PULUMI_ARGS) >"$$json"; then \
		$(VENV)/bin/python -m tools.diff --preview-errors "$$json"; \
		echo 'make preview: pulumi preview failed' >&2; exit 2; \
	fi && \
	$(VENV)/bin/python -m tools.diff --stack "$$STACK" --after-preview "$$json" $(if $(DRIFT),--drift)

# A new token in kpt-catalog:reapply.<package> (a UTC timestamp) is an update of that package's
# apply and gates only; `pulumi up` previews it and asks. The token stays: the next up is a no-op.
# PACKAGE must be a DNS label (every package name is): it becomes part of a config path. It must
# also be a package of the stack's graph, checked before the token is saved: a token for an
# unknown package would make every later preview fail.
reapply: venv ## Re-apply one package to correct its drift: make reapply PACKAGE=headscale
	@case "$$PACKAGE" in \
	'' | *[!a-z0-9-]* | -* | *-) \
		echo "usage: make reapply PACKAGE=<package name> [STACK=$$STACK] [PULUMI_ARGS=...]" >&2; \
		exit 2 ;; \
	esac
	$(VENV)/bin/python -m tools.stackfile --stack "$$STACK" --check-package "$$PACKAGE"
	$(PULUMI_STACK) config set --path "kpt-catalog:reapply.$$PACKAGE" "$$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	$(PULUMI_STACK) up $(PULUMI_ARGS)

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

# tools/ is a package run with -m, so that its scripts can import components/ from the project root.
plan: venv ## Print the deploy and rollback order of stack STACK (CATALOG_DIR=... to read another)
	$(VENV)/bin/python -m tools.plan --stack "$$STACK" $(if $(CATALOG_DIR),--catalog-dir "$$CATALOG_DIR")

# The README's picture is of packages.yaml (read as the dev stack reads it), whatever STACK says;
# a test compares the two.
plan-readme: venv ## Regenerate the README's graph from packages.yaml
	$(VENV)/bin/python -m tools.plan --stack dev --write-readme

status: venv ## Check each package's health on the cluster, or PACKAGE's (make exits 2 on any failure; for the codes 0 healthy, 1 unhealthy, 2 config, 3 unreachable run venv/bin/python -m tools.status --stack STACK)
	$(VENV)/bin/python -m tools.status --stack "$$STACK" --timeout "$$TIMEOUT" --jobs "$$JOBS" $(if $(CATALOG_DIR),--catalog-dir "$$CATALOG_DIR") $(if $(PACKAGE),--package "$$PACKAGE")

diff: venv ## Each package's objects against the cluster: changes, creates, prunes (make exits 2 on any difference or error; for the codes 0 in sync, 1 differ, 2 error run venv/bin/python -m tools.diff --stack STACK)
	$(VENV)/bin/python -m tools.diff --stack "$$STACK" --timeout "$$TIMEOUT" --jobs "$$JOBS" $(if $(CATALOG_DIR),--catalog-dir "$$CATALOG_DIR") $(if $(PACKAGE),--package "$$PACKAGE")

bench: venv ## Run the benchmarks
	$(VENV)/bin/python -m tools.bench

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

demo: venv ## Deploy the example catalog onto a local control plane with the real engine; it keeps running until make demo-down
	$(VENV)/bin/python -m world demo-up

demo-down: venv ## Roll the demo back (kube-vip too) and stop its control plane
	$(VENV)/bin/python -m world demo-down

clean: ## Remove the venv and tool caches (never .pulumi-state: it records what is deployed)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
