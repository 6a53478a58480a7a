"""Statements counted by the database itself: `pg_stat_statements`.

The extension needs `shared_preload_libraries = 'pg_stat_statements'`, set when a server
starts: the bench uses a server that has it, or starts its own (bench/cluster.py); it never
reconfigures or restarts one. Counting is per database: `reset` clears only the
statistics of the database under test (`pg_stat_statements_reset(0, dbid, 0)`), so runs
in other databases of the same server do not disturb each other. The view is read from
the admin database, never created in the database under test.
"""

from __future__ import annotations

import contextlib
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


async def availability(admin_dsn: str) -> str:
    """Empty when the server preloads pg_stat_statements, else why statements cannot be
    counted there. Nothing is changed on the server: the bench runs a private cluster
    (bench/cluster.py) instead of reconfiguring one it did not start."""
    try:
        if await preloaded(admin_dsn):
            return ""
    except (OSError, asyncpg.PostgresError) as exc:
        return f"cannot connect ({type(exc).__name__}: {exc})"
    return "pg_stat_statements is not in its shared_preload_libraries"


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
