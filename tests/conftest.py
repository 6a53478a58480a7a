"""The test bed.

Backend: PostgreSQL + Redis when reachable (required with REQUIRE_SERVICES=1), otherwise
the embedded default (SQLite file, in-memory broadcast); TEST_BACKEND=embedded forces the
latter. One database per run, built from the migration files; every table is emptied
after each test.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

os.environ["ENV"] = "test"
os.environ.setdefault("SECRET_KEY", "test-secret-" + "x" * 40)
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Cheap password hashing for the suite (production keeps argon2id's recommended cost).
os.environ.setdefault("PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("PASSWORD_HASH_MEMORY_KIB", "8192")
# Rate limits are tested with apps of their own; the shared one must never throttle the suite.
os.environ.setdefault("RATE_LIMIT_POINTS", "10000000")


@dataclass(frozen=True)
class Backend:
    name: str  # "postgres" or "embedded"
    admin_url: str | None = None  # PostgreSQL server, to create/drop the run's database
    redis_url: str = ""

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def _choose_backend() -> Backend:
    pg = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if os.environ.get("TEST_BACKEND") == "embedded":
        return Backend("embedded")
    required = (
        os.environ.get("REQUIRE_SERVICES") == "1" or os.environ.get("TEST_BACKEND") == "services"
    )
    if _reachable(pg, 5432) and _reachable(redis, 6379):
        return Backend("postgres", admin_url=pg, redis_url=redis)
    if required:
        pytest.exit(
            f"PostgreSQL ({pg}) and Redis ({redis}) are required but not reachable", returncode=3
        )
    return Backend("embedded")


BACKEND = _choose_backend()
if BACKEND.redis_url:
    os.environ["REDIS_URL"] = BACKEND.redis_url
else:
    os.environ.pop("REDIS_URL", None)


# FAST_PATHS=false: the schema on strawberry's and graphql-core's own execution (CI runs
# the whole suite that way too); the tests that measure a shortcut itself are skipped.
FAST_PATHS = os.environ.get("FAST_PATHS", "true").strip().lower() not in ("0", "false", "no")


def pytest_report_header() -> str:
    paths = "" if FAST_PATHS else ", FAST_PATHS=false"
    if BACKEND.is_postgres:
        return f"backend: PostgreSQL + Redis ({BACKEND.admin_url}, {BACKEND.redis_url}){paths}"
    return f"backend: embedded default (SQLite file, in-memory broadcast){paths}"


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_line(pytest_report_header())


def pytest_collection_modifyitems(items) -> None:
    skip_postgres = pytest.mark.skip(reason="needs PostgreSQL (embedded backend in use)")
    skip_shortcut = pytest.mark.skip(reason="measures a shortcut that FAST_PATHS=false turns off")
    for item in items:
        if "postgres" in item.keywords and not BACKEND.is_postgres:
            item.add_marker(skip_postgres)
        if "fast_paths" in item.keywords and not FAST_PATHS:
            item.add_marker(skip_shortcut)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def backend() -> Backend:
    return BACKEND


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """Create the run's database, migrate it from the migration files, init the ORM."""
    from app.cli import run_migrations
    from app.db import close_db, init_db
    from app.settings import get_settings

    if BACKEND.is_postgres:
        import asyncpg

        name = f"test_dossier_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(BACKEND.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = _with_database(BACKEND.admin_url, name)  # type: ignore[arg-type]
    else:
        tmp = tempfile.mkdtemp(prefix="dossier-test-")
        url = f"sqlite://{Path(tmp) / 'test.sqlite3'}"
        name = ""
    os.environ["DATABASE_URL"] = url
    os.environ["STORAGE_URL"] = f"file://{tempfile.mkdtemp(prefix='dossier-files-')}"
    get_settings.cache_clear()
    await run_migrations(url, quiet=True)
    await init_db(url)
    try:
        yield url
    finally:
        await close_db()
        if BACKEND.is_postgres:
            import asyncpg

            admin = await asyncpg.connect(BACKEND.admin_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


def _deletion_order() -> list[str]:
    """Tables, each after every table that references it (children first)."""
    from tortoise import Tortoise

    models = list(Tortoise.apps["models"].values())
    parents = {
        m._meta.db_table: {
            m._meta.fields_map[f].related_model._meta.db_table
            for f in (*m._meta.fk_fields, *m._meta.o2o_fields)
        }
        - {m._meta.db_table}
        for m in models
    }
    order: list[str] = []
    remaining = dict(parents)
    while remaining:
        # a table can go once no remaining table references it
        ready = sorted(t for t in remaining if not any(t in p for p in remaining.values()))
        assert ready, f"foreign-key cycle among {sorted(remaining)}"
        order += ready
        for table in ready:
            del remaining[table]
    return order


async def _empty_tables() -> None:
    """DELETE, children first, in one transaction: far cheaper than TRUNCATE on tiny tables
    (the two cyclic foreign keys are deferrable, so their order does not matter)."""
    from tortoise.connection import get_connection

    script = "".join(f'DELETE FROM "{t}";' for t in _deletion_order())
    if not BACKEND.is_postgres:  # the embedded search index (an FTS5 table, no model)
        script += 'DELETE FROM "profile_search";'
    await get_connection("default").execute_script(f"BEGIN;{script}COMMIT;")


@pytest.fixture(autouse=True)
async def clean_database(database_url: str) -> AsyncIterator[None]:
    yield
    await _empty_tables()
    await _forget_throttles()


async def _forget_throttles() -> None:
    """Every test starts with no authentication failures counted (the suite's requests all
    come from one address), the clock where it is, the catalogue's bounds unread and no
    access event waiting to be written."""
    from app import clock
    from app.services.access_audit import audit
    from app.services.catalogue_bounds import forget_catalogue_bounds
    from app.services.throttle import get_throttle

    clock.reset()
    audit.clear()  # access events a test left unwritten are not the next test's
    forget_catalogue_bounds()  # the next test's catalogue is its own
    await get_throttle().forget_all()


@pytest.fixture(scope="session")
def app(database_url: str):
    from app.main import create_app
    from app.settings import get_settings

    return create_app(get_settings(), manage_db=False)


@pytest.fixture
async def client(app) -> AsyncIterator:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class LiveServer:
    host: str
    port: int

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/graphql"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def live_server(app) -> AsyncIterator[LiveServer]:
    """A real uvicorn on a free loopback port, in this event loop."""
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield LiveServer("127.0.0.1", port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


# --- Stripe peers (see tests/stripe_support.py) ------------------------------------------


@pytest.fixture(scope="session")
def localstripe():
    from tests import stripe_support as ss

    server = ss.LocalStripe()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def stand_in(localstripe):
    from tests import stripe_support as ss

    state = ss.StandInState()
    port = ss.free_port()
    server, task = await ss.serve(ss.build_stand_in(state, localstripe.url), port)
    state.url = f"http://127.0.0.1:{port}"
    yield state
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def peer(stand_in):
    """The Stripe stand-in, emptied for this test."""
    stand_in.clear()
    return stand_in


def stripe_settings(stand_in, **extra):
    from app.settings import get_settings
    from tests import stripe_support as ss

    return get_settings().model_copy(
        update={
            "stripe_secret_key": "sk_test_" + "k" * 24,
            "stripe_webhook_secret": ss.WEBHOOK_SECRET,
            "stripe_api_base": stand_in.url,
            **extra,
        }
    )


@pytest.fixture(scope="session")
def stripe_app(database_url, stand_in):
    from app.main import create_app

    return create_app(stripe_settings(stand_in), manage_db=False)


@pytest.fixture
async def sclient(stripe_app, peer) -> AsyncIterator:
    import httpx

    transport = httpx.ASGITransport(app=stripe_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="module")
def smtp_server():
    """A real SMTP server (aiosmtpd) for a module's e-mails; a module may define its own."""
    from tests.notifications_support import SmtpPeer

    peer = SmtpPeer().start()
    yield peer
    peer.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.reset()
    return smtp_server
