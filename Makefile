# Two commands set up a fresh machine: `make demo` and `make test`. Both create .venv and
# install nbo with its dev extras first, so nothing needs installing by hand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nbo-installed

.PHONY: install demo test test-fast lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	@touch $(STAMP)

install: $(STAMP)

demo: install  ## the main job on the embedded default (Complete Journey)
	$(BIN)/nbo demo

test: install  ## the whole suite, slow real-data tests included
	$(BIN)/pytest

test-fast: install  ## everything but the slow real-data tests
	$(BIN)/pytest -m "not slow"

lint: install  ## ruff, mypy --strict and the import contracts (layers, [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install  ## speed/memory benchmarks; results go into BENCHMARKS.md by hand
	$(BIN)/python benchmarks/synth.py

clean:
	rm -rf $(VENV) data mlruns mlflow.db .pytest_cache .mypy_cache .ruff_cache .hypothesis
