"""Migrations tried on a scratch database with rows in it, in a child process (migrating
re-initialises the ORM, which the suite's own connection must keep)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.conftest import BACKEND, _with_database


def run_script(script: str, *args: str) -> list[str]:
    """Run `script` (python -c) with `args`; its stdout, split."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def sqlite_scratch(prefix: str) -> str:
    return f"sqlite://{Path(tempfile.mkdtemp(prefix=prefix)) / 'db.sqlite3'}"


@asynccontextmanager
async def postgres_scratch(prefix: str) -> AsyncIterator[str]:
    """The URL of a new PostgreSQL database, dropped afterwards."""
    import asyncpg

    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(BACKEND.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(BACKEND.admin_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
