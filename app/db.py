"""Tortoise configuration and the database lifecycle."""

from __future__ import annotations

import re
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.models import Model

from app.settings import get_settings

M = TypeVar("M", bound=Model)


class PooledConnection(asyncpg.Connection):
    """A pooled PostgreSQL connection handed back to the pool as it is.

    asyncpg resets every connection it takes back (`SELECT pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL`): four statements and one more round trip after
    every query run outside a transaction, which is most reads. The app keeps no session
    state to undo (no LISTEN, no cursors, no session SET; its advisory locks are
    transaction-scoped), so the reset query is skipped. asyncpg still rolls back a
    transaction left open on release.
    """

    def get_reset_query(self) -> str:
        return ""


def _connection(url: str) -> str | dict[str, Any]:
    if not url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return url
    config = expand_db_url(url)
    config["credentials"]["connection_class"] = PooledConnection
    return config


def tortoise_config(database_url: str | None = None) -> dict[str, Any]:
    url = database_url or get_settings().database_url
    return {
        "connections": {"default": _connection(url)},
        "apps": {
            "models": {
                "models": ["app.models"],
                "default_connection": "default",
                "migrations": "app.models.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# Read by the `tortoise` CLI through [tool.tortoise] in pyproject.toml.
TORTOISE_ORM = tortoise_config()


async def init_db(database_url: str | None = None) -> None:
    # The global fallback lets request tasks see the ORM that the lifespan task set up
    # (Tortoise 1.x keeps its context in a contextvar, which tasks do not share back).
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


@asynccontextmanager
async def database(database_url: str | None = None):
    await init_db(database_url)
    try:
        yield
    finally:
        await close_db()


async def insert_together(*instances: Model) -> None:
    """Insert new rows that commit together (say a change and its event): on PostgreSQL in
    ONE statement (data-modifying CTEs, one round trip), elsewhere one INSERT each. Values
    go through the fields' own `to_db_value`, exactly as `save()` would send them."""
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres" or len(instances) < 2:
        for instance in instances:
            await instance.save(force_create=True)
        return
    statements: list[str] = []
    values: list[Any] = []
    for instance in instances:
        meta = instance._meta
        names = [n for n in meta.fields_db_projection if n not in meta.generated_db_fields]
        row = [meta.fields_map[n].to_db_value(getattr(instance, n), instance) for n in names]
        columns = ", ".join(f'"{meta.fields_db_projection[n]}"' for n in names)
        marks = ", ".join(f"${len(values) + i}" for i in range(1, len(row) + 1))
        statements.append(f'INSERT INTO "{meta.db_table}" ({columns}) VALUES ({marks})')
        values += row
    *first, last = statements
    ctes = ", ".join(f'"insert_{i}" AS ({sql})' for i, sql in enumerate(first))
    await connection.execute_query(f"WITH {ctes} {last}", values)
    for instance in instances:
        instance._saved_in_db = True


def is_postgres() -> bool:
    from tortoise.connection import get_connection

    return get_connection("default").capabilities.dialect == "postgres"


class Writes:
    """Changes that commit together (new rows and UPDATEs), sent in as few round trips as
    the backend allows: on PostgreSQL ONE statement (data-modifying CTEs: one multi-row
    INSERT per table, each UPDATE), elsewhere one INSERT per table (`bulk_create`) and
    one statement per UPDATE, in the order they were added. A table's rows go out together
    where its first row was added: add parents before their children (and UPDATEs that
    point at new rows after them). Values go through the fields' own `to_db_value`, as
    `save()` would send them; the rows' primary keys are chosen in Python (UUIDs).

    Rows added without a creation time get one when they are added, strictly increasing
    across the batch, so ordering by `created_at` keeps the order they were made in (as
    when each was saved in turn)."""

    def __init__(self) -> None:
        self._ops: list[tuple[str, Any, Any]] = []  # ("insert", model, rows) | ("update", ...)
        self._rows: dict[type[Model], list[Model]] = {}
        self._last: datetime | None = None

    def _stamp(self) -> datetime:
        now = datetime.now(UTC)
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(microseconds=1)
        self._last = now
        return now

    def insert(self, *instances: Model) -> None:
        for instance in instances:
            meta = instance._meta
            for name, field in meta.fields_map.items():
                if getattr(field, "auto_now_add", False) and getattr(instance, name) is None:
                    setattr(instance, name, self._stamp())
            rows = self._rows.get(type(instance))
            if rows is None:
                rows = self._rows[type(instance)] = []
                self._ops.append(("insert", type(instance), rows))
            rows.append(instance)

    def update(self, model: type[Model], where: dict[str, Any], **values: Any) -> None:
        """`UPDATE model SET values WHERE where` (field names; a None in `where` is IS NULL).
        No `auto_now` here: pass `updated_at` when the row has one."""
        self._ops.append(("update", model, (where, values)))

    def __bool__(self) -> bool:
        return bool(self._ops)

    async def run(self) -> None:
        if not self._ops:
            return
        connection = connections.get("default")
        if connection.capabilities.dialect == "postgres":
            await self._run_postgres(connection)
        else:
            for kind, model, spec in self._ops:
                if kind == "insert":
                    await model.bulk_create(spec)
                else:
                    where, values = spec
                    await model.filter(**where).update(**values)
        for rows in self._rows.values():
            for instance in rows:
                instance._saved_in_db = True
        self._ops, self._rows = [], {}

    async def _run_postgres(self, connection: Any) -> None:
        statements: list[str] = []
        values: list[Any] = []

        def mark(value: Any) -> str:
            values.append(value)
            return f"${len(values)}"

        for kind, model, spec in self._ops:
            meta = model._meta
            table = f'"{meta.db_table}"'
            if kind == "insert":
                names = [n for n in meta.fields_db_projection if n not in meta.generated_db_fields]
                columns = ", ".join(f'"{meta.fields_db_projection[n]}"' for n in names)
                tuples = ", ".join(
                    "("
                    + ", ".join(
                        mark(meta.fields_map[n].to_db_value(getattr(instance, n), instance))
                        for n in names
                    )
                    + ")"
                    for instance in spec
                )
                statements.append(f"INSERT INTO {table} ({columns}) VALUES {tuples}")
            else:
                where, changes = spec
                sets = ", ".join(
                    f'"{meta.fields_db_projection[n]}" = '
                    + mark(meta.fields_map[n].to_db_value(v, None))
                    for n, v in changes.items()
                )
                conditions = " AND ".join(
                    f'"{meta.fields_db_projection[n]}" IS NULL'
                    if v is None
                    else f'"{meta.fields_db_projection[n]}" = '
                    + mark(meta.fields_map[n].to_db_value(v, None))
                    for n, v in where.items()
                )
                statements.append(f"UPDATE {table} SET {sets} WHERE {conditions}")
        *first, last = statements
        if first:
            ctes = ", ".join(f'"write_{i}" AS ({sql})' for i, sql in enumerate(first))
            last = f"WITH {ctes} {last}"
        await connection.execute_query(last, values)


def aliased_columns(alias: str, model: type[Model]) -> list[str]:
    """`model`'s columns selected from the table aliased `alias`, each as "alias__column"
    (the shape `hydrate` reads back)."""
    return [
        f'"{alias}"."{column}" AS "{alias}__{column}"'
        for column in model._meta.fields_db_projection.values()
    ]


def hydrate(model: type[M], alias: str, row: dict[str, Any]) -> M | None:
    """The `model` row selected with `aliased_columns(alias, model)`; None for a LEFT JOIN
    that found nothing. Hydrated by the ORM itself (values as its queries give them)."""
    if row[f"{alias}__id"] is None:
        return None
    return model._init_from_db(
        **{c: row[f"{alias}__{c}"] for c in model._meta.fields_db_projection.values()}
    )


_NUMBERED = re.compile(r"\$(\d+)")


async def fetch_value(sql: str, *values: Any) -> Any:
    """The first column of the first row of `sql`, a statement written once with
    PostgreSQL's numbered placeholders ($1, $2 …; SQLite reads them as ?1, ?2 …), for hot
    reads the query builder would otherwise rebuild on every call. Values are plain (str,
    int, UUID, datetime, None); the caller passes an enum's value."""
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        sql = _NUMBERED.sub(r"?\1", sql)
        values = tuple(str(v) if isinstance(v, uuid.UUID) else v for v in values)
    _, rows = await connection.execute_query(sql, list(values))
    return rows[0][0] if rows else None
