"""Tortoise configuration and the database lifecycle."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from tortoise import Tortoise

from app.settings import get_settings


def tortoise_config(database_url: str | None = None) -> dict[str, Any]:
    url = database_url or get_settings().database_url
    return {
        "connections": {"default": url},
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


def is_postgres() -> bool:
    from tortoise.connection import get_connection

    return get_connection("default").capabilities.dialect == "postgres"
