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


class DropNotNull(ops.AlterField):
    """A column made nullable, in place, its data, indexes and foreign keys untouched.

    PostgreSQL: `ALTER TABLE … ALTER COLUMN … DROP NOT NULL`. SQLite has no such statement,
    and Tortoise's AlterField rebuilds the table there: its indexes are lost, and dropping
    the old table runs its ON DELETE CASCADE actions (a document's versions would go). So
    SQLite's own procedure for removing a NOT NULL constraint is used instead (the table's
    CREATE statement edited in the schema, `writable_schema`, the schema version bumped:
    https://www.sqlite.org/lang_altertable.html, "making other kinds of table schema
    changes"), which changes nothing on disk."""

    def __init__(self, model_name: str, name: str, field: Any, *, table: str, column: str):
        super().__init__(model_name=model_name, name=name, field=field)
        self.table = table
        self.column = column

    def describe(self) -> str:
        return f"Make {self.table}.{self.column} nullable"

    async def _sqlite_definition(self, state_editor: Any, old: str, new: str) -> None:
        client = state_editor.client
        rows = await client.execute_query_dict(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [self.table]
        )
        sql = rows[0]["sql"] if rows else ""
        if old not in sql:
            raise RuntimeError(f"{self.table}: column definition {old!r} not found in {sql!r}")
        version = (await client.execute_query_dict("PRAGMA schema_version"))[0]
        version = int(next(iter(version.values())))
        await state_editor._run_sql("PRAGMA writable_schema = ON")
        await client.execute_query(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
            [sql.replace(old, new, 1), self.table],
        )
        await state_editor._run_sql(f"PRAGMA schema_version = {version + 1}")
        await state_editor._run_sql("PRAGMA writable_schema = OFF")

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        if _postgres(state_editor):
            await state_editor._run_sql(
                f'ALTER TABLE "{self.table}" ALTER COLUMN "{self.column}" DROP NOT NULL'
            )
            return
        column = f'"{self.column}" CHAR(36)'
        await self._sqlite_definition(state_editor, f"{column} NOT NULL", column)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        if _postgres(state_editor):
            await state_editor._run_sql(
                f'ALTER TABLE "{self.table}" ALTER COLUMN "{self.column}" SET NOT NULL'
            )
            return
        column = f'"{self.column}" CHAR(36)'
        await self._sqlite_definition(state_editor, column + " ", f"{column} NOT NULL ")
