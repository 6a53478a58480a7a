# Quick start: `make run` (server with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

# Installs come from uv.lock (hashes for every file). uv itself is bootstrapped with pip from
# requirements/uv.txt (hashed too) into .tools, so a fresh machine needs only Python and make.
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test test-embedded test-latest test-lowest faults fuzz lint typecheck format schema \
	migrations config-docs graphiql-assets install install-dev upgrade clean bench bench-soak bench-scale bench-peers

$(UV): requirements/uv.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/uv.txt
	@touch $@

# --locked: the lock must match pyproject.toml (a stale lock fails here, it is never rewritten).
$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	$(UV) sync --quiet --locked --inexact
	@touch $@

$(VENV)/.installed-dev: $(UV) uv.lock pyproject.toml
	$(UV) sync --quiet --locked --extra dev
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Refresh uv.lock to the newest versions pyproject.toml allows (and uv itself), then review.
upgrade: $(UV)
	$(UV) lock --upgrade
	echo uv | $(UV) pip compile - --quiet --generate-hashes --no-header --no-annotate \
		--output-file requirements/uv.txt

## The suite on the newest versions pyproject.toml allows (.venv-latest; uv.lock untouched).
test-latest: $(UV)
	$(UV) pip compile pyproject.toml --quiet --extra dev --upgrade --output-file $(VENV)-latest.txt
	$(MAKE) --no-print-directory _suite-in ENV=$(VENV)-latest

## The suite at the lower bounds pyproject.toml declares (.venv-lowest; uv.lock untouched).
test-lowest: $(UV)
	$(UV) pip compile pyproject.toml --quiet --extra dev --resolution lowest-direct \
		--output-file $(VENV)-lowest.txt
	$(MAKE) --no-print-directory _suite-in ENV=$(VENV)-lowest

_suite-in:
	test -x $(ENV)/bin/python || $(UV) venv --quiet $(ENV)
	VIRTUAL_ENV=$(ENV) $(UV) pip sync --quiet $(ENV).txt
	VIRTUAL_ENV=$(ENV) $(UV) pip install --quiet --no-deps -e .
	$(ENV)/bin/pytest $(PYTEST_ARGS)

## Serve GraphiQL on http://$(HOST):$(PORT)/graphql with demo data (SQLite under ./var).
## Links (checkout, downloads, e-mails) follow HOST and PORT unless PUBLIC_API_URL /
## PUBLIC_APP_URL are set: the seed's e-mails too.
run: install
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m app migrate
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m app seed
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

## The hot paths on a multi-year world (100k dossiers, millions of messages, events and
## notifications) against one a hundredth of its size, on a private PostgreSQL cluster.
## BENCH_SCALE=0.1 for a quicker, smaller run. Writes bench/RESULTS.md (its bench-scale part).
bench-scale: install-dev
	$(BIN)/python -m bench.scale

## Our API against PostGraphile 5 (Amber preset, bench/peer/: node 22 and postgraphile
## installed there by npm ci, nothing global) on the bench's world: the same documents
## (answers checked equal first), interleaved rounds, p50/p99 c=1, req/s c=16, CPU/request.
bench-peers: install-dev bench/peer/node_modules/.package-lock.json
	$(BIN)/python -m bench.peers

bench/peer/node_modules/.package-lock.json: bench/peer/package.json bench/peer/package-lock.json
	cd bench/peer && npm ci --no-audit --no-fund
	@touch $@

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m app export-schema --check
	$(BIN)/python -m app config-docs --check
	$(BIN)/lint-imports
	$(BIN)/mypy

typecheck: install-dev
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate schema.graphql from the code.
schema: install
	$(BIN)/python -m app export-schema

## Re-fetch GraphiQL's assets (pinned in scripts/vendor_graphiql.py) from the npm registry
## into app/static/graphiql/ with their sha384 in manifest.json; commit what it writes.
graphiql-assets: install
	$(BIN)/python scripts/vendor_graphiql.py

## Regenerate docs/configuration.md from app/settings.py.
config-docs: install
	$(BIN)/python -m app config-docs

## Write a migration for model changes (then review it).
migrations: install
	DATABASE_URL=sqlite://:memory: $(BIN)/tortoise makemigrations
	@echo "Review it. Tortoise 1.1 writes a no-op AlterField for each foreign key with its own"
	@echo "column name (payment_links.created_by, used_by; step_instances.assigned_to): delete"
	@echo "those (they would rebuild the table on SQLite); tests/test_schema_db.py explains."

clean:
	rm -rf $(VENV) $(VENV)-latest $(VENV)-lowest $(VENV)-*.txt $(TOOLS) var .pytest_cache .ruff_cache .mypy_cache *.egg-info
