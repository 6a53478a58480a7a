"""Tortoise ORM internals: a queryset's SQL, rows hydrated by the ORM, model metadata.

Used by the joined pages (`app.dataloaders.pages`), the message pages, the batched
writer (`app.db.Writes`) and hand-written hot reads. Pinned in tests/test_compat.py.
"""

from __future__ import annotations

from typing import Any, TypeVar

from tortoise.expressions import Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet

M = TypeVar("M", bound=Model)


def queryset_sql(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    """The parameterized SQL the ORM would send for `queryset`, and its parameters."""
    queryset._choose_db_if_not_chosen()
    queryset._make_query()
    sql, params = queryset.query.get_parameterized_sql()
    return sql, list(params)


def from_row(model: type[M], row: dict[str, Any]) -> M:
    """A model instance from a database row (column name → value), hydrated exactly as the
    ORM's own queries hydrate it."""
    return model._init_from_db(**row)


def mark_saved(instance: Model) -> None:
    """Tell the ORM that `instance` is in the database (written by hand-made SQL)."""
    instance._saved_in_db = True


def table(model: type[Model]) -> str:
    return model._meta.db_table


def columns(model: type[Model]) -> dict[str, str]:
    """Field name → column name, for every stored field (foreign keys as their id)."""
    return model._meta.fields_db_projection


def insert_fields(model: type[Model]) -> list[str]:
    """The fields an INSERT writes (database-generated ones left out)."""
    meta = model._meta
    return [n for n in meta.fields_db_projection if n not in meta.generated_db_fields]


def primary_key(model: type[Model]) -> str:
    return model._meta.pk_attr


def db_value(model: type[Model], name: str, value: Any, instance: Model | None = None) -> Any:
    """`value` of field `name` as the ORM sends it to the database."""
    return model._meta.fields_map[name].to_db_value(value, instance)  # type: ignore[arg-type]  # Tortoise passes instance=None itself (QuerySet.update) but its annotation omits None


def auto_now_add_fields(model: type[Model]) -> list[str]:
    return [
        name
        for name, field in model._meta.fields_map.items()
        if getattr(field, "auto_now_add", False)
    ]


class AnyOf(Subquery):
    """`field=AnyOf(values_queryset)` is `field = ANY(ARRAY(subquery))` (PostgreSQL): the
    subquery runs once, as an InitPlan, and the outer query probes its index for each
    value it returned, where `IN (subquery)` lets the planner hash the whole outer table
    (a Seq Scan of every dossier to find an agent's few thousand)."""

    def get_sql(self, ctx: Any) -> str:
        return f"ANY(ARRAY({super().get_sql(ctx)}))"


def pool_use(client: Any) -> tuple[int, int, int] | None:
    """(open, idle, max) connections of a Tortoise connection: its asyncpg pool's (a public
    `asyncpg.Pool` behind the private `BasePostgresClient._pool`), or the SQLite client's
    one connection (`SqliteClient._connection`, busy while its `_lock` is held). None before
    it has connected, or for another kind of client."""
    from tortoise.backends.base_postgres.client import BasePostgresClient
    from tortoise.backends.sqlite.client import SqliteClient

    if isinstance(client, BasePostgresClient):
        pool = client._pool
        if pool is None:
            return None
        return pool.get_size(), pool.get_idle_size(), pool.get_max_size()
    if isinstance(client, SqliteClient):
        if client._connection is None:
            return None
        return 1, 0 if client._lock.locked() else 1, 1
    return None
