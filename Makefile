# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Each creates or refreshes the virtualenv in .venv when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed
# The browser test drives Debian's chromium (Playwright's own browser download needs its CDN).
CHROMIUM = /usr/bin/chromium
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run demo test test-all test-random mutants mutants-alone lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The service on the embedded default (SQLite, dev chain, in-process workers), with a starter bounty
# for the digit 7 on first run. State lives in $BOUNTY_HOME (default ~/.digit-bounty).
run: $(STAMP)
	@$(BIN)/bounty list --json | grep -q '"id"' || $(BIN)/bounty create --digit 7 --payout 500 --budget 1000000
	$(BIN)/bounty serve --host 127.0.0.1 --port 8000

demo: $(STAMP)
	$(BIN)/bounty demo --json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium

test: lint $(CHROMIUM)
	$(BIN)/pytest

test-all: lint $(CHROMIUM)
	$(BIN)/pytest -m ''

# The default suite in a shuffled order (pytest-random-order: modules shuffled, and the tests within each);
# the seed is printed in the header: rerun one order with `$(BIN)/pytest --random-order-seed=N`.
test-random: lint $(CHROMIUM)
	$(BIN)/pytest --random-order

# Mutation testing of the money paths (mutmut; its selection of modules and tests is in pyproject.toml), niced:
# long (see the README's Mutation testing), never part of `make test`. `MUTANTS="marketplace.ledger*"` limits a run.
mutants: $(STAMP)
	nice -n 10 $(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/python tests/support/mutation_report.py

# the mutants `make mutants` left unrun (or MUTANTS="pattern ..."), each in a fresh pytest: see the README
mutants-alone: $(STAMP)
	nice -n 10 $(BIN)/python tests/support/mutants_alone.py $(MUTANTS)
	$(BIN)/python tests/support/mutation_report.py

bench: $(STAMP)
	$(BIN)/python bench/contract.py --images 1000
	$(BIN)/python bench/service.py
	$(BIN)/python bench/load.py --start --total 1000 --concurrency 16 --mix 300,400,300 --budget 10000000
	$(BIN)/python bench/vetting.py --honest 40 --attacks 40 --clients 8
	$(BIN)/python bench/novelty.py
	$(BIN)/python bench/crowd.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
