# guardflow: `make run` trains on the bundled UCI Adult data, `make test` runs the whole test suite.
# Both set up .venv first when it is missing or older than pyproject.toml.

SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.guardflow-installed
export GUARDFLOW_HOME ?= $(CURDIR)/.guardflow
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help setup browser run drift test lint typecheck unit bench ui clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install guardflow with its test extras

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first time: a few minutes)"
	@test -x $(PYTHON) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	@$(PYTHON) -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@set -o pipefail; $(PYTHON) -m pip install --quiet -e '.[test]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $(STAMP)

browser: ## Debian's Chromium for the e2e tests (skipped when /usr/bin/chromium is there)
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup ## train on UCI Adult through every safety stage (exit 3 if the gate rejects)
	$(VENV)/bin/guardflow train --config configs/adult.yaml

drift: setup ## check adult.test for drift against the champion's data
	$(VENV)/bin/guardflow drift --config configs/adult.yaml --batch data/adult/adult.test.gz

test: setup lint typecheck browser ## lint, type-check and run the tests
	$(PYTHON) -m pytest

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
	$(PYTHON) bench/poisoning.py

ui: setup ## MLflow UI on the embedded store, at http://127.0.0.1:5000
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(GUARDFLOW_HOME)/mlflow/mlflow.db \
		--default-artifact-root $(GUARDFLOW_HOME)/mlflow/artifacts --host 127.0.0.1 --port 5000

clean: ## remove the embedded stores (runs, MLflow, lineage, Prefect home)
	rm -rf $(GUARDFLOW_HOME)
