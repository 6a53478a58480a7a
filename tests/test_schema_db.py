"""The schema file, the migrations and the live database schema against the ERD.

* `schema.graphql` is what the code exports;
* the migration files describe exactly the models (Tortoise's own autodetector finds
  nothing to write);
* the ERD written out below is /work/shared/ERD.md (parsed, when the file is there);
* the database built from the migration files (the run's database, see conftest) has
  every column of every ERD table under the ERD's own name, and every foreign key,
  unique key and index of the ERD, read back from the catalogue through the ORM
  connection;
* every foreign-key column leads an index (but a short, reasoned allow-list), and the hot
  paths' indexes of migration 0007 exist, partial where they say so;
* migrating a brand-new database works, and a second run applies nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
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
from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.fields.relational import ForeignKeyFieldInstance
from tortoise.migrations.operations import AlterField
from tortoise.migrations.schema_generator.state_diff import _field_signature

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = ROOT / "app" / "models" / "migrations"
SUBPROCESS_TIMEOUT = 90  # seconds, per command: a fresh migrate costs ~9 s of CPU in
# Tortoise's migration state (cloned per operation), more on a loaded machine

# --------------------------------------------------------------------------------------
# The ERD (/work/shared/ERD.md), written out: table -> {column: ERD type}.
#
# Column names are the ERD's, and the database's: Tortoise names the column of a
# ForeignKeyField `<field>_id`, so the three whose ERD name has no `_id` suffix say
# `source_field=` in the models (migration 0006 renamed them; the Python attributes keep
# their `_id` names):
#   payment_links.created_by   (field PaymentLink.created_by, attribute created_by_id)
#   payment_links.used_by      (field PaymentLink.used_by, attribute used_by_id)
#   step_instances.assigned_to (field StepInstance.assigned_to, attribute assigned_to_id)
# The copy here lets the suite run where the ERD file is not; when it is there,
# test_erd_written_out_is_erd_md checks the copy against it, and
# test_every_erd_column_exists reads the file itself.
# --------------------------------------------------------------------------------------
ERD_FILE_ENV = "ERD_FILE"
ERD_FILE_CANDIDATES = (ROOT.parent / "shared" / "ERD.md", Path("/work/shared/ERD.md"))
ERD_TABLES: dict[str, dict[str, str]] = {
    "profiles": {
        "id": "uuid",
        "full_name": "text",
        "phone": "text",
        "status": "user_status",
        "stripe_customer_id": "text",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
    "agents": {
        "id": "uuid",
        "email": "text",
        "name": "text",
        "active": "boolean",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
    "products": {
        "id": "uuid",
        "code": "text",
        "name": "text",
        "description": "text",
        "dossier_type": "dossier_type",
        "stripe_product_id": "text",
        "stripe_price_id": "text",
        "price_amount": "integer",
        "currency": "text",
        "initial_status": "dossier_status_code",
        "active": "boolean",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
    "steps": {
        "id": "uuid",
        "code": "text",
        "label": "text",
        "description": "text",
        "position": "integer",
        "created_at": "timestamptz",
    },
    "product_steps": {
        "id": "uuid",
        "product_id": "uuid",
        "step_id": "uuid",
        "position": "integer",
        "is_required": "boolean",
        "estimated_duration_hours": "integer",
        "created_at": "timestamptz",
    },
    "document_types": {
        "id": "uuid",
        "code": "text",
        "label": "text",
        "description": "text",
        "required_step_id": "uuid",
        "max_file_size_mb": "integer",
        "allowed_extensions": "text[]",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
    "payment_links": {
        "id": "uuid",
        "token": "text",
        "product_id": "uuid",
        "prospect_email": "text",
        "prospect_name": "text",
        "stripe_checkout_session_id": "text",
        "created_by": "uuid",
        "expires_at": "timestamptz",
        "used_at": "timestamptz",
        "used_by": "uuid",
        "created_at": "timestamptz",
    },
    "orders": {
        "id": "uuid",
        "user_id": "uuid",
        "product_id": "uuid",
        "payment_link_id": "uuid",
        "dossier_id": "uuid",
        "amount": "integer",
        "currency": "text",
        "status": "order_status",
        "stripe_checkout_session_id": "text",
        "stripe_payment_intent_id": "text",
        "stripe_customer_id": "text",
        "metadata": "jsonb",
        "paid_at": "timestamptz",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
    "payment_reminders": {
        "id": "uuid",
        "user_id": "uuid",
        "order_id": "uuid",
        "sent_via": "notification_channel",
        "sent_at": "timestamptz",
        "clicked_at": "timestamptz",
    },
    "dossiers": {
        "id": "uuid",
        "user_id": "uuid",
        "product_id": "uuid",
        "type": "dossier_type",
        "status": "dossier_status_code",
        "current_step_instance_id": "uuid",
        "metadata": "jsonb",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
        "completed_at": "timestamptz",
    },
    "dossier_status_history": {
        "id": "uuid",
        "dossier_id": "uuid",
        "old_status": "dossier_status_code",
        "new_status": "dossier_status_code",
        "changed_by_type": "actor_type",
        "changed_by_id": "uuid",
        "reason": "text",
        "metadata": "jsonb",
        "created_at": "timestamptz",
    },
    "step_instances": {
        "id": "uuid",
        "dossier_id": "uuid",
        "step_id": "uuid",
        "assigned_to": "uuid",
        "started_at": "timestamptz",
        "completed_at": "timestamptz",
        "metadata": "jsonb",
        "created_at": "timestamptz",
    },
    "documents": {
        "id": "uuid",
        "dossier_id": "uuid",
        "document_type_id": "uuid",
        "step_instance_id": "uuid",
        "status": "document_status",
        "current_version_id": "uuid",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
    "document_versions": {
        "id": "uuid",
        "document_id": "uuid",
        "file_url": "text",
        "file_name": "text",
        "file_size_bytes": "bigint",
        "mime_type": "text",
        "uploaded_by_type": "actor_type",
        "uploaded_by_id": "uuid",
        "version_number": "integer",
        "uploaded_at": "timestamptz",
    },
    "document_reviews": {
        "id": "uuid",
        "document_version_id": "uuid",
        "reviewer_id": "uuid",
        "status": "review_status",
        "reason": "text",
        "notes": "text",
        "reviewed_at": "timestamptz",
    },
    "messages": {
        "id": "uuid",
        "dossier_id": "uuid",
        "sender_type": "actor_type",
        "sender_id": "uuid",
        "content": "text",
        "attachments": "jsonb",
        "read_at": "timestamptz",
        "created_at": "timestamptz",
    },
    "events": {
        "id": "uuid",
        "entity_type": "text",
        "entity_id": "uuid",
        "event_type": "event_type",
        "actor_type": "actor_type",
        "actor_id": "uuid",
        "payload": "jsonb",
        "created_at": "timestamptz",
    },
    "notifications": {
        "id": "uuid",
        "user_id": "uuid",
        "dossier_id": "uuid",
        "event_id": "uuid",
        "title": "text",
        "message": "text",
        "template_code": "text",
        "payload": "jsonb",
        "action_url": "text",
        "read_at": "timestamptz",
        "created_at": "timestamptz",
    },
    "notification_deliveries": {
        "id": "uuid",
        "notification_id": "uuid",
        "channel": "notification_channel",
        "recipient": "text",
        "status": "notification_status",
        "provider": "text",
        "provider_message_id": "text",
        "provider_response": "jsonb",
        "sent_at": "timestamptz",
        "failed_at": "timestamptz",
        "created_at": "timestamptz",
    },
}

# The ERD's foreign keys: every `FK` marker of the entity definitions (which include the
# "Critical Foreign Keys" list), as (table, ERD column) -> referenced table (its `id`).
ERD_FOREIGN_KEYS: dict[tuple[str, str], str] = {
    ("product_steps", "product_id"): "products",
    ("product_steps", "step_id"): "steps",
    ("document_types", "required_step_id"): "steps",
    ("payment_links", "product_id"): "products",
    ("payment_links", "created_by"): "agents",
    ("payment_links", "used_by"): "profiles",
    ("orders", "user_id"): "profiles",
    ("orders", "product_id"): "products",
    ("orders", "payment_link_id"): "payment_links",
    ("orders", "dossier_id"): "dossiers",
    ("payment_reminders", "user_id"): "profiles",
    ("payment_reminders", "order_id"): "orders",
    ("dossiers", "user_id"): "profiles",
    ("dossiers", "product_id"): "products",
    ("dossiers", "current_step_instance_id"): "step_instances",  # cyclic: migration 0002
    ("dossier_status_history", "dossier_id"): "dossiers",
    ("step_instances", "dossier_id"): "dossiers",
    ("step_instances", "step_id"): "steps",
    ("step_instances", "assigned_to"): "agents",
    ("documents", "dossier_id"): "dossiers",
    ("documents", "document_type_id"): "document_types",
    ("documents", "step_instance_id"): "step_instances",
    ("documents", "current_version_id"): "document_versions",  # cyclic: migration 0002
    ("document_versions", "document_id"): "documents",
    ("document_reviews", "document_version_id"): "document_versions",
    ("document_reviews", "reviewer_id"): "agents",
    ("messages", "dossier_id"): "dossiers",
    ("notifications", "user_id"): "profiles",
    ("notifications", "dossier_id"): "dossiers",
    ("notifications", "event_id"): "events",
    ("notification_deliveries", "notification_id"): "notifications",
}
# The two sides of the ERD's reference cycles: plain UUID columns in the models, their
# FOREIGN KEYs added by migration 0002 on PostgreSQL only (SQLite cannot add a constraint
# to an existing table).
CYCLIC_FOREIGN_KEYS = {
    ("dossiers", "current_step_instance_id"),
    ("documents", "current_version_id"),
}

# Every `UK` marker of the ERD: a unique constraint or index on exactly that column.
ERD_UNIQUE_KEYS: list[tuple[str, str]] = [
    ("profiles", "stripe_customer_id"),
    ("agents", "email"),
    ("products", "code"),
    ("products", "stripe_product_id"),
    ("steps", "code"),
    ("document_types", "code"),
    ("payment_links", "token"),
    ("payment_links", "stripe_checkout_session_id"),
    ("orders", "stripe_checkout_session_id"),
    ("orders", "stripe_payment_intent_id"),
]

# The ERD's "Index Strategy": name -> (table, columns in our schema).
ERD_INDEXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "idx_dossiers_user_id": ("dossiers", ("user_id",)),
    "idx_dossiers_status": ("dossiers", ("status",)),
    "idx_documents_dossier_id": ("documents", ("dossier_id",)),
    "idx_documents_status": ("documents", ("status",)),
    "idx_notifications_user_id": ("notifications", ("user_id",)),
    "idx_notifications_read_at": ("notifications", ("read_at",)),
    "idx_events_entity": ("events", ("entity_type", "entity_id")),
    "idx_events_created_at": ("events", ("created_at",)),
    "idx_orders_stripe_checkout_session_id": ("orders", ("stripe_checkout_session_id",)),
    "idx_orders_stripe_payment_intent_id": ("orders", ("stripe_payment_intent_id",)),
    "idx_payment_links_token": ("payment_links", ("token",)),
    "idx_step_instances_assigned_to": ("step_instances", ("assigned_to",)),
    "idx_document_reviews_reviewer_id": ("document_reviews", ("reviewer_id",)),
    "idx_orders_status": ("orders", ("status",)),
    "idx_orders_created_at": ("orders", ("created_at",)),
}

# Beyond the ERD (DESIGN.md / the models): columns that must exist too.
EXTRA_COLUMNS: dict[str, set[str]] = {
    "credentials": {
        "id",
        "email",
        "password_hash",
        "password_changed_at",
        "profile_id",
        "agent_id",
        "created_at",
        "updated_at",
    },
    "agents": {"role", "locale"},
    "profiles": {"locale"},
    "stripe_events": {"id", "stripe_event_id", "type", "processed_at"},
    "events": {"published_at", "processed_at"},
    "notifications": {"agent_id"},
    # issue 17: archived, not deleted; which document types each step asks for
    "products": {"archived_at"},
    "steps": {"archived_at"},
    "document_types": {"archived_at"},
    "step_document_types": {"id", "step_id", "document_type_id", "position", "created_at"},
    # issue 19: the access audit, and the retention of uploaded files
    "access_events": {
        "id",
        "occurred_at",
        "kind",
        "actor_type",
        "actor_id",
        "client_id",
        "dossier_id",
        "document_id",
        "version_id",
        "ip_address",
        "user_agent",
    },
    "dossiers": {"ended_at", "retention_notified_at", "files_purged_at"},
    "document_versions": {"purged_at"},
}
EXTRA_UNIQUE_KEYS = [
    ("credentials", "email"),
    ("credentials", "profile_id"),
    ("credentials", "agent_id"),
    ("stripe_events", "stripe_event_id"),
]
EXTRA_FOREIGN_KEYS: dict[tuple[str, str], str] = {
    ("notifications", "agent_id"): "agents",
    ("credentials", "profile_id"): "profiles",
    ("credentials", "agent_id"): "agents",
    ("step_document_types", "step_id"): "steps",
    ("step_document_types", "document_type_id"): "document_types",
}

# ERD type -> the PostgreSQL `information_schema.columns.data_type` we accept.
# Enums are CharEnumFields (varchar); `text[]` is a JSON list (see DocumentType).
_ENUM_TYPES = {
    "user_status",
    "dossier_type",
    "dossier_status_code",
    "order_status",
    "notification_channel",
    "notification_status",
    "actor_type",
    "document_status",
    "review_status",
    "event_type",
}
PG_TYPES: dict[str, set[str]] = {
    "uuid": {"uuid"},
    "text": {"text", "character varying"},
    "timestamptz": {"timestamp with time zone"},
    "boolean": {"boolean"},
    "integer": {"integer"},
    "bigint": {"bigint"},
    "jsonb": {"jsonb"},
    "text[]": {"jsonb", "ARRAY"},
    **{name: {"character varying", "USER-DEFINED"} for name in _ENUM_TYPES},
}


def test_erd_tables_written_out_completely() -> None:
    """Guards the mapping above against a table or an FK/index pointing nowhere."""
    assert len(ERD_TABLES) == 19
    for (table, column), target in ERD_FOREIGN_KEYS.items():
        assert column in ERD_TABLES[table], (table, column)
        assert target in ERD_TABLES
    for table, column in ERD_UNIQUE_KEYS:
        assert column in ERD_TABLES[table], (table, column)
    for erd_type in {t for columns in ERD_TABLES.values() for t in columns.values()}:
        assert erd_type in PG_TYPES, erd_type


# --------------------------------------------------------------------------------------
# Reading /work/shared/ERD.md: the entity blocks of its mermaid `erDiagram`
# (`TABLE { type column [PK|FK|UK] ... }`) and the index names of its "Index Strategy".
# --------------------------------------------------------------------------------------
_ENTITY_START = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*\{\s*$")
_ENTITY_COLUMN = re.compile(
    r"^\s*(?P<type>[A-Za-z_][A-Za-z0-9_]*(?:\[\])?)\s+(?P<name>[a-z_][a-z0-9_]*)"
    r"(?P<keys>(?:\s+(?:PK|FK|UK)(?:\s*,\s*(?:PK|FK|UK))*)?)\s*(?:\"[^\"]*\")?\s*$"
)
_ERD_INDEX_NAME = re.compile(r"`(idx_[a-z0-9_]+)`")


class ParsedErd:
    def __init__(self, text: str) -> None:
        self.tables: dict[str, dict[str, str]] = {}
        self.keys: dict[tuple[str, str], set[str]] = {}
        table: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip().startswith("%%") or not line.strip():
                continue
            if table is None:
                start = _ENTITY_START.match(line)
                if start:
                    table = start.group(1).lower()
                    assert table not in self.tables, f"ERD.md:{number}: {table} twice"
                    self.tables[table] = {}
                continue
            if line.strip() == "}":
                table = None
                continue
            column = _ENTITY_COLUMN.match(line)
            assert column, f"ERD.md:{number}: not a column of {table}: {line.strip()!r}"
            name = column.group("name")
            assert name not in self.tables[table], f"ERD.md:{number}: {table}.{name} twice"
            self.tables[table][name] = column.group("type")
            self.keys[(table, name)] = set(re.findall(r"PK|FK|UK", column.group("keys")))
        assert table is None, f"ERD.md: the block of {table} is not closed"
        self.indexes = set(_ERD_INDEX_NAME.findall(text))

    def marked(self, key: str) -> set[tuple[str, str]]:
        return {column for column, keys in self.keys.items() if key in keys}


def _erd_file() -> Path | None:
    if os.environ.get(ERD_FILE_ENV):
        return Path(os.environ[ERD_FILE_ENV])
    return next((path for path in ERD_FILE_CANDIDATES if path.is_file()), None)


def _parsed_erd() -> ParsedErd | None:
    path = _erd_file()
    return ParsedErd(path.read_text()) if path is not None else None


def erd_tables() -> dict[str, dict[str, str]]:
    """The ERD's tables and columns: read from ERD.md when it is there, else the copy."""
    parsed = _parsed_erd()
    return parsed.tables if parsed is not None else ERD_TABLES


