# twinweave: every target builds .venv from nothing if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/twinweave demo --output reports/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# Chromium for the browser tests (Debian's package; idempotent, needs root to install).
system-deps:
	bash scripts/install-system-deps.sh

# Tests run in TEST_WORKERS processes (CI has 2 cores), a test file to a worker so that
# its module fixtures are computed once; one BLAS thread each, since two workers with two
# OpenBLAS threads apiece fight over the cores.
TEST_WORKERS ?= 2

# The sources are byte-compiled first: where PYTHONDONTWRITEBYTECODE is set (as on this
# machine), every twinweave process the tests start would compile them again (0.2 s each).
unit: $(STAMP) system-deps
	$(BIN)/python -m compileall -q src
	OPENBLAS_NUM_THREADS=1 $(BIN)/pytest src tests -n $(TEST_WORKERS) --dist loadfile --durations=15

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) reports .pytest_cache .mypy_cache .ruff_cache
