# Pantau's front door. `make help` lists the targets. Every target that needs the virtualenv
# depends on `setup`, so a fresh clone needs no manual step.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INFRA := PANTAU_PYTHON=$(CURDIR)/$(PY) bash deploy/local/infra.sh

.PHONY: help setup infra-up infra-down infra-wipe infra-status test test-unit lint run bench compose-env compose-up kibana-import clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

setup: $(STAMP) ## Create .venv/ and install Pantau with pinned dependencies (constraints.txt)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

infra-up: setup ## Fetch (once), start and wait for Kafka and Elasticsearch on loopback
	$(INFRA) up

infra-down: ## Stop Kafka and Elasticsearch
	$(INFRA) down

infra-wipe: setup ## Stop Kafka and Elasticsearch, delete their data and the services' local state (downloads stay)
	$(INFRA) wipe
	rm -rf out/state out/inbox

infra-status: setup ## Show whether Kafka and Elasticsearch are up and healthy
	$(INFRA) status

test: setup infra-up ## Run every test ring, the real Kafka/Elasticsearch ring included
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup ## Run only the rings that need no servers (quick feedback while coding)
	$(PY) -m pytest -m "not real" $(PYTEST_ARGS)

lint: setup ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

run: setup infra-up ## Bring everything up locally: infrastructure, topics, templates, services
	PANTAU_PYTHON=$(CURDIR)/$(PY) bash deploy/local/run.sh

bench: setup infra-up ## Run the benchmarks; table on stdout, figures in out/bench.json
	$(PY) -m tests.bench

compose-env: ## Write .env for docker compose: pinned versions plus generated passwords (once)
	bash deploy/compose/make-env.sh

compose-up: compose-env ## Run the whole system from official images (needs Docker)
	docker compose up -d --build

KIBANA_URL ?= http://127.0.0.1:5601
kibana-import: ## Import deploy/kibana/pantau.ndjson into a running Kibana (compose; KIBANA_URL, ELASTIC_PASSWORD from .env)
	@set -a; [ -f .env ] && . ./.env; set +a; \
	curl -fsS -X POST "$(KIBANA_URL)/api/saved_objects/_import?overwrite=true" -H "kbn-xsrf: pantau" \
	  -u "elastic:$${ELASTIC_PASSWORD:?set ELASTIC_PASSWORD or run make compose-env}" \
	  --form file=@deploy/kibana/pantau.ndjson | $(PYTHON) -c 'import json,sys; r=json.load(sys.stdin); \
	  print("imported", r.get("successCount"), "objects"); sys.exit(0 if r.get("success") else 1)'

clean: ## Remove the virtualenv and outputs (the download cache stays)
	rm -rf $(VENV) out .pytest_cache .ruff_cache *.egg-info
