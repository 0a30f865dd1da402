# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mlrig-installed
PYTEST_ARGS ?=

.PHONY: install run test test-fast check bench demo-loop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install  ## train, track, register and gate a model on the embedded red-wine data
	$(BIN)/mlrig run

test: install  ## the whole suite: unit, integration and e2e (real MLflow, Prefect, uvicorn, PostgreSQL)
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: install  ## unit tests only
	$(BIN)/pytest tests/unit -q

check: install  ## lint, types, import layering
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports

bench: install  ## benchmarks (never run alongside tests or another benchmark)
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/tuning.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/monitoring.py
	$(BIN)/python bench/loop.py
	$(BIN)/python bench/team.py

demo-loop: install  ## the closed loop end to end: drift → scheduled retrain → fair gate → hot swap
	$(BIN)/python examples/demo_loop.py

clean:
	rm -rf $(VENV) .mlrig
