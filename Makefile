# Two commands for a newcomer:  `make demo` (the main job)  and  `make test` (the whole suite).
# Each creates its own virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,parquet]'
	touch $(STAMP)

$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $(VENV)/.bench

demo: $(STAMP)
	$(PY) -m tvadapter demo

lint: $(STAMP)
	$(PY) -m ruff check resilience tvadapter tests benchmarks
	$(PY) -m ruff format --check resilience tvadapter tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest

bench: $(VENV)/.bench
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis
