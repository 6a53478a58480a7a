"""bench/scale_world.py: a small world (scale 0.01) is valid, deterministic and has its
handles. The big one is `make bench-scale`'s."""

from __future__ import annotations

import asyncio
import secrets
import sys

import asyncpg
import pytest

from bench import scale_world
from bench.env import with_database
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(
    not BACKEND.is_postgres, reason="the scale world is PostgreSQL's (embedded backend in use)"
)

# what must not depend on the moment of generation: ids, statuses, links between rows
FINGERPRINTS = {
    "dossiers": "id::text || status || coalesce(current_step_instance_id::text, '')",
    "documents": "id::text || status || coalesce(current_version_id::text, '')",
    "step_reminders": "id::text || status || kind",  # slot names carry the due time
    "events": "id::text || event_type",
    "notifications": "id::text || coalesce(event_id::text, '') || (read_at IS NULL)::text",
    "payment_reminders": "id::text || (sent_at IS NULL)::text || (cancelled_at IS NULL)::text",
}


async def _migrate(url: str) -> None:
    """In a process of its own: `run_migrations` re-initialises the ORM of this one."""
    code = "import asyncio, sys; from app.cli import run_migrations; "
    code += "asyncio.run(run_migrations(sys.argv[1], quiet=True))"
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, url)
    assert await process.wait() == 0


async def _world(name: str) -> tuple[dict, dict[str, str]]:
    assert BACKEND.admin_url
    admin = await asyncpg.connect(BACKEND.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(BACKEND.admin_url, name)
    await _migrate(url)
    conn = await asyncpg.connect(url)
    try:
        handles = await scale_world.generate(conn, 0.01, log=lambda _: None)
        for table, rows in handles["counts"].items():
            assert await conn.fetchval(f'SELECT count(*) FROM "{table}"') == rows, table
        prints = {
            table: await conn.fetchval(
                f"SELECT md5(string_agg({expr}, ',' ORDER BY id)) FROM {table}"
            )
            for table, expr in FINGERPRINTS.items()
        }
        waiting = await conn.fetchval(
            "SELECT count(*) FROM document_versions v JOIN documents d ON d.id = v.document_id "
            "JOIN dossiers o ON o.id = d.dossier_id WHERE v.awaiting_review_since IS NOT NULL "
            "AND d.status = 'UPLOADED' AND o.status IN "
            "('CREATED', 'IN_PROGRESS', 'UNDER_REVIEW', 'CHANGES_REQUESTED')"
        )
        assert waiting >= 200
        assert await conn.fetchval("SELECT count(*) FROM events WHERE processed_at IS NULL") == 0
        assert await conn.fetchval("SELECT count(DISTINCT event_type) FROM events") == 37
    finally:
        await conn.close()
    return handles, prints


async def test_a_small_world_is_valid_and_deterministic():
    names = [f"scale_h_test_{secrets.token_hex(4)}" for _ in range(2)]
    try:
        first, prints = await _world(names[0])
        second, again = await _world(names[1])
    finally:
        assert BACKEND.admin_url
        admin = await asyncpg.connect(BACKEND.admin_url)
        try:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    assert prints == again
    assert first["counts"] == second["counts"]
    for key in ("upload_targets", "review_targets", "orders"):
        assert len(first[key]) >= 200, key
        assert first[key] == second[key], key
    assert first["heavy_client"]["profile_id"] == first["client_id"]
    assert first["agent"]["agent_id"] is not None