def test_erd_written_out_is_erd_md() -> None:
    """The copy above is the ERD: every table, column (name and type), FK and UK marker
    and index name of ERD.md, and nothing else."""
    parsed = _parsed_erd()
    if parsed is None:
        pytest.skip(f"no ERD.md (set {ERD_FILE_ENV}, or see ERD_FILE_CANDIDATES)")
    assert len(parsed.tables) == 19, sorted(parsed.tables)
    assert parsed.tables == ERD_TABLES, "ERD_TABLES differs from ERD.md: update the copy"
    assert parsed.marked("FK") == set(ERD_FOREIGN_KEYS)
    assert parsed.marked("UK") == set(ERD_UNIQUE_KEYS)
    assert parsed.marked("PK") == {(table, "id") for table in ERD_TABLES}
    assert parsed.indexes == set(ERD_INDEXES)


def test_erd_parser_reads_what_it_is_given() -> None:
    """The parser fails loudly on a line it cannot read, instead of skipping a column."""
    parsed = ParsedErd(
        "erDiagram\n  A ||--o{ B : x\n  B {\n    uuid id PK\n    text[] tags\n"
        '    uuid a_id FK "the a"\n    text code UK\n  }\n- `idx_b_code`\n'
    )
    assert parsed.tables == {"b": {"id": "uuid", "tags": "text[]", "a_id": "uuid", "code": "text"}}
    assert parsed.marked("FK") == {("b", "a_id")}
    assert parsed.indexes == {"idx_b_code"}
    with pytest.raises(AssertionError, match="not a column"):
        ParsedErd("B {\n  uuid id PK\n  uuid\n}\n")


