"""Tortoise configuration and the database lifecycle."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.models import Model

from app.compat.tortoise import (
    auto_now_add_fields,
    columns,
    db_value,
    from_row,
    insert_fields,
    mark_saved,
    table,
)
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


class BatchConflict(ValueError):
    """A batch of writes that would not mean the same on PostgreSQL and SQLite.

    On PostgreSQL the batch is ONE statement, and every part of a data-modifying statement
    sees the same snapshot: an UPDATE does not see a row INSERTed by the same statement,
    and of two UPDATEs of one row only one takes effect. On SQLite the parts run one after
    the other and all apply. Such a batch is refused when it is built, before anything is
    written: write the row in its final state, or merge the UPDATEs."""


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
    when each was saved in turn).

    An UPDATE that could reach a row inserted in the same batch, or two UPDATEs that could
    reach the same row, raise `BatchConflict` when added (see there). `where` compares
    fields with values (None: IS NULL); two UPDATEs of a model are accepted only when a
    field both compare, and the first does not set, tells their rows apart."""

    def __init__(self) -> None:
        self._ops: list[tuple[str, Any, Any]] = []  # ("insert", model, rows) | ("update", ...)
        self._rows: dict[type[Model], list[Model]] = {}
        self._updates: dict[type[Model], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        self._last: datetime | None = None

    def _stamp(self) -> datetime:
        now = datetime.now(UTC)
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(microseconds=1)
        self._last = now
        return now

    def insert(self, *instances: Model) -> None:
        for instance in instances:
            model = type(instance)
            for where, _ in self._updates.get(model, ()):
                if _may_match(where, instance):
                    raise BatchConflict(
                        f"a new {model.__name__} row matches an UPDATE of the same batch "
                        f"(where {where}): on PostgreSQL the UPDATE would not see it"
                    )
        for instance in instances:
            for name in auto_now_add_fields(type(instance)):
                if getattr(instance, name) is None:
                    setattr(instance, name, self._stamp())
            rows = self._rows.get(type(instance))
            if rows is None:
                rows = self._rows[type(instance)] = []
                self._ops.append(("insert", type(instance), rows))
            rows.append(instance)

    def update(self, model: type[Model], where: dict[str, Any], **values: Any) -> None:
        """`UPDATE model SET values WHERE where` (field names; a None in `where` is IS NULL).
        No `auto_now` here: pass `updated_at` when the row has one."""
        if not where or not values:
            raise ValueError("an UPDATE of a batch needs a condition and values")
        for instance in self._rows.get(model, ()):
            if _may_match(where, instance):
                raise BatchConflict(
                    f"an UPDATE of {model.__name__} (where {where}) may reach a row inserted "
                    "in the same batch: on PostgreSQL it would not see it; insert the row "
                    "in its final state"
                )
        for earlier_where, earlier_values in self._updates.get(model, ()):
            if not _disjoint(earlier_where, earlier_values, where):
                raise BatchConflict(
                    f"two UPDATEs of {model.__name__} may reach the same row (where "
                    f"{earlier_where}, then where {where}): on PostgreSQL only one would "
                    "take effect; merge them"
                )
        self._updates.setdefault(model, []).append((where, values))
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
                mark_saved(instance)
        self._ops, self._rows, self._updates = [], {}, {}

    async def _run_postgres(self, connection: Any) -> None:
        statements: list[str] = []
        values: list[Any] = []

        def mark(value: Any) -> str:
            values.append(value)
            return f"${len(values)}"

        for kind, model, spec in self._ops:
            names = columns(model)
            if kind == "insert":
                fields = insert_fields(model)
                listed = ", ".join(f'"{names[n]}"' for n in fields)
                tuples = ", ".join(
                    "("
                    + ", ".join(
                        mark(db_value(model, n, getattr(instance, n), instance)) for n in fields
                    )
                    + ")"
                    for instance in spec
                )
                statements.append(f'INSERT INTO "{table(model)}" ({listed}) VALUES {tuples}')
            else:
                where, changes = spec
                sets = ", ".join(
                    f'"{names[n]}" = ' + mark(db_value(model, n, v)) for n, v in changes.items()
                )
                conditions = " AND ".join(
                    f'"{names[n]}" IS NULL'
                    if v is None
                    else f'"{names[n]}" = ' + mark(db_value(model, n, v))
                    for n, v in where.items()
                )
                statements.append(f'UPDATE "{table(model)}" SET {sets} WHERE {conditions}')
        *first, last = statements
        if first:
            ctes = ", ".join(f'"write_{i}" AS ({sql})' for i, sql in enumerate(first))
            last = f"WITH {ctes} {last}"
        await connection.execute_query(last, values)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Enum):
        a = a.value
    if isinstance(b, Enum):
        b = b.value
    return str(a) == str(b)


def _may_match(where: dict[str, Any], instance: Model) -> bool:
    """Whether `instance`, once written, could satisfy `where` (True when unsure)."""
    for name, value in where.items():
        if not hasattr(instance, name):
            return True
        if not _same(getattr(instance, name), value):
            return False
    return True


