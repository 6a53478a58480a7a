"""Migration 0021 makes documents.document_type_id nullable (documents requested on the
fly without a type) in place: on a database with documents and their versions, every row
stays (a SQLite table rebuild would have cascaded the versions away with the old table),
and so do the table's indexes. Run in a child process on a scratch database (migrating
re-initialises the ORM, which the suite's own connection must keep)."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import BACKEND
from tests.migration_support import postgres_scratch, run_script, sqlite_scratch

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from datetime import UTC, datetime
    from tortoise import Tortoise, connections
    from tortoise.migrations.api.migrate import migrate
    from app.db import tortoise_config

    URL = sys.argv[1]

    async def main():
        await migrate(config=tortoise_config(URL), target="models.0017_refunds")
        await Tortoise.close_connections()
        await Tortoise.init(config=tortoise_config(URL))
        db = connections.get("default")
        postgres = db.capabilities.dialect == "postgres"
        mark = (lambda n: f"${n}") if postgres else (lambda n: "?")

        async def insert(table, **values):
            marks = ", ".join(mark(i) for i in range(1, len(values) + 1))
            await db.execute_query(
                f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})", list(values.values())
            )

        now = datetime.now(UTC)
        ids = {k: str(uuid.uuid4()) for k in ("p", "pr", "d", "t", "doc", "v")}
        stamps = {"created_at": now, "updated_at": now}
        await insert("profiles", id=ids["p"], full_name="Old", status="ACTIVE", locale="fr",
                     **stamps)
        await insert("products", id=ids["pr"], code="OLD", name="Old", dossier_type="OTHER",
                     price_amount=1, currency="eur", active=True, initial_status="CREATED",
                     **stamps)
        await insert("dossiers", id=ids["d"], type="OTHER", status="IN_PROGRESS", metadata="{}",
                     product_id=ids["pr"], user_id=ids["p"], **stamps)
        await insert("document_types", id=ids["t"], code="T", label="Passport",
                     max_file_size_mb=5, allowed_extensions='["pdf"]', **stamps)
        await insert("documents", id=ids["doc"], dossier_id=ids["d"], document_type_id=ids["t"],
                     status="UPLOADED", **stamps)
        await insert("document_versions", id=ids["v"], document_id=ids["doc"], file_url="k",
                     file_name="f.pdf", file_size_bytes=1, mime_type="application/pdf",
                     uploaded_by_type="USER", version_number=1, uploaded_at=now)
        await Tortoise.close_connections()
        await migrate(config=tortoise_config(URL))
        await Tortoise.close_connections()
        await Tortoise.init(config=tortoise_config(URL))
        from app.models import Document, DocumentVersion
        versions = await DocumentVersion.all().count()
        document = await Document.get(id=ids["doc"])
        ad_hoc = await Document.create(dossier_id=ids["d"], document_type_id=None, label="Extra",
                                       allowed_extensions=["pdf"], max_file_size_mb=2)
        if postgres:
            sql = "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'documents'"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents'"
        names = {r["name"] for r in await connections.get("default").execute_query_dict(sql)}
        print(versions, document.document_type_id == uuid.UUID(ids["t"]),
              ad_hoc.document_type_id is None, "idx_documents_status" in names,
              "idx_documents_step_instance_id" in names)
        await Tortoise.close_connections()

    asyncio.run(main())
    """
)


def _check(url: str) -> None:
    assert run_script(SCRIPT, url) == ["1", "True", "True", "True", "True"]


def test_sqlite_documents_and_versions_survive_the_nullable_type():
    _check(sqlite_scratch("requests-"))


@pytest.mark.skipif(not BACKEND.is_postgres, reason="PostgreSQL is not running")
async def test_postgres_documents_and_versions_survive_the_nullable_type():
    async with postgres_scratch("test_requests_") as url:
        _check(url)
