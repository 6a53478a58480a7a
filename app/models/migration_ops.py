"""Migration operations of our own, shared by the migrations that use them.

`AddIndexConcurrently` / `RemoveIndexConcurrently` are Tortoise's AddIndex / RemoveIndex
(the migration state is theirs, so the models and the migrations stay in step) whose
database step does not lock writes on PostgreSQL: `CREATE INDEX CONCURRENTLY IF NOT
EXISTS` and `DROP INDEX CONCURRENTLY IF EXISTS`. Neither can run in a transaction: a
migration using them is `atomic = False` (Tortoise's executor then opens none). Every
statement is idempotent, and an INVALID index left by a failed concurrent build is dropped
before it is built again, so running `migrate` again after a failure finishes the job.
SQLite has no CONCURRENTLY: there they are plain `CREATE INDEX IF NOT EXISTS` and `DROP
INDEX IF EXISTS` (SQLite supports partial indexes as well).
"""

from __future__ import annotations

from typing import Any

from tortoise.indexes import Index
from tortoise.migrations import operations as ops

_INVALID_INDEX_SQL = (
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = $1 AND NOT i.indisvalid"
)


def _postgres(state_editor: Any) -> bool:
    return state_editor.client.capabilities.dialect == "postgres"


def create_index_sql(table: str, index: Index, *, postgres: bool) -> str:
    columns = ", ".join(f'"{column}"' for column in index.fields)
    concurrently = "CONCURRENTLY " if postgres else ""
    return (
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{index.name}" ON "{table}" ({columns})'
        f"{index.extra}"
    )


def drop_index_sql(name: str | None, *, postgres: bool) -> str:
    concurrently = "CONCURRENTLY " if postgres else ""
    return f'DROP INDEX {concurrently}IF EXISTS "{name}"'


async def _create(state_editor: Any, table: str, index: Index) -> None:
    postgres = _postgres(state_editor)
    if postgres and not state_editor.collect_sql:
        # A CONCURRENTLY build that failed leaves an INVALID index behind, which IF NOT
        # EXISTS would keep: drop it, so that this run builds it again.
        invalid = await state_editor.client.execute_query_dict(_INVALID_INDEX_SQL, [index.name])
        if invalid:
            await state_editor._run_sql(drop_index_sql(index.name, postgres=True))
    # what ops.RunSQL runs (and sqlmigrate prints)
    await state_editor._run_sql(create_index_sql(table, index, postgres=postgres))


class AddIndexConcurrently(ops.AddIndex):
    def describe(self) -> str:
        return f"Add index {self.index.name} to {self.model_name}"

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        model = new_state.apps.get_model(f"{app_label}.{self.model_name}")
        await _create(state_editor, model._meta.db_table, self.index)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        await state_editor._run_sql(
            drop_index_sql(self.index.name, postgres=_postgres(state_editor))
        )


class RemoveIndexConcurrently(ops.RemoveIndex):
    def describe(self) -> str:
        return f"Remove index {self.name} from {self.model_name}"

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        await state_editor._run_sql(
            drop_index_sql(str(self.name), postgres=_postgres(state_editor))
        )

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        model = new_state.apps.get_model(f"{app_label}.{self.model_name}")
        index = self._find_index(new_state.models[(app_label, self.model_name)])
        await _create(state_editor, model._meta.db_table, index)


class AlterEnumMembers(ops.AlterField):
    """A CharEnumField's members changed (new event types): the column is a varchar, the
    database holds no list of values, so only the migration state changes. Tortoise's own
    AlterField would rebuild the whole table on SQLite to change the column's description
    (and drop the table's indexes on the way)."""

    def describe(self) -> str:
        return f"Alter the members of {self.model_name}.{self.name} (state only)"

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None


class AlterFieldKeepingIndexes(ops.AlterField):
    """Tortoise's AlterField (a column made nullable, say), with the table's indexes kept:
    PostgreSQL alters the column in place, SQLite rebuilds the table and loses its indexes
    on the way, so there they are created again (`IF NOT EXISTS`) from the model state."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        await super().database_forward(app_label, old_state, new_state, state_editor)
        if state_editor and not _postgres(state_editor):
            model = new_state.apps.get_model(f"{app_label}.{self.model_name}")
            for index in model._meta.indexes:
                if isinstance(index, Index):
                    await state_editor._run_sql(
                        create_index_sql(model._meta.db_table, index, postgres=False)
                    )

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        await super().database_backward(app_label, old_state, new_state, state_editor)
        if state_editor and not _postgres(state_editor):
            model = old_state.apps.get_model(f"{app_label}.{self.model_name}")
            for index in model._meta.indexes:
                if isinstance(index, Index):
                    await state_editor._run_sql(
                        create_index_sql(model._meta.db_table, index, postgres=False)
                    )
