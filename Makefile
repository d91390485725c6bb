# hpexp: every entry point goes through this file. Targets set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
STUDY  ?= studies/quickstart.yaml

.PHONY: study ui services services-down test test-fast lint format bench install clean

study: $(STAMP)           ## run the quickstart study (resumes if it exists)
	$(BIN)/hpexp run $(STUDY)

ui: $(STAMP)              ## MLflow UI on http://127.0.0.1:5000
	$(BIN)/hpexp ui

services: $(STAMP)        ## PostgreSQL on 127.0.0.1:5433 + MLflow server on :5001, for many workers
	$(BIN)/hpexp services up

services-down: $(STAMP)   ## stop them; the data stays in hpexp-services/
	$(BIN)/hpexp services down

test: $(STAMP)            ## the whole suite, slow end-to-end tests included
	$(BIN)/python -m pytest -n auto

test-fast: $(STAMP)       ## skip the slow end-to-end tests
	$(BIN)/python -m pytest -m "not slow" -n auto

lint: $(STAMP)
	$(BIN)/ruff check hpexp tests benchmarks
	$(BIN)/ruff format --check hpexp tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix hpexp tests benchmarks
	$(BIN)/ruff format hpexp tests benchmarks

bench: $(BENCH_STAMP)     ## speed: core vs PyTorch/scikit-learn/GEMM floor; tracking overhead; batched repeats
	$(BIN)/python benchmarks/core.py
	$(BIN)/python benchmarks/core.py --threads trainer
	$(BIN)/python benchmarks/tracking.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/repeats.py

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
