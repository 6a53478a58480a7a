"""Statements counted by the database itself: `pg_stat_statements`.

The extension needs `shared_preload_libraries = 'pg_stat_statements'` (a server restart);
`ensure_preloaded` does that once, idempotently, when it may (root or the postgres user on
the machine running the cluster). Counting is per database: `reset` clears only the
statistics of the database under test (`pg_stat_statements_reset(0, dbid, 0)`), so runs
in other databases of the same server do not disturb each other. The view is read from
the admin database, never created in the database under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import asyncpg


async def preloaded(admin_dsn: str) -> bool:
    conn = await asyncpg.connect(admin_dsn)
    try:
        libs = await conn.fetchval("SHOW shared_preload_libraries")
    finally:
        await conn.close()
    return "pg_stat_statements" in (libs or "")


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return args
    if shutil.which("sudo"):
        return ["sudo", "-n", *args]
    return args


async def ensure_preloaded(admin_dsn: str, *, log=print) -> tuple[bool, str]:
    """Make sure the server preloads pg_stat_statements: ALTER SYSTEM, then restart the
    cluster with pg_ctlcluster (Debian/Ubuntu) if it is local. Returns (ok, how)."""
    if await preloaded(admin_dsn):
        return True, "already preloaded"
    conn = await asyncpg.connect(admin_dsn)
    try:
        current = (await conn.fetchval("SHOW shared_preload_libraries")) or ""
        libs = ", ".join(
            x for x in [*(s.strip() for s in current.split(",")), "pg_stat_statements"] if x
        )
        await conn.execute(f"ALTER SYSTEM SET shared_preload_libraries = '{libs}'")
        version = (await conn.fetchval("SHOW server_version_num"))[:2]
        data_dir = await conn.fetchval("SHOW data_directory")
    except asyncpg.PostgresError as exc:
        return False, f"ALTER SYSTEM refused ({exc})"
    finally:
        await conn.close()
    if not shutil.which("pg_ctlcluster"):
        return False, "set shared_preload_libraries; restart PostgreSQL to load it"
    log(f"restarting PostgreSQL {version} (data {data_dir}) to load pg_stat_statements")
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
    done = await asyncio.to_thread(
        subprocess.run, _as_postgres(command), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return False, f"restart failed: {done.stderr.strip() or done.stdout.strip()}"
    for _ in range(60):
        try:
            if await preloaded(admin_dsn):
                return True, "preloaded after a restart"
        except (OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.5)
    return False, "PostgreSQL did not come back with pg_stat_statements"


@dataclass
class Statement:
    query: str
    calls: int


class StatementCounter:
    """Counts the statements one database executed, as pg_stat_statements saw them."""

    def __init__(self, admin_dsn: str, database: str) -> None:
        self.admin_dsn = admin_dsn
        self.database = database
        self._conn: Any = None
        self._dbid: int | None = None

    async def open(self) -> bool:
        """Connect to the admin database; False when the extension cannot be used."""
        if not await preloaded(self.admin_dsn):
            return False
        self._conn = await asyncpg.connect(self.admin_dsn)
        with contextlib.suppress(asyncpg.UniqueViolationError):  # made by a concurrent run
            await self._conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self._dbid = await self._conn.fetchval(
            "SELECT oid FROM pg_database WHERE datname = $1", self.database
        )
        return self._dbid is not None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def reset(self) -> None:
        await self._conn.execute("SELECT pg_stat_statements_reset(0, $1::oid, 0)", self._dbid)

    async def read(self) -> list[Statement]:
        rows = await self._conn.fetch(
            "SELECT query, calls FROM pg_stat_statements WHERE dbid = $1 ORDER BY calls DESC",
            self._dbid,
        )
        return [Statement(r["query"], int(r["calls"])) for r in rows]

    async def total(self) -> int:
        return sum(s.calls for s in await self.read())

    async def __aenter__(self) -> StatementCounter:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