# --------------------------------------------------------------------------------------
# Reading the live schema through the ORM connection (PostgreSQL catalogue or SQLite
# pragmas), normalised to plain Python structures.
# --------------------------------------------------------------------------------------


async def _query(sql: str) -> list[dict[str, Any]]:
    return await get_connection("default").execute_query_dict(sql)


async def _tables(backend) -> set[str]:
    if backend.is_postgres:
        rows = await _query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    else:
        rows = await _query(
            "SELECT name AS table_name FROM sqlite_master "
            "WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    return {row["table_name"] for row in rows}


async def _columns(backend) -> dict[str, dict[str, str]]:
    """table -> {column: data type}."""
    result: dict[str, dict[str, str]] = {}
    if backend.is_postgres:
        rows = await _query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    else:
        rows = []
        for table in await _tables(backend):
            rows += [
                {"table_name": table, "column_name": row["name"], "data_type": row["type"]}
                for row in await _query(f"SELECT name, type FROM pragma_table_info('{table}')")
            ]
    for row in rows:
        result.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    return result


async def _foreign_keys(backend) -> dict[tuple[str, str], dict[str, Any]]:
    """(table, column) -> {ref_table, ref_column, ...} for every single-column FK."""
    result: dict[tuple[str, str], dict[str, Any]] = {}
    if backend.is_postgres:
        rows = await _query(
            """
            SELECT t.relname AS table_name, a.attname AS column_name,
                   rt.relname AS ref_table, ra.attname AS ref_column,
                   c.conname AS name, c.condeferrable AS deferrable,
                   c.confdeltype::text AS on_delete
            FROM pg_constraint c
            JOIN pg_class t ON t.oid = c.conrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            JOIN pg_class rt ON rt.oid = c.confrelid
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]
            WHERE c.contype = 'f' AND n.nspname = 'public'
              AND cardinality(c.conkey) = 1
            """
        )
    else:
        rows = []
        for table in await _tables(backend):
            fks = await _query(f"SELECT * FROM pragma_foreign_key_list('{table}')")
            rows += [
                {
                    "table_name": table,
                    "column_name": fk["from"],
                    "ref_table": fk["table"],
                    "ref_column": fk["to"],
                }
                for fk in fks
            ]
    for row in rows:
        result[(row["table_name"], row["column_name"])] = row
    return result


async def _indexes(backend) -> list[dict[str, Any]]:
    """Every full (non-partial) index: {table, name, unique, columns (tuple, in order)}.

    On PostgreSQL a UNIQUE constraint is always backed by a unique index of its own, so
    this list covers unique constraints and unique indexes alike.
    """
    if backend.is_postgres:
        rows = await _query(
            """
            SELECT t.relname AS table_name, i.relname AS index_name,
                   ix.indisunique AS is_unique,
                   array_agg(a.attname::text ORDER BY k.n) AS columns
            FROM pg_index ix
            JOIN pg_class i ON i.oid = ix.indexrelid
            JOIN pg_class t ON t.oid = ix.indrelid
            JOIN pg_namespace ns ON ns.oid = t.relnamespace
            JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) ON true
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
            WHERE ns.nspname = 'public' AND ix.indpred IS NULL AND ix.indexprs IS NULL
            GROUP BY t.relname, i.relname, ix.indisunique
            """
        )
        return [
            {
                "table": row["table_name"],
                "name": row["index_name"],
                "unique": bool(row["is_unique"]),
                "columns": tuple(row["columns"]),
            }
            for row in rows
        ]
    indexes = []
    for table in await _tables(backend):
        for index in await _query(f"SELECT * FROM pragma_index_list('{table}')"):
            if index["partial"]:
                continue
            info = await _query(
                f"SELECT seqno, name FROM pragma_index_info('{index['name']}') ORDER BY seqno"
            )
            indexes.append(
                {
                    "table": table,
                    "name": index["name"],
                    "unique": bool(index["unique"]),
                    "columns": tuple(row["name"] for row in info),
                }
            )
    return indexes


def _has_unique(indexes: list[dict[str, Any]], table: str, columns: tuple[str, ...]) -> bool:
    return any(i["table"] == table and i["unique"] and i["columns"] == columns for i in indexes)


# --------------------------------------------------------------------------------------
# The schema file and the migrations.
# --------------------------------------------------------------------------------------


def test_schema_graphql_is_current() -> None:
    from app.cli import SCHEMA_FILE, schema_sdl

    committed = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    assert committed == schema_sdl(), (
        "schema.graphql is stale: run `python -m app export-schema` and commit the result"
    )


def _column_echo(old_state: Any, operation: Any) -> bool:
    """An AlterField that Tortoise 1.1's autodetector reports, forever, for a foreign key
    with a column name of its own (`source_field=`): it compares the migration state's
    field, whose `source_field` is the column (`created_by`), with the model's, whose
    `source_field` became the `<field>_id` attribute when the model was initialised.
    Nothing else differs, and the state's column is the model's (the real column, checked
    on the live database below), so there is nothing to migrate."""
    if not isinstance(operation, AlterField):
        return False
    if not isinstance(operation.field, ForeignKeyFieldInstance):
        return False
    model = Tortoise.apps["models"][operation.model_name]
    key = model._meta.fields_map[operation.name].source_field  # `<field>_id`
    column = model._meta.fields_db_projection[key]
    old_field = old_state.models[("models", operation.model_name)].fields[operation.name]
    old, new = _field_signature(old_field), _field_signature(operation.field)
    differ = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    return differ <= {"raw_field", "db_column"} and old_field.source_field == column != key


async def test_migrations_match_the_models(database_url: str) -> None:
    """What `tortoise makemigrations` (`make migrations`) would write: nothing (but the
    autodetector's echo of the ERD-named foreign-key columns, see _column_echo)."""
    from tortoise.migrations.autodetector import MigrationAutodetector

    from app.db import tortoise_config

    apps_config = tortoise_config(database_url)["apps"]
    assert apps_config["models"]["migrations"] == "app.models.migrations"
    assert Tortoise.apps, "the ORM is not initialised"
    # The same call as tortoise/cli/cli.py `makemigrations`, on the app's own models; it
    # replays the migration files in memory and diffs them with the models (no database).
    detector = MigrationAutodetector(Tortoise.apps, apps_config)
    writers = await detector.changes()
    operations = [op for writer in writers for op in writer.operations]
    old_state = await detector._project_state() if operations else None
    pending = [op.describe() for op in operations if not _column_echo(old_state, op)]
    assert not pending, (
        "the models and app/models/migrations/ have drifted: run `make migrations`, review "
        f"and commit the new migration. Pending: {'; '.join(pending)}"
    )


# --------------------------------------------------------------------------------------
# The live schema of the run's database (built from the migration files) against the ERD.
# --------------------------------------------------------------------------------------


async def test_every_erd_column_exists(backend) -> None:
    """Every column of every ERD table, under the ERD's name (ERD.md itself when it is
    there): a column missing or named otherwise fails."""
    columns = await _columns(backend)
    problems = []
    for table, erd_columns in erd_tables().items():
        live = columns.get(table)
        if live is None:
            problems.append(f"{table}: no such table")
            continue
        for column in erd_columns:
            if column in live:
                continue
            # A near miss names the column the database has instead (e.g. Tortoise's
            # `<field>_id` for a foreign key whose ERD name has no suffix).
            stem = column.removesuffix("_id")
            near = sorted(c for c in live if c != column and c.removesuffix("_id") == stem)
            problems.append(f"{table}.{column}" + (f" (the database has {near})" if near else ""))
    problems += [
        f"{table}.{column}"
        for table, extra in EXTRA_COLUMNS.items()
        for column in sorted(extra)
        if column not in columns.get(table, {})
    ]
    assert not problems, f"ERD columns missing from the migrated database: {problems}"
    # The foreign keys whose ERD name has no `_id` suffix have no `<name>_id` column left.
    leftovers = [
        f"{table}.{column}_id"
        for (table, column) in ERD_FOREIGN_KEYS
        if not column.endswith("_id") and f"{column}_id" in columns[table]
    ]
    assert not leftovers, f"columns the ERD names without `_id`: {leftovers}"


@pytest.mark.postgres
async def test_erd_column_types(backend) -> None:
    columns = await _columns(backend)
    wrong = {}
    for table, erd_columns in ERD_TABLES.items():
        for column, erd_type in erd_columns.items():
            actual = columns.get(table, {}).get(column)
            if actual not in PG_TYPES[erd_type]:
                wrong[f"{table}.{column}"] = (erd_type, actual)
    assert not wrong, f"columns whose type does not match the ERD (ERD, database): {wrong}"
    # Timezone-aware everywhere, including the columns beyond the ERD.
    naive = [
        f"{table}.{column}"
        for table, table_columns in columns.items()
        for column, data_type in table_columns.items()
        if data_type == "timestamp without time zone"
    ]
    assert not naive, f"timestamp columns without a time zone: {naive}"


async def test_every_erd_foreign_key_exists(backend) -> None:
    foreign_keys = await _foreign_keys(backend)
    expected = {**ERD_FOREIGN_KEYS, **EXTRA_FOREIGN_KEYS}
    problems = []
    for (table, column), target in expected.items():
        if not backend.is_postgres and (table, column) in CYCLIC_FOREIGN_KEYS:
            continue  # PostgreSQL only, see CYCLIC_FOREIGN_KEYS
        fk = foreign_keys.get((table, column))
        if fk is None:
            problems.append(f"{table}.{column} -> {target}.id: missing")
        elif (fk["ref_table"], fk["ref_column"]) != (target, "id"):
            problems.append(
                f"{table}.{column} -> {target}.id: points to {fk['ref_table']}.{fk['ref_column']}"
            )
    assert not problems, f"foreign keys: {problems}"


@pytest.mark.postgres
async def test_cyclic_foreign_keys_are_deferrable(backend) -> None:
    """Migration 0002's constraints: a dossier and its current step (a document and its
    current version) are written in one transaction, in either order."""
    foreign_keys = await _foreign_keys(backend)
    for key in sorted(CYCLIC_FOREIGN_KEYS):
        fk = foreign_keys[key]
        assert fk["deferrable"] is True, fk
        assert fk["on_delete"] == "n", fk  # SET NULL


async def test_every_erd_unique_key_exists(backend) -> None:
    indexes = await _indexes(backend)
    missing = [
        f"{table}.{column}"
        for table, column in ERD_UNIQUE_KEYS + EXTRA_UNIQUE_KEYS
        if not _has_unique(indexes, table, (column,))
    ]
    assert not missing, f"no unique constraint or index on exactly: {missing}"


async def test_every_erd_index_exists(backend) -> None:
    indexes = await _indexes(backend)
    by_name = {index["name"]: index for index in indexes}
    problems = []
    for name, (table, columns) in ERD_INDEXES.items():
        index = by_name.get(name)
        if index is not None:
            if (index["table"], index["columns"]) != (table, columns):
                problems.append(f"{name}: on {index['table']}{index['columns']}")
        # A column that already has a unique index needs no second, plain index.
        elif not _has_unique(indexes, table, columns):
            problems.append(f"{name}: no index named so, nor a unique index on {table}{columns}")
    assert not problems, f"ERD indexes: {problems}"


# Foreign-key columns that need no index of their own (none leads one): each with why.
# Every other foreign-key column of every table leads some index, the primary key or a
# unique constraint, so that a join or a lookup from the parent (and the parent's
# DELETE, which checks or cascades to the referencing rows) reads an index, not the table.
FOREIGN_KEYS_WITHOUT_INDEX: dict[tuple[str, str], str] = {
    ("product_steps", "step_id"): (
        "the catalogue: a few rows per product, read by product (the unique key "
        "(product_id, step_id) leads with product_id); a step is never deleted while a "
        "product uses it (RESTRICT), so the check reads a tiny table"
    ),
    ("payment_links", "created_by"): (
        "nothing looks links up by their creator, and agents are deactivated, never "
        "deleted (no code path deletes one), so the ON DELETE SET NULL never runs"
    ),
}


async def test_every_foreign_key_leads_an_index(backend) -> None:
    """Issue 14 ("years of data"): every foreign-key column of every table (not only the
    ERD's) is the leading column of an index, the primary key or a unique constraint,
    but for FOREIGN_KEYS_WITHOUT_INDEX."""
    foreign_keys = await _foreign_keys(backend)
    leading = {(index["table"], index["columns"][0]) for index in await _indexes(backend)}
    missing = sorted(
        f"{table}.{column}"
        for table, column in foreign_keys
        if (table, column) not in leading and (table, column) not in FOREIGN_KEYS_WITHOUT_INDEX
    )
    assert not missing, f"foreign-key columns that lead no index: {missing}"
    # The allow-list stays honest: its entries are foreign keys, and still lead no index.
    stale = sorted(
        f"{table}.{column}"
        for table, column in FOREIGN_KEYS_WITHOUT_INDEX
        if (table, column) in leading
        or ((table, column) not in foreign_keys and (table, column) not in CYCLIC_FOREIGN_KEYS)
    )
    assert not stale, f"FOREIGN_KEYS_WITHOUT_INDEX entries to remove: {stale}"


# The hot paths' indexes (migrations 0007, 0009, 0011, 0012, 0015):
# name -> (table, columns, WHERE condition).
HOT_PATH_INDEXES: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    # the agents' desk (issue 19): a dossier's notes page, the tag filter and the tags in
    # use, an owner's dossiers (filters ownerId / ownedByMe, the workload's counts)
    "idx_dossier_notes_dossier": ("dossier_notes", ("dossier_id", "created_at", "id"), None),
    "idx_dossier_tags_name": ("dossier_tags", ("name", "dossier_id"), None),
    "idx_dossiers_owner": ("dossiers", ("owner_id", "created_at", "id"), None),
    "idx_events_unprocessed": ("events", ("created_at", "id"), "processed_at IS NULL"),
    "idx_events_type_created": ("events", ("event_type", "created_at", "id"), None),
    # accounts (issue 15): mySessions and "end every session", the housekeeping pass,
    # a reset code's latest token
    "idx_sessions_credential": ("sessions", ("credential_id", "created_at", "id"), None),
    "idx_sessions_expires": ("sessions", ("expires_at",), None),
    "idx_account_tokens_owner": (
        "account_tokens",
        ("credential_id", "purpose", "created_at"),
        None,
    ),
    "idx_account_tokens_expires": ("account_tokens", ("expires_at",), None),
    "idx_notifications_user_created": ("notifications", ("user_id", "created_at", "id"), None),
    "idx_notifications_agent_created": ("notifications", ("agent_id", "created_at", "id"), None),
    "idx_step_instances_open_due": ("step_instances", ("due_at",), "completed_at IS NULL"),
    "idx_payment_reminders_unsent_due": (
        "payment_reminders",
        ("scheduled_for", "id"),
        "sent_at IS NULL AND cancelled_at IS NULL",
    ),
    "idx_document_versions_awaiting": (
        "document_versions",
        ("uploaded_at", "id"),
        "awaiting_review_since IS NOT NULL",
    ),
    "idx_dossiers_created": ("dossiers", ("created_at", "id"), None),
    "idx_messages_dossier_order": ("messages", ("dossier_id", "created_at", "id"), None),
    "idx_notifications_user_unread": (
        "notifications",
        ("user_id", "created_at", "id"),
        "read_at IS NULL",
    ),
    "idx_notifications_agent_unread": (
        "notifications",
        ("agent_id", "created_at", "id"),
        "read_at IS NULL",
    ),
    "idx_step_instances_assigned_open": (
        "step_instances",
        ("assigned_to", "due_at", "id"),
        "completed_at IS NULL",
    ),
    "idx_messages_unread": ("messages", ("dossier_id", "sender_type"), "read_at IS NULL"),
    "idx_step_instances_running_due": (
        "step_instances",
        ("due_at", "id"),
        "completed_at IS NULL AND stopped_at IS NULL",
    ),
    # issue 19 (0026): the data-export worker (what to build, what to expire), the file
    # deletions it retries, and what an erasure finds its client's rows by
    "idx_data_exports_profile": ("data_exports", ("profile_id", "created_at"), None),
    "idx_data_exports_due": ("data_exports", ("status", "created_at"), None),
    "idx_data_exports_expiring": ("data_exports", ("status", "expires_at"), None),
    "idx_file_deletions_due": ("file_deletions", ("next_attempt_at",), None),
    "idx_events_actor_id": ("events", ("actor_id",), None),
    "idx_deliveries_recipient": ("notification_deliveries", ("recipient",), None),
    # issue 20 (0029): a Twilio status callback finds its delivery by MessageSid; a
    # failover's link to the delivery it replaces
    "idx_deliveries_provider_message_id": (
        "notification_deliveries",
        ("provider_message_id",),
        None,
    ),
    "idx_deliveries_failover_of": ("notification_deliveries", ("failover_of_id",), None),
    "idx_payment_links_prospect_email": ("payment_links", ("prospect_email",), None),
    # issue 20 (0028): an inbound SMS/WhatsApp finds its sender by number; the admins'
    # list of inbound messages by outcome, newest first
    "idx_profiles_phone": ("profiles", ("phone",), None),
    "idx_inbound_outcome": ("inbound_messages", ("outcome", "created_at", "id"), None),
    "idx_inbound_profile_id": ("inbound_messages", ("profile_id",), None),
    "idx_inbound_dossier_id": ("inbound_messages", ("dossier_id",), None),
    "idx_inbound_message_id": ("inbound_messages", ("message_id",), None),
    # issue 17: a payment looks for the Stripe events still waiting for it (0015)
    "idx_stripe_deferred_events_pending_intent": (
        "stripe_deferred_events",
        ("payment_intent_id",),
        "applied_at IS NULL",
    ),
    # issue 19: the admins' reports range over these times (0024)
    "idx_payment_links_created_at": ("payment_links", ("created_at",), None),
    "idx_orders_paid_at": ("orders", ("paid_at",), None),
    "idx_refunds_created_at": ("refunds", ("created_at",), None),
    "idx_step_instances_completed_at": ("step_instances", ("completed_at",), None),
    "idx_dossiers_completed_at": ("dossiers", ("completed_at",), None),
    "idx_document_reviews_reviewed_at": ("document_reviews", ("reviewed_at",), None),
}


