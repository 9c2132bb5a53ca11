# guardflow: `make run` trains on the bundled UCI Adult data, `make test` runs the whole test suite.
# Both set up .venv first when it is missing or older than pyproject.toml.

SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.guardflow-installed
export GUARDFLOW_HOME ?= $(CURDIR)/.guardflow
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PREFECT_PORT ?= 4200
# `make serve HOST=0.0.0.0` / `make ui HOST=0.0.0.0` expose a server: refused unless authentication is configured
# (PREFECT_SERVER_API_AUTH_STRING; MLFLOW_AUTH_CONFIG_PATH and MLFLOW_FLASK_SERVER_SECRET_KEY; see README).
HOST ?= 127.0.0.1
# `make serve` runs the local server; `make deploy` talks to it unless PREFECT_API_URL names another one.
SERVER_ENV := PREFECT_HOME=$(GUARDFLOW_HOME)/prefect PREFECT_SERVER_ANALYTICS_ENABLED=false
LOCAL_API := http://127.0.0.1:$(PREFECT_PORT)/api

.DEFAULT_GOAL := help
.PHONY: help setup browser postgres run drift test test-extended lint typecheck unit bench ui serve deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install guardflow with its test extras

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first time: a few minutes)"
	@test -x $(PYTHON) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	@$(PYTHON) -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@set -o pipefail; $(PYTHON) -m pip install --quiet -e '.[test]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@# a new home's Prefect database, migrated once (README: Startup and speed); without it homes migrate their own
	@$(PYTHON) -m guardflow.io.prefect_database || echo "Prefect database template not built: new homes migrate"
	@touch $(STAMP)

browser: ## Debian's Chromium for the e2e tests (skipped when /usr/bin/chromium is there)
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

postgres: ## Debian's PostgreSQL server binaries for the ledger and team-backend tests (skipped when installed)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing Debian's postgresql"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

run: setup ## train on UCI Adult through every safety stage (exit 3 if the gate rejects)
	$(VENV)/bin/guardflow train --config configs/adult.yaml

drift: setup ## check adult.test for drift against the champion's data
	$(VENV)/bin/guardflow drift --config configs/adult.yaml --batch data/adult/adult.test.gz

test: setup lint typecheck browser postgres ## lint, type-check and run the tests (two workers, one per core)
	$(PYTHON) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not extended"

test-extended: setup browser postgres ## the long multi-process checks: SIGKILL crash recovery, out-of-core training
	$(PYTHON) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m extended

lint: setup ## ruff
	$(VENV)/bin/ruff check src flows tasks tests bench

typecheck: setup ## mypy on the library, tasks and flows
	$(VENV)/bin/mypy

unit: setup ## the fast tests only (no Prefect)
	$(PYTHON) -m pytest tests/unit

bench: setup ## benchmarks: JSON figures (and a plot) under bench/results/
	$(PYTHON) bench/pipeline.py
	$(PYTHON) bench/privacy_utility.py --log-mlflow
	$(PYTHON) bench/planted_candidates.py
	$(PYTHON) bench/guard_pii.py
	$(PYTHON) bench/drift.py
	$(PYTHON) bench/drift_poisoning.py
	$(PYTHON) bench/poisoning.py
	$(PYTHON) bench/scale.py
	$(PYTHON) bench/attacks.py
	$(PYTHON) bench/crash_recovery.py

ui: setup ## MLflow UI on the embedded store, at http://127.0.0.1:5000 (HOST=... only with basic auth)
	$(VENV)/bin/guardflow ui --host $(HOST) --port 5000

serve: setup ## Prefect server on 127.0.0.1 (SQLite under $GUARDFLOW_HOME/prefect), the deployments and a worker; Ctrl-C stops both
	@mkdir -p $(GUARDFLOW_HOME)/prefect
	@export $(SERVER_ENV) PREFECT_API_URL=$(LOCAL_API); \
	if [ -n "$$PREFECT_SERVER_API_AUTH_STRING" ]; then export PREFECT_API_AUTH_STRING=$$PREFECT_SERVER_API_AUTH_STRING; fi; \
	$(VENV)/bin/guardflow serve --host $(HOST) --port $(PREFECT_PORT) & server=$$!; \
	stop() { kill $$worker $$server 2>/dev/null; for _ in $$(seq 20); do kill -0 $$worker 2>/dev/null || kill -0 $$server 2>/dev/null || break; \
		sleep 1; done; kill -9 $$worker $$server 2>/dev/null; wait; }; \
	trap stop INT TERM EXIT; \
	until $(PYTHON) -c "import urllib.request as r; r.urlopen('$$PREFECT_API_URL/health', timeout=2)" 2>/dev/null; do \
		kill -0 $$server 2>/dev/null || exit 1; sleep 1; done; \
	$(VENV)/bin/guardflow deploy --config configs/adult.yaml && \
	{ $(VENV)/bin/guardflow worker --config configs/adult.yaml & worker=$$!; \
	  echo "Prefect UI at http://127.0.0.1:$(PREFECT_PORT); drop batches into inbox/adult; Ctrl-C stops server and worker"; \
	  wait; }

deploy: setup ## register the deployments of configs/adult.yaml on the server at PREFECT_API_URL (default: make serve's)
	@export $(SERVER_ENV) PREFECT_API_URL=$${PREFECT_API_URL:-$(LOCAL_API)}; $(VENV)/bin/guardflow deploy --config configs/adult.yaml

clean: ## remove the embedded stores (runs, MLflow, lineage, Prefect home)
	rm -rf $(GUARDFLOW_HOME)
