# Customer intelligence: every target runs inside .venv, which the first target that needs it creates.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= data/sample
SAMPLE_CUSTOMERS ?= 5000
SAMPLE_SEED ?= 42
PORT ?= 3000
PROFILES ?= data/profiles.sqlite

.DEFAULT_GOAL := help
.PHONY: help install data validate train score serve test test-fast ui lint bench soak

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## create .venv and install the project into it

data: install ## generate the sample data set into data/sample when it is absent
	@test -d $(DATA) || $(PY) -m pipelines.generate --customers $(SAMPLE_CUSTOMERS) --seed $(SAMPLE_SEED) --out $(DATA)

validate: data ## validate the sample data (report under data/sample/_validation)
	$(PY) -m pipelines.validate --data $(DATA)

train: validate ## install, generate sample data, validate, train and register every model, fill the profile store
	$(PY) -m pipelines.train --data $(DATA) --profiles $(PROFILES)

serve: install ## serve the scoring API on http://127.0.0.1:3000 (make serve PORT=N for another port; after make train)
	$(VENV)/bin/bentoml serve service.service:CustomerIntelligence --host 127.0.0.1 --port $(PORT)

score: install ## score every sample customer with the champion models into data/sample_scores.parquet
	$(PY) -m pipelines.score --data $(DATA) --out data/sample_scores.parquet

ui: install ## open the MLflow UI on the local store (http://127.0.0.1:5000)
	$(PY) -m mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port 5000

test: install ## run the whole test suite
	$(PY) -m pytest

test-fast: install ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow"

bench: install ## the scoring service load test (about a minute; the other benchmarks: docs/BENCHMARKS.md)
	$(PY) -m bench.load_test

soak: install ## ten minutes of a realistic request mix at 200 req/s, against the targets (JSON, plot: data/bench)
	$(PY) -m bench.soak --json data/bench/soak.json

lint: install ## ruff over the code, and the layer contract (import-linter; see [tool.importlinter] in pyproject.toml)
	$(PY) -m ruff check features models pipelines service tests bench
	$(VENV)/bin/lint-imports
