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

import os
import re
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


class AddCaseReference(ops.AddField):
    """`dossiers.reference` (issue 19): added nullable, backfilled, then NOT NULL UNIQUE.

    Existing dossiers are numbered deterministically, per year of `created_at` (UTC), in
    (created_at, id) order: `<prefix>-<year>-<six-digit sequence>`; `dossier_sequences`
    then holds each year's last number, so the next dossier continues the sequence. The
    state is the model's (a plain AddField of a unique CharField). On SQLite the column
    becomes NOT NULL by SQLite's own procedure for other schema changes (see DropNotNull)
    and its uniqueness is a unique index; on PostgreSQL `SET NOT NULL` and a UNIQUE
    constraint named as a CREATE TABLE would name it."""

    @property
    def prefix(self) -> str:
        """The DOSSIER_REFERENCE_PREFIX setting, read as app.settings reads it (the models
        layer sits below the settings)."""
        value = os.environ.get("DOSSIER_REFERENCE_PREFIX") or "PV"
        if not re.fullmatch(r"[A-Z]{1,8}", value):
            raise ValueError(f"DOSSIER_REFERENCE_PREFIX must be 1 to 8 capital letters: {value!r}")
        return value

    def describe(self) -> str:
        return "Add dossiers.reference, number the existing dossiers, make it NOT NULL UNIQUE"

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        client = state_editor.client
        prefix = self.prefix.replace("'", "''")
        if _postgres(state_editor):
            year = "extract(year FROM created_at AT TIME ZONE 'UTC')::int"
            await state_editor._run_sql('ALTER TABLE "dossiers" ADD COLUMN "reference" VARCHAR(32)')
            await state_editor._run_sql(
                f"UPDATE dossiers d SET reference = '{prefix}-' || r.y || '-' || "
                f"lpad(r.n::text, greatest(6, length(r.n::text)), '0') FROM (SELECT id, "
                f"{year} AS y, row_number() OVER (PARTITION BY {year} ORDER BY created_at, id) "
                "AS n FROM dossiers) r WHERE d.id = r.id"
            )
            await state_editor._run_sql(
                "INSERT INTO dossier_sequences (year, last_value) SELECT "
                f"{year}, count(*) FROM dossiers GROUP BY 1 "
                "ON CONFLICT (year) DO UPDATE SET last_value = GREATEST("
                "dossier_sequences.last_value, excluded.last_value)"
            )
            await state_editor._run_sql(
                'ALTER TABLE "dossiers" ALTER COLUMN "reference" SET NOT NULL, '
                'ADD CONSTRAINT "dossiers_reference_key" UNIQUE ("reference")'
            )
            return
        year = "CAST(strftime('%Y', created_at) AS INTEGER)"
        await state_editor._run_sql('ALTER TABLE "dossiers" ADD COLUMN "reference" VARCHAR(32)')
        await state_editor._run_sql(
            f"UPDATE dossiers SET reference = (SELECT '{prefix}-' || r.y || '-' || "
            "CASE WHEN r.n < 1000000 THEN substr('00000' || r.n, -6, 6) ELSE r.n END "
            f"FROM (SELECT id, {year} AS y, row_number() OVER (PARTITION BY {year} "
            "ORDER BY created_at, id) AS n FROM dossiers) r WHERE r.id = dossiers.id)"
        )
        await state_editor._run_sql(
            "INSERT INTO dossier_sequences (year, last_value) SELECT "
            f"{year}, count(*) FROM dossiers GROUP BY 1 "
            "ON CONFLICT (year) DO UPDATE SET last_value = max("
            "dossier_sequences.last_value, excluded.last_value)"
        )
        rows = await client.execute_query_dict(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'dossiers'"
        )
        old = '"reference" VARCHAR(32)'
        sql = rows[0]["sql"]
        if old not in sql:
            raise RuntimeError(f"dossiers: column definition {old!r} not found in {sql!r}")
        version = (await client.execute_query_dict("PRAGMA schema_version"))[0]
        version = int(next(iter(version.values())))
        await state_editor._run_sql("PRAGMA writable_schema = ON")
        await client.execute_query(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'dossiers'",
            [sql.replace(old, f"{old} NOT NULL", 1)],
        )
        await state_editor._run_sql(f"PRAGMA schema_version = {version + 1}")
        await state_editor._run_sql("PRAGMA writable_schema = OFF")
        await state_editor._run_sql(
            'CREATE UNIQUE INDEX "uid_dossiers_reference" ON "dossiers" ("reference")'
        )

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        if not _postgres(state_editor):
            await state_editor._run_sql('DROP INDEX IF EXISTS "uid_dossiers_reference"')
        await state_editor._run_sql('ALTER TABLE "dossiers" DROP COLUMN "reference"')


