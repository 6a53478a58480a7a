"""Test helpers: the gql() call and SQL statement counting."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

import httpx

from app.services.catalogue_bounds import CACHE_REFRESH
from bench.recording import listening


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    expect_errors: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST a GraphQL operation. Returns `data`, asserting there are no top-level errors;
    with expect_errors=True returns the whole body and asserts there are some."""
    all_headers = {"content-type": "application/json", **(headers or {})}
    if token:
        all_headers["authorization"] = f"Bearer {token}"
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    if expect_errors:
        assert body.get("errors"), f"expected errors, got {body}"
        return body
    assert not body.get("errors"), body.get("errors")
    return body["data"]


def error_codes(body: dict[str, Any]) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors", [])]


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith(("Created connection pool", "Closed connection pool")) and (
            CACHE_REFRESH not in message  # a process's cache read again, not the request's
        ):
            self.statements.append(message)


@contextmanager
def count_statements():
    """Counts the SQL statements the ORM sends (their logged messages), but for the
    refresh of a cache a process reads once a while (the catalogue's bounds)."""
    counter = _Counter()
    with listening(counter):
        yield counter.statements