async def test_hot_path_indexes_exist(backend) -> None:
    """Each on its columns, in order, partial where it says so (read from the index's
    definition: pg_indexes on PostgreSQL, sqlite_master on SQLite)."""
    names = ", ".join(f"'{name}'" for name in HOT_PATH_INDEXES)
    if backend.is_postgres:
        sql = (
            "SELECT indexname AS name, indexdef AS sql FROM pg_indexes "
            f"WHERE indexname IN ({names})"
        )
    else:
        sql = f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN ({names})"
    definitions = {row["name"]: row["sql"] for row in await _query(sql)}
    problems = []
    for name, (table, columns, where) in HOT_PATH_INDEXES.items():
        definition = definitions.get(name)
        if definition is None:
            problems.append(f"{name}: missing")
            continue
        normalised = re.sub(r'["()]', "", definition)
        expected = f"ON {'public.' if backend.is_postgres else ''}{table} "
        expected += ("USING btree " if backend.is_postgres else "") + ", ".join(columns)
        if expected not in normalised:
            problems.append(f"{name}: {definition}")
        found_where = normalised.partition(" WHERE ")[2].strip() or None
        if found_where != where:
            problems.append(f"{name}: WHERE {found_where!r}, expected {where!r}")
    assert not problems, f"hot-path indexes: {problems}"


