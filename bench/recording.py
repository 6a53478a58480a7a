"""The ORM's statements, recorded with their parameters, and what PostgreSQL plans for
them: shared by `make bench-scale` (bench/scale_driver.py) and the plan test
(tests/test_query_plans.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

Statement = tuple[str, list[Any]]
READS = (
    "SELECT",
    "WITH",
    "UPDATE",
    "DELETE",
)  # what a plan can be asked for (INSERT … VALUES reads nothing)


class Recorder(logging.Handler):
    """The ORM logs each statement as ("%s: %s", sql, parameters)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[Statement] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s: %s" and isinstance(record.args, tuple) and len(record.args) == 2:
            sql, values = record.args
            self.statements.append((str(sql), list(values or [])))


@contextmanager
def listening(handler: logging.Handler) -> Iterator[None]:
    """`handler` hears every statement the ORM sends inside the block (Tortoise logs each
    at DEBUG on `tortoise.db_client`)."""
    logger = logging.getLogger("tortoise.db_client")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@contextmanager
def recorded() -> Iterator[list[Statement]]:
    """The statements the ORM sends inside the block, with their parameters."""
    recorder = Recorder()
    with listening(recorder):
        yield recorder.statements


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A JSON plan's nodes, depth first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def explained(
    statements: list[Statement], options: str
) -> AsyncIterator[tuple[Statement, Any]]:
    """`EXPLAIN (options)` of each statement that reads, run in a transaction that is rolled
    back (ANALYZE executes it). A write that cannot happen twice (its key is taken now) is
    passed over: the reads around it are what the plans are for."""
    from tortoise import connections

    client = connections.get("default")
    for sql, values in statements:
        if not sql.lstrip().upper().startswith(READS):
            continue
        async with client.acquire_connection() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                result = await connection.fetch(f"EXPLAIN ({options}) {sql}", *values)
            except asyncpg.PostgresError:
                continue
            finally:
                await transaction.rollback()
        yield (sql, values), result
