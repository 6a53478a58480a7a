"""`python -m app …`: serve, migrate, seed, create-admin, export-schema, config-docs, worker,
retention.

Each command imports what it needs when it runs (`migrate` never builds the schema, `serve`
leaves the app to uvicorn)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from app.settings import get_settings

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite://") and ":memory:" not in url:
        Path(url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)


async def run_migrations(database_url: str | None = None, *, quiet: bool = False) -> None:
    from tortoise import Tortoise
    from tortoise.migrations.api.migrate import migrate

    from app.db import tortoise_config

    url = database_url or get_settings().database_url
    _ensure_sqlite_dir(url)

    def progress(event: str, app_label: str, name: str) -> None:
        if not quiet and event == "apply_done":
            print(f"applied {app_label}.{name}")

    try:
        await migrate(config=tortoise_config(url), progress=progress)
    finally:
        await Tortoise.close_connections()


def schema_sdl() -> str:
    from app.api import schema

    return str(schema) + "\n"


def _config_docs(*, check: bool) -> int:
    from app.config_docs import CONFIGURATION_FILE, render, undocumented

    if missing := undocumented():
        print(f"settings without a docstring or section: {', '.join(missing)}", file=sys.stderr)
        return 1
    text = render()
    if check:
        current = CONFIGURATION_FILE.read_text() if CONFIGURATION_FILE.exists() else ""
        if current != text:
            print(
                "docs/configuration.md is stale: run `python -m app config-docs`", file=sys.stderr
            )
            return 1
        print("docs/configuration.md is current")
        return 0
    CONFIGURATION_FILE.parent.mkdir(exist_ok=True)
    CONFIGURATION_FILE.write_text(text)
    print(f"wrote {CONFIGURATION_FILE}")
    return 0


async def _with_db(coro_factory):
    from app.db import database

    async with database():
        return await coro_factory()


async def _retention(*, dry_run: bool, within: int) -> int:
    from app.services import retention

    settings = get_settings()
    if not settings.document_retention_days:
        print("DOCUMENT_RETENTION_DAYS=0: uploaded files are kept forever")
        return 0
    if dry_run:
        rows = await retention.due_files(within_days=within)
        print("dossier\treference\tversion\tfile_size_bytes\tdue_at\tfile_name")
        for row in rows:
            print(
                f"{row.dossier_id}\t{row.reference}\t{row.version_id}\t{row.file_size_bytes}\t"
                f"{row.due_at.isoformat()}\t{row.file_name}"
            )
        total = sum(r.file_size_bytes for r in rows)
        print(f"{len(rows)} file(s), {total} bytes, would be deleted (dry run: nothing changed)")
        return 0
    from app.consumers import install_consumers

    install_consumers()  # the notices' notifications are made at once (else by the relay)
    report = await retention.run_pass()
    print(
        f"{report.noticed} client(s) told; {report.purged_files} file(s), "
        f"{report.purged_bytes} bytes, of {report.purged_dossiers} dossier(s) deleted"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web server (uvicorn)")
    serve.add_argument("--host", default=None, help="default: HOST, else 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: PORT, else 8000")
    serve.add_argument("--workers", type=int, default=1)
    sub.add_parser("migrate", help="apply the database migrations")
    sub.add_parser("seed", help="create the demo world (idempotent)")
    admin = sub.add_parser("create-admin", help="create (or promote) an administrator")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    admin.add_argument("--name", default="Administrator")
    export = sub.add_parser("export-schema", help="write schema.graphql")
    export.add_argument("--check", action="store_true", help="fail if schema.graphql is stale")
    sub.add_parser("worker", help="run the background worker")
    config_docs = sub.add_parser("config-docs", help="write docs/configuration.md")
    config_docs.add_argument(
        "--check", action="store_true", help="fail if docs/configuration.md is stale"
    )
    retention = sub.add_parser(
        "retention", help="run one retention pass (uploaded files of ended dossiers)"
    )
    retention.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
    )
    retention.add_argument(
        "--within", type=int, default=0, metavar="DAYS", help="dry run: what goes within DAYS"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    from app import logs

    logs.configure(settings.log_level, settings.log_format_used)  # LOG_FORMAT: json | text

    if args.command == "serve":
        import uvicorn

        if args.host is not None or args.port is not None:
            # The app (imported by uvicorn, in each worker) reads HOST and PORT: the links it
            # hands out follow the address it listens on.
            os.environ["HOST"] = args.host if args.host is not None else settings.host
            os.environ["PORT"] = str(args.port if args.port is not None else settings.port)
            get_settings.cache_clear()
            settings = get_settings()

        _ensure_sqlite_dir(settings.database_url)
        uvicorn.run(
            "app.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            timeout_graceful_shutdown=10,
            proxy_headers=True,
            # Live-update frames are small JSON: compressing each one cost ~30 % of a
            # delivery's CPU (bench/RESULTS.md) and a deflate context per open socket.
            ws_per_message_deflate=False,
            # uvicorn's loggers and ours in LOG_FORMAT, in every process it starts
            log_config=logs.uvicorn_log_config(settings.log_level, settings.log_format_used),
        )
        return 0
    if args.command == "migrate":
        asyncio.run(run_migrations())
        return 0
    if args.command == "seed":
        from app.seed import DEMO_PASSWORD, seed

        asyncio.run(_with_db(seed))
        print(
            f"demo data ready: admin@demo.test, agent@demo.test, client@demo.test / {DEMO_PASSWORD}"
        )
        return 0
    if args.command == "create-admin":
        from app.errors import DomainError
        from app.services.identity import ensure_admin

        try:
            agent, created = asyncio.run(
                _with_db(lambda: ensure_admin(args.email, args.password, args.name))
            )
        except DomainError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        print(f"{'created' if created else 'promoted'} admin {agent.email} ({agent.id})")
        return 0
    if args.command == "export-schema":
        sdl = schema_sdl()
        if args.check:
            current = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
            if current != sdl:
                print("schema.graphql is stale: run `python -m app export-schema`", file=sys.stderr)
                return 1
            print("schema.graphql is current")
            return 0
        SCHEMA_FILE.write_text(sdl)
        print(f"wrote {SCHEMA_FILE}")
        return 0
    if args.command == "config-docs":
        return _config_docs(check=args.check)
    if args.command == "retention":
        return asyncio.run(_with_db(lambda: _retention(dry_run=args.dry_run, within=args.within)))
    if args.command == "worker":
        from app.worker import run_worker

        asyncio.run(run_worker())
        return 0
    return 2