SEARCH_INDEXES = {  # issue 19 (migrations 0022, 0027): what app/services/search.py queries
    "idx_profiles_search_folded": "gin (full_name_folded gin_trgm_ops)",
    "idx_profiles_search_phone": (
        "gin (regexp_replace(phone, '[^0-9]'::text, ''::text, 'g'::text) gin_trgm_ops)"
    ),
    "idx_credentials_search_email": "gin (email gin_trgm_ops) WHERE (profile_id IS NOT NULL)",
}


async def test_case_numbers_are_unique_and_search_is_indexed(backend) -> None:
    """A dossier's case number has a unique index (the lookup of every reference given for
    an id); search has its GIN trigram indexes on PostgreSQL and its FTS5 table on SQLite."""
    assert _has_unique(await _indexes(backend), "dossiers", ("reference",))
    if backend.is_postgres:
        names = ", ".join(f"'{name}'" for name in SEARCH_INDEXES)
        rows = await _query(
            "SELECT indexname AS name, indexdef AS sql FROM pg_indexes "
            f"WHERE indexname IN ({names})"
        )
        found = {row["name"]: row["sql"].partition(" USING ")[2] for row in rows}
        assert found == SEARCH_INDEXES
        # the folded name is stored, written by the database itself whoever writes full_name
        rows = await _query(
            "SELECT is_generated, generation_expression FROM information_schema.columns "
            "WHERE table_name = 'profiles' AND column_name = 'full_name_folded'"
        )
        assert [(r["is_generated"], r["generation_expression"]) for r in rows] == [
            ("ALWAYS", "f_unaccent(lower(full_name))")
        ]
        gone = await _query("SELECT 1 FROM pg_indexes WHERE indexname = 'idx_profiles_search_name'")
        assert not gone, "0027 replaces the expression index of 0022"
    else:
        rows = await _query("SELECT sql FROM sqlite_master WHERE name = 'profile_search'")
        assert "fts5" in rows[0]["sql"], rows
        assert "trigram" in rows[0]["sql"], rows