def _disjoint(first: dict[str, Any], first_sets: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether no row can satisfy both conditions, the first UPDATE applied or not."""
    return any(
        name in second and name not in first_sets and not _same(value, second[name])
        for name, value in first.items()
    )


async def insert_together(*instances: Model) -> None:
    """Insert new rows that commit together (say a change and its event): `Writes` with
    inserts only (on PostgreSQL ONE statement, one round trip)."""
    writes = Writes()
    writes.insert(*instances)
    await writes.run()


def is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


def aliased_columns(alias: str, model: type[Model]) -> list[str]:
    """`model`'s columns selected from the table aliased `alias`, each as "alias__column"
    (the shape `hydrate` reads back)."""
    return [f'"{alias}"."{column}" AS "{alias}__{column}"' for column in columns(model).values()]


def hydrate(model: type[M], alias: str, row: dict[str, Any]) -> M | None:
    """The `model` row selected with `aliased_columns(alias, model)`; None for a LEFT JOIN
    that found nothing. Hydrated by the ORM itself (values as its queries give them)."""
    if row[f"{alias}__id"] is None:
        return None
    return from_row(model, {c: row[f"{alias}__{c}"] for c in columns(model).values()})


_NUMBERED = re.compile(r"\$(\d+)")


async def fetch_value(sql: str, *values: Any) -> Any:
    """The first column of the first row of `sql`, a statement written once with
    PostgreSQL's numbered placeholders ($1, $2 …; SQLite reads them as ?1, ?2 …), for hot
    reads the query builder would otherwise rebuild on every call. Values are plain (str,
    int, UUID, datetime, None); the caller passes an enum's value."""
    rows = await _rows(sql, values)
    return rows[0][0] if rows else None


async def fetch_column(sql: str, *values: Any) -> list[Any]:
    """The first column of every row of `sql` (written as `fetch_value`'s)."""
    return [row[0] for row in await _rows(sql, values)]


async def fetch_row(sql: str, *values: Any) -> tuple[Any, ...] | None:
    """The first row of `sql` (written as `fetch_value`'s), its columns in order."""
    rows = await _rows(sql, values)
    return tuple(rows[0]) if rows else None


async def fetch_rows(sql: str, *values: Any) -> list[tuple[Any, ...]]:
    """Every row of `sql` (written as `fetch_value`'s), each its columns in order."""
    return [tuple(row) for row in await _rows(sql, values)]


async def _rows(sql: str, values: Sequence[Any]) -> list[Any]:
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        sql = _NUMBERED.sub(r"?\1", sql)
        values = tuple(str(v) if isinstance(v, uuid.UUID) else v for v in values)
    _, rows = await connection.execute_query(sql, list(values))
    return rows


async def latest_per_parent(
    model: type[Model], column: str, at: str, parent_ids: Sequence[Any], last: int
) -> list[Any]:
    """The ids of `model`'s latest `last` rows (by `at`, then id) for each of `parent_ids`
    (`column` their foreign key), through `latest_ids_per_parent`."""
    table = model._meta.db_table
    return await latest_ids_per_parent(
        f'"{table}" t', f't."{column}"', f't."{at}"', parent_ids, last
    )


async def latest_ids_per_parent(
    from_sql: str,
    parent: str,
    at: str,
    parent_ids: Sequence[Any],
    last: int,
    *,
    where: str = "",
    before: Any = None,
    oldest: bool = False,
) -> list[Any]:
    """The ids (`t."id"`) of the latest `last` rows of `from_sql` (by `at`, then id) for
    each of `parent_ids` (`oldest`: the first `last` instead), `parent` the expression
    naming a row's parent; `where` an extra condition, `before` a database value `at` must
    be under. One statement whose every parent has its own LIMIT: PostgreSQL, a LATERAL
    subquery per parent (`last` rows through the parent's index); SQLite, which has no
    LATERAL, a window per parent."""
    if not parent_ids or last <= 0:
        return []
    order = "ASC" if oldest else "DESC"
    keys = [uuid.UUID(str(p)) for p in parent_ids]
    conditions = [where] if where else []
    if is_postgres():
        values: list[Any] = [keys, last]
        if before is not None:
            values.append(before)
            conditions.append(f"{at} < $3")
        extra = "".join(f" AND {c}" for c in conditions)
        sql = (
            "SELECT x.id FROM unnest($1::uuid[]) AS p(parent) CROSS JOIN LATERAL ("
            f'SELECT t."id" AS id FROM {from_sql} WHERE {parent} = p.parent{extra} '
            f'ORDER BY {at} {order}, t."id" {order} LIMIT $2) x'
        )
        return await fetch_column(sql, *values)
    values = list(keys)
    marks = ", ".join(f"${n}" for n in range(1, len(keys) + 1))
    conditions.insert(0, f"{parent} IN ({marks})")
    if before is not None:
        values.append(before)
        conditions.append(f"{at} < ${len(values)}")
    values.append(last)
    sql = (
        f'SELECT w.id FROM (SELECT t."id" AS id, ROW_NUMBER() OVER (PARTITION BY {parent} '
        f'ORDER BY {at} {order}, t."id" {order}) AS rn FROM {from_sql} '
        f"WHERE {' AND '.join(conditions)}) w WHERE w.rn <= ${len(values)}"
    )
    return await fetch_column(sql, *values)
