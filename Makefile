# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Each creates or refreshes the virtualenv in .venv when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

.PHONY: run test test-all lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/bounty model eval
	$(BIN)/bounty contract bench --images 100

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

test-all: lint
	$(BIN)/pytest -m ''

bench: $(STAMP)
	$(BIN)/python bench/contract.py --images 1000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
