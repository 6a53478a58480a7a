# Quick start: `make run` (server with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test test-embedded faults fuzz lint format schema migrations check-migrations install install-dev clean bench bench-soak

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Serve GraphiQL on http://$(HOST):$(PORT)/graphql with demo data (SQLite under ./var).
run: install
	$(BIN)/python -m app migrate
	$(BIN)/python -m app seed
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m app serve

## The whole suite: PostgreSQL + Redis when reachable (or REQUIRE_SERVICES=1), else embedded.
test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

## The whole suite on the embedded default (SQLite, in-memory broadcast), whatever is running.
test-embedded: install-dev
	TEST_BACKEND=embedded $(BIN)/pytest $(PYTEST_ARGS)

## The fault tests alone (crashes and restarts of PostgreSQL, Redis, the server, the worker).
faults: install-dev
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

## A longer fuzz: schemathesis on every operation (FUZZ_EXAMPLES each) and the
## authorisation property on more random worlds (AUTHZ_EXAMPLES, AUTHZ_WS_EXAMPLES).
FUZZ_EXAMPLES ?= 200
AUTHZ_EXAMPLES ?= 200
AUTHZ_WS_EXAMPLES ?= 30
fuzz: install-dev
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) AUTHZ_EXAMPLES=$(AUTHZ_EXAMPLES) \
	AUTHZ_WS_EXAMPLES=$(AUTHZ_WS_EXAMPLES) $(BIN)/pytest tests/test_fuzz.py tests/test_authorization.py $(PYTEST_ARGS)

## Benchmarks (PostgreSQL + Redis required): the API against hand-written SQL in the same
## process; prints the figures and budgets, writes bench/results.json and bench/RESULTS.md.
## A short soak by default (BENCH_SOAK_SECONDS=60); `make bench-soak` runs the 10-minute one.
bench: install-dev
	$(BIN)/python -m bench

bench-soak: install-dev
	BENCH_SOAK_SECONDS=600 $(BIN)/python -m bench

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m app export-schema --check

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate schema.graphql from the code.
schema: install
	$(BIN)/python -m app export-schema

## Write a migration for model changes (then review it).
migrations: install
	DATABASE_URL=sqlite://:memory: $(BIN)/tortoise makemigrations

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
