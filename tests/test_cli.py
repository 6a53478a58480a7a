"""`python -m app …` in real subprocesses, each test on a fresh database of its own (a
temporary SQLite file on the embedded backend, a database created and dropped on the
PostgreSQL server otherwise), never the run's database."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT = 90  # seconds, per command: a fresh migrate costs ~9 s of CPU in
# Tortoise's migration state (cloned per operation), more on a loaded machine

COUNTED_TABLES = (
    "agents",
    "credentials",
    "profiles",
    "products",
    "steps",
    "product_steps",
    "document_types",
    "orders",
    "dossiers",
    "step_instances",
    "events",
)


@pytest.fixture
async def fresh_database_url(backend, tmp_path: Path) -> AsyncIterator[str]:
    if not backend.is_postgres:
        yield f"sqlite://{tmp_path / 'cli.sqlite3'}"
        return
    import asyncpg

    name = f"test_cli_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(backend.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(backend.admin_url)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(backend.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def run_app(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """`python -m app <args>` with this interpreter, from the repository root."""
    env = {
        **os.environ,
        "ENV": "test",
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "DATABASE_URL": database_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SUBPROCESS_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return subprocess.CompletedProcess(
        ["python", "-m", "app", *args], proc.returncode, out.decode(), err.decode()
    )


def create_admin(email: str, password: str) -> tuple[str, ...]:
    return ("create-admin", "--email", email, "--password", password)


async def run_ok(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    result = await run_app(*args, database_url=database_url)
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"
    return result


async def fetch(url: str, sql: str) -> list[dict[str, Any]]:
    """Read the test's database directly (not through the run's ORM)."""
    if url.startswith("sqlite://"):
        with closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql)]
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [dict(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def counts(url: str) -> dict[str, int]:
    sql = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{t}") AS {t}' for t in COUNTED_TABLES)
    return {key: int(value) for key, value in (await fetch(url, sql))[0].items()}


async def agents_by_email(url: str) -> dict[str, dict[str, Any]]:
    rows = await fetch(
        url,
        "SELECT a.email, a.role, a.active, c.email AS login, c.profile_id AS profile_id "
        "FROM agents a LEFT JOIN credentials c ON c.agent_id = a.id",
    )
    return {row["email"]: row for row in rows}


async def test_migrate_then_seed_twice_builds_the_readme_world(fresh_database_url: str) -> None:
    url = fresh_database_url
    await run_ok("migrate", database_url=url)
    first = await run_ok("seed", database_url=url)
    assert "admin@demo.test" in first.stdout
    after_first = await counts(url)
    second = await run_ok("seed", database_url=url)
    assert "demo data ready" in second.stdout
    after_second = await counts(url)
    assert after_second == after_first, "the second seed created rows"

    assert after_first["agents"] == 2
    assert after_first["credentials"] == 5  # admin, agent, client, returning, co-applicant
    assert after_first["profiles"] == 3
    assert after_first["products"] == 2
    assert after_first["orders"] == 3
    assert after_first["dossiers"] == 3
    assert after_first["document_types"] >= 1

    # The demo accounts of the README.
    agents = await agents_by_email(url)
    assert set(agents) == {"admin@demo.test", "agent@demo.test"}
    assert agents["admin@demo.test"]["role"] == "ADMIN"
    assert agents["agent@demo.test"]["role"] == "AGENT"
    for agent in agents.values():
        assert bool(agent["active"])
        assert agent["login"] == agent["email"]  # each agent can log in
    client = await fetch(
        url,
        "SELECT p.status FROM profiles p JOIN credentials c ON c.profile_id = p.id "
        "WHERE c.email = 'client@demo.test'",
    )
    assert client == [{"status": "ACTIVE"}]
    orders = await fetch(
        url,
        "SELECT o.status, o.dossier_id IS NOT NULL AS has_dossier FROM orders o "
        "JOIN credentials c ON c.profile_id = o.user_id WHERE c.email = 'client@demo.test'",
    )
    assert [(row["status"], bool(row["has_dossier"])) for row in orders] == [("PAID", True)]
    dossiers = await fetch(
        url,
        "SELECT d.status, d.current_step_instance_id IS NOT NULL AS has_step FROM dossiers d "
        "JOIN credentials c ON c.profile_id = d.user_id WHERE c.email = 'client@demo.test'",
    )
    assert [(row["status"], bool(row["has_step"])) for row in dossiers] == [("IN_PROGRESS", True)]
    # the client's dossier has a co-applicant, who logs in and sees it
    member = await fetch(
        url,
        "SELECT m.role FROM dossier_members m JOIN credentials c ON c.profile_id = m.profile_id "
        "WHERE c.email = 'coapplicant@demo.test' AND m.removed_at IS NULL",
    )
    assert [row["role"] for row in member] == ["CO_APPLICANT"]
    # the README's returning client: a residence permit, then a company, both running
    returning = await fetch(
        url,
        "SELECT p.name, d.status FROM dossiers d JOIN products p ON p.id = d.product_id "
        "JOIN credentials c ON c.profile_id = d.user_id WHERE c.email = 'returning@demo.test' "
        "ORDER BY p.name",
    )
    assert [(row["name"], row["status"]) for row in returning] == [
        ("Company formation (SAS)", "IN_PROGRESS"),
        ("Residence permit application", "IN_PROGRESS"),
    ]

    # Two products of three steps each, the catalogue the README describes.
    products = await fetch(
        url,
        "SELECT p.name, count(ps.id) AS steps FROM products p "
        "LEFT JOIN product_steps ps ON ps.product_id = p.id GROUP BY p.name ORDER BY p.name",
    )
    assert [(row["name"], int(row["steps"])) for row in products] == [
        ("Company formation (SAS)", 3),
        ("Residence permit application", 3),
    ]
    id_document = await fetch(
        url,
        "SELECT max_file_size_mb, allowed_extensions FROM document_types "
        "WHERE code = 'ID_DOCUMENT'",
    )
    assert len(id_document) == 1
    assert id_document[0]["max_file_size_mb"] == 10
    assert sorted(json.loads(id_document[0]["allowed_extensions"])) == ["jpeg", "jpg", "pdf", "png"]


async def test_create_admin(fresh_database_url: str) -> None:
    url = fresh_database_url
    await run_ok("migrate", database_url=url)
    await run_ok("seed", database_url=url)  # for a client account and a plain agent
    before = await counts(url)

    created = await run_ok(*create_admin("boss@example.com", "s3cret-pass-1"), database_url=url)
    assert "created admin boss@example.com" in created.stdout
    agents = await agents_by_email(url)
    assert agents["boss@example.com"]["role"] == "ADMIN"
    assert bool(agents["boss@example.com"]["active"])
    assert agents["boss@example.com"]["login"] == "boss@example.com"
    after_create = await counts(url)
    assert after_create["agents"] == before["agents"] + 1
    assert after_create["credentials"] == before["credentials"] + 1

    # Again: keeps the admin, no second account.
    again = await run_ok(*create_admin("boss@example.com", "s3cret-pass-1"), database_url=url)
    assert "promoted admin boss@example.com" in again.stdout
    assert (await counts(url))["agents"] == after_create["agents"]
    assert (await counts(url))["credentials"] == after_create["credentials"]
    assert (await agents_by_email(url))["boss@example.com"]["role"] == "ADMIN"

    # An existing agent (differently cased email) is promoted, not duplicated.
    promoted = await run_ok(*create_admin("Agent@Demo.test", "whatever-123"), database_url=url)
    assert "promoted admin agent@demo.test" in promoted.stdout
    assert (await agents_by_email(url))["agent@demo.test"]["role"] == "ADMIN"
    assert (await counts(url))["agents"] == after_create["agents"]

    # A too-short password: refused, with the reason, and nothing written.
    short = await run_app(*create_admin("short@example.com", "short"), database_url=url)
    assert short.returncode != 0
    assert "password must be" in short.stderr, short.stderr
    assert "Traceback" not in short.stderr
    assert "short@example.com" not in await agents_by_email(url)

    # An email that belongs to a client: refused, the client stays a client.
    client = await run_app(*create_admin("client@demo.test", "s3cret-pass-1"), database_url=url)
    assert client.returncode != 0
    assert "client account" in client.stderr, client.stderr
    assert "Traceback" not in client.stderr
    assert "client@demo.test" not in await agents_by_email(url)
    assert (await counts(url))["agents"] == after_create["agents"]

    # An invalid email: refused with a message.
    invalid = await run_app(*create_admin("not-an-email", "s3cret-pass-1"), database_url=url)
    assert invalid.returncode != 0
    assert "Invalid email" in invalid.stderr, invalid.stderr
    assert (await counts(url))["agents"] == after_create["agents"]


async def test_export_schema_check_passes_on_the_committed_file(tmp_path: Path) -> None:
    # No database involved; the URL only keeps the process away from the run's database.
    result = await run_app(
        "export-schema", "--check", database_url=f"sqlite://{tmp_path / 'unused.sqlite3'}"
    )
    assert result.returncode == 0, result.stderr  # says to run `python -m app export-schema`
    assert "schema.graphql is current" in result.stdout


async def test_configuration_reference_is_current(tmp_path: Path) -> None:
    # docs/configuration.md is written from the settings' docstrings: a setting added,
    # renamed or re-documented without `python -m app config-docs` fails here.
    result = await run_app(
        "config-docs", "--check", database_url=f"sqlite://{tmp_path / 'unused.sqlite3'}"
    )
    assert result.returncode == 0, result.stderr
    assert "docs/configuration.md is current" in result.stdout


def test_every_setting_is_documented_in_its_section() -> None:
    from app.config_docs import render, undocumented
    from app.settings import Settings

    assert undocumented() == []
    text = render()
    for name in Settings.model_fields:
        assert f"| `{name.upper()}` |" in text
