# Quick start: `make run` (server with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test test-embedded lint format schema migrations check-migrations install install-dev clean

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