# --------------------------------------------------------------------------------------
# Migrating a brand-new database, twice.
# --------------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
async def fresh_database_url(backend, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the run's backend, not the run's database; dropped after."""
    if not backend.is_postgres:
        yield f"sqlite://{tmp_path / 'fresh.sqlite3'}"
        return
    import asyncpg

    name = f"test_fresh_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(backend.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(backend.admin_url, name)
    finally:
        admin = await asyncpg.connect(backend.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _fetch(url: str, sql: str) -> list[dict[str, Any]]:
    """Read a database that is not the ORM's (asyncpg or sqlite3 directly)."""
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


async def _migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    """`python -m app migrate` (app.cli.run_migrations) in a process of its own, so that
    closing its Tortoise connections leaves this run's ORM alone."""
    env = {**os.environ, "ENV": "test", "DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "migrate",
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
    result = subprocess.CompletedProcess(["migrate"], proc.returncode, out.decode(), err.decode())
    assert result.returncode == 0, f"migrate failed:\n{result.stdout}\n{result.stderr}"
    return result


async def test_migrating_a_new_database_works_and_is_idempotent(
    backend, fresh_database_url: str
) -> None:
    migration_files = sorted(
        path.stem for path in MIGRATIONS_DIR.glob("*.py") if re.match(r"^\d{4}_", path.name)
    )
    assert migration_files[:2] == ["0001_initial", "0002_cyclic_foreign_keys"]

    first = await _migrate(fresh_database_url)
    assert re.findall(r"^applied models\.(\S+)$", first.stdout, re.M) == migration_files

    applied_sql = 'SELECT app, name FROM "tortoise_migrations" ORDER BY name'
    applied = await _fetch(fresh_database_url, applied_sql)
    assert [(row["app"], row["name"]) for row in applied] == [
        ("models", name) for name in migration_files
    ]
    if backend.is_postgres:
        tables_sql = (
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    else:
        tables_sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    tables = {row["name"] for row in await _fetch(fresh_database_url, tables_sql)}
    assert set(ERD_TABLES) | {"credentials", "stripe_events"} <= tables
    if backend.is_postgres:  # the step that runs on PostgreSQL only did run
        constraints = await _fetch(
            fresh_database_url, "SELECT conname FROM pg_constraint WHERE contype = 'f'"
        )
        names = {row["conname"] for row in constraints}
        assert {"fk_dossiers_current_step_instance", "fk_documents_current_version"} <= names

    second = await _migrate(fresh_database_url)
    assert "applied" not in second.stdout, second.stdout
    assert await _fetch(fresh_database_url, applied_sql) == applied
