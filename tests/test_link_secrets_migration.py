"""Migration 0015 hashes the secrets of the payment links made before it (issue 17; the
issue-16 gap: they were stored, and logged with SQL_ECHO, in clear): a prospect's e-mailed
link keeps working, and the row no longer holds it. And the columns the lifecycle adds to
tables that already have rows (orders, products) migrate: they have database defaults.
Run in a child process on a scratch database (migrating re-initialises the ORM, which the
suite's own connection must keep)."""

from __future__ import annotations

import hashlib
import textwrap
import uuid

import pytest

from tests.conftest import BACKEND
from tests.migration_support import postgres_scratch, run_script, sqlite_scratch

SCRIPT = textwrap.dedent(
    """
    import asyncio, hashlib, sys, uuid
    from datetime import UTC, datetime, timedelta
    from tortoise import Tortoise, connections
    from tortoise.migrations.api.migrate import migrate
    from app.db import tortoise_config

    URL, SECRET = sys.argv[1], sys.argv[2]

    async def main():
        await migrate(config=tortoise_config(URL), target="models.0013_accounts")
        await Tortoise.close_connections()
        await Tortoise.init(config=tortoise_config(URL))
        db = connections.get("default")
        postgres = db.capabilities.dialect == "postgres"
        mark = (lambda n: f"${n}") if postgres else (lambda n: "?")
        pid = str(uuid.uuid4())
        await db.execute_query(
            "INSERT INTO products (id, code, name, dossier_type, price_amount, currency, active,"
            " initial_status, created_at, updated_at) VALUES ("
            + ", ".join(mark(i) for i in range(1, 11)) + ")",
            [pid, "OLD", "Old", "OTHER", 100, "eur", True, "CREATED",
             datetime.now(UTC), datetime.now(UTC)],
        )
        await db.execute_query(
            "INSERT INTO payment_links (id, token, product_id, prospect_email, prospect_name,"
            " expires_at, created_at) VALUES (" + ", ".join(mark(i) for i in range(1, 8)) + ")",
            [str(uuid.uuid4()), SECRET, pid, "old@example.com", "Old",
             datetime.now(UTC) + timedelta(days=1), datetime.now(UTC)],
        )
        uid, now = str(uuid.uuid4()), datetime.now(UTC)
        await db.execute_query(
            "INSERT INTO profiles (id, full_name, status, locale, created_at, updated_at)"
            " VALUES (" + ", ".join(mark(i) for i in range(1, 7)) + ")",
            [uid, "Old Client", "ACTIVE", "fr", now, now],
        )
        await db.execute_query(
            "INSERT INTO orders (id, user_id, product_id, amount, currency, status, metadata,"
            " created_at, updated_at) VALUES (" + ", ".join(mark(i) for i in range(1, 10)) + ")",
            [str(uuid.uuid4()), uid, pid, 100, "eur", "PAID", "{}", now, now],
        )
        await Tortoise.close_connections()
        await migrate(config=tortoise_config(URL))
        await Tortoise.close_connections()
        await Tortoise.init(config=tortoise_config(URL))
        from app.services.payments.links import link_by_token
        _, rows = await connections.get("default").execute_query(
            "SELECT token FROM payment_links"
        )
        link = await link_by_token(SECRET)
        _, orders = await connections.get("default").execute_query(
            "SELECT payment_method, refunded_amount FROM orders"
        )
        print(rows[0][0], link.prospect_email, orders[0][0], orders[0][1])
        await Tortoise.close_connections()

    asyncio.run(main())
    """
)


def _check(url: str) -> None:
    secret = "Zx8" + uuid.uuid4().hex  # a secret of the old kind (random, url-safe)
    stored, email, method, refunded = run_script(SCRIPT, url, secret)
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert email == "old@example.com"  # the prospect's link still opens it
    # the new columns of tables that had rows: an old order was paid online, nothing back
    assert (method, refunded) == ("CHECKOUT", "0")


def test_sqlite_links_keep_working_by_their_hash():
    _check(sqlite_scratch("links-"))


@pytest.mark.skipif(not BACKEND.is_postgres, reason="PostgreSQL is not running")
async def test_postgres_links_keep_working_by_their_hash():
    async with postgres_scratch("test_links_") as url:
        _check(url)