# Search (issue 19). PostgreSQL: pg_trgm and unaccent, an IMMUTABLE wrapper of unaccent
# (unaccent itself is STABLE: it reads its dictionary by name, so no index may use it),
# and GIN trigram indexes on the folded name, the e-mail and the phone's digits, the
# exact expressions app/services/search.py queries.
SEARCH_POSTGRES_SQL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "CREATE OR REPLACE FUNCTION f_unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE "
    "PARALLEL SAFE STRICT AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$",
    "CREATE INDEX IF NOT EXISTS idx_profiles_search_name ON profiles "
    "USING gin (f_unaccent(lower(full_name)) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS idx_profiles_search_phone ON profiles "
    "USING gin (regexp_replace(phone, '[^0-9]', '', 'g') gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS idx_credentials_search_email ON credentials "
    "USING gin (email gin_trgm_ops) WHERE profile_id IS NOT NULL",
)
SEARCH_POSTGRES_DROP = (
    "DROP INDEX IF EXISTS idx_credentials_search_email",
    "DROP INDEX IF EXISTS idx_profiles_search_phone",
    "DROP INDEX IF EXISTS idx_profiles_search_name",
    "DROP FUNCTION IF EXISTS f_unaccent(text)",
)
# SQLite (the embedded default): an FTS5 table of trigrams (SQLite 3.34+), one row per
# client, holding the folded name, the e-mail and the phone's digits (app/models/search_text
# folds them: SQLite 3.40's trigram tokenizer cannot remove diacritics). The services
# that write a name, an e-mail or a phone rewrite the client's row
# (app/services/search.py `index_clients`).
SEARCH_SQLITE_SQL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS profile_search USING fts5("
    "profile_id UNINDEXED, name, email, phone, tokenize = 'trigram')",
)


class CreateSearchIndexes(ops.RunSQL):
    """The search indexes of each backend (no state: expression indexes and virtual tables
    are not Tortoise's); on SQLite the existing clients are indexed as well."""

    def __init__(self) -> None:
        super().__init__(sql="", reverse_sql="")

    def describe(self) -> str:
        return "Create the search indexes (pg_trgm + unaccent, or FTS5 trigrams)"

    def state_forward(self, app_label: str, state: Any) -> None:
        return None

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        if _postgres(state_editor):
            for sql in SEARCH_POSTGRES_SQL:
                await state_editor._run_sql(sql)
            return
        for sql in SEARCH_SQLITE_SQL:
            await state_editor._run_sql(sql)
        if state_editor.collect_sql:
            return
        from app.models.search_text import search_row

        client = state_editor.client
        rows = await client.execute_query_dict(
            "SELECT p.id, p.full_name, p.phone, c.email FROM profiles p "
            "LEFT JOIN credentials c ON c.profile_id = p.id"
        )
        await client.execute_query("DELETE FROM profile_search")
        for row in rows:
            await client.execute_query(
                "INSERT INTO profile_search (profile_id, name, email, phone) VALUES (?, ?, ?, ?)",
                [str(row["id"]), *search_row(row["full_name"], row["email"], row["phone"])],
            )

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        if _postgres(state_editor):
            for sql in SEARCH_POSTGRES_DROP:
                await state_editor._run_sql(sql)
            return
        await state_editor._run_sql("DROP TABLE IF EXISTS profile_search")


# Search speed (issue 19, migration 0027). PostgreSQL: the folded name stored once per
# write (a generated column over the IMMUTABLE f_unaccent, so every writer of full_name
# keeps it, raw SQL included) and its GIN trigram index, which replaces the expression
# index of 0022: a search then reads the folded text instead of running unaccent on every
# candidate row. SQLite keeps the folded name in its FTS5 table already (nothing to do).
FOLDED_NAME_SQL = (
    "ALTER TABLE profiles ADD COLUMN IF NOT EXISTS full_name_folded text "
    "GENERATED ALWAYS AS (f_unaccent(lower(full_name))) STORED",
    "CREATE INDEX IF NOT EXISTS idx_profiles_search_folded ON profiles "
    "USING gin (full_name_folded gin_trgm_ops)",
    "DROP INDEX IF EXISTS idx_profiles_search_name",
)
FOLDED_NAME_DROP = (
    SEARCH_POSTGRES_SQL[3],  # idx_profiles_search_name, as 0022 made it
    "DROP INDEX IF EXISTS idx_profiles_search_folded",
    "ALTER TABLE profiles DROP COLUMN IF EXISTS full_name_folded",
)


class StoreFoldedNames(ops.RunSQL):
    """PostgreSQL's stored folded name and its GIN trigram index (no state: a generated
    column the models do not write, and an operator-class index, are not Tortoise's)."""

    def __init__(self) -> None:
        super().__init__(sql="", reverse_sql="")

    def describe(self) -> str:
        return "Store the folded names for search (PostgreSQL)"

    def state_forward(self, app_label: str, state: Any) -> None:
        return None

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor and _postgres(state_editor):
            for sql in FOLDED_NAME_SQL:
                await state_editor._run_sql(sql)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor and _postgres(state_editor):
            for sql in FOLDED_NAME_DROP:
                await state_editor._run_sql(sql)
