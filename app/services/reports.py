"""Reports for admins (issue 19, item 4): each one SQL aggregate, on PostgreSQL and SQLite.

- funnel: payment links sent (by the month they were made) -> registered (the link used: an
  account made or a returning client's order) -> paid (an order of the link paid);
- revenue: paid orders (the month of payment) and refunds (the month they were made), by
  product and currency, gross, refunded and net;
- step durations: started -> completed of each catalogue step (skipped steps left out), the
  month of completion in the range;
- dossier durations: created -> completed, by product;
- review turnaround: a version uploaded -> its review, by document type.

Durations come in seconds with their median and 90th percentile, interpolated as
PostgreSQL's `percentile_cont` does; the SQL is the same on both databases (SQLite has no
percentile function): row_number() and count() windows pick the two rows around the
percentile and weigh them. Months are UTC ('YYYY-MM'). Every range is half open: from <= t
< to. Rows come in the order of their keys (month, product code, currency; step code;
product code; document type code), a page at a time: `after` is the last row's keys.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise import connections

from app.db import is_postgres
from app.errors import BadUserInput, DomainError

MAX_PRODUCT_FILTER = 100


class ReportErrorCode(StrEnum):
    INVALID_RANGE = "INVALID_RANGE"


RANGE = ReportErrorCode.INVALID_RANGE


@dataclass(frozen=True)
class ReportRange:
    """What every report is asked about: [start, end) and, optionally, some products."""

    start: datetime
    end: datetime
    product_ids: tuple[uuid.UUID, ...] | None = None


def report_range(
    start: datetime, end: datetime, product_ids: Sequence[uuid.UUID] | None = None
) -> ReportRange:
    """The range asked for, or DomainError INVALID_RANGE (the caller maps it)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise DomainError(RANGE, "`from` and `to` need a time zone.", "from")
    if start >= end:
        raise DomainError(RANGE, "`from` must be before `to`.", "from")
    if product_ids is not None and len(product_ids) > MAX_PRODUCT_FILTER:
        raise DomainError(RANGE, f"At most {MAX_PRODUCT_FILTER} products.", "productIds")
    ids = tuple(dict.fromkeys(product_ids)) if product_ids is not None else None
    return ReportRange(start.astimezone(UTC), end.astimezone(UTC), ids)


# --- portable SQL pieces -------------------------------------------------------------------


class _Sql:
    """Values for a statement written with PostgreSQL's numbered marks ($1 …)."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def mark(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"

    def in_products(self, column: str, ids: tuple[uuid.UUID, ...] | None) -> str:
        """` AND column IN (the products)`, or nothing without a product filter."""
        if ids is None:
            return ""
        if not ids:
            return " AND 1 = 0"
        if is_postgres():
            return f" AND {column} = ANY({self.mark(list(ids))}::uuid[])"
        return f" AND {column} IN ({', '.join(self.mark(i) for i in ids)})"


def month_of(column: str) -> str:
    """'YYYY-MM' of a timestamp, in UTC."""
    if is_postgres():
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"
    return f"strftime('%Y-%m', {column})"  # stored with its offset: read back in UTC


def seconds_between(start: str, end: str) -> str:
    if is_postgres():
        return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def _percentile(percent: int) -> str:
    """The `percent` percentile of `x` in a group of rows numbered `i` (0-based, by x) out
    of `n`: as percentile_cont, the rows at floor and ceil of p*(n-1), weighed (integer
    arithmetic, the same on both databases)."""
    low = f"(({percent} * (n - 1)) / 100)"
    weight = f"((({percent} * (n - 1)) % 100) / 100.0)"
    return (
        f"SUM(CASE WHEN i = {low} THEN x * (1 - {weight}) "
        f"WHEN i = {low} + 1 THEN x * {weight} ELSE 0 END)"
    )


def _durations(base: str, keys: Sequence[str], labels: Sequence[str]) -> str:
    """Count, mean, median and p90 of `x` per group of `keys`, from `base` (a SELECT of the
    keys, labels and x)."""
    partition = ", ".join(keys)
    grouped = ", ".join([*keys, *labels])
    return (
        f"SELECT {grouped}, COUNT(*) AS n, AVG(x) AS mean, {_percentile(50)} AS p50, "
        f"{_percentile(90)} AS p90 FROM (SELECT d.*, ROW_NUMBER() OVER (PARTITION BY "
        f"{partition} ORDER BY x) - 1 AS i, COUNT(*) OVER (PARTITION BY {partition}) AS n "
        f"FROM ({base}) d) r GROUP BY {grouped}"
    )


_NUMBERED = re.compile(r"\$(\d+)")


async def _fetch(sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        sql = _NUMBERED.sub(r"?\1", sql)
        values = [str(v) if isinstance(v, uuid.UUID) else v for v in values]
    return list(await connection.execute_query_dict(sql, list(values)))


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]  # one more than asked: the caller knows there is more
    count_sql: str
    values: list[Any]

    async def count(self) -> int:
        rows = await _fetch(self.count_sql, self.values)
        return int(next(iter(rows[0].values()))) if rows else 0


async def _page(
    q: _Sql, aggregate: str, keys: Sequence[str], size: int, after: Sequence[str] | None
) -> Page:
    """The groups of `aggregate` after `after` (their keys), in key order, `size` + 1 of
    them."""
    count_values = list(q.values)
    where = ""
    if after is not None:
        if len(after) != len(keys):
            raise BadUserInput("Invalid cursor.")
        marks = ", ".join(q.mark(str(v)) for v in after)
        where = f" WHERE ({', '.join(f'g.{k}' for k in keys)}) > ({marks})"
    order = ", ".join(f"g.{k}" for k in keys)
    sql = f"SELECT g.* FROM ({aggregate}) g{where} ORDER BY {order} LIMIT {q.mark(size + 1)}"
    rows = await _fetch(sql, q.values)
    return Page(rows, f"SELECT COUNT(*) FROM ({aggregate}) g", count_values)


# --- the reports ----------------------------------------------------------------------------

FUNNEL_KEYS = ("month", "product_code")
REVENUE_KEYS = ("month", "product_code", "currency")
STEP_KEYS = ("step_code",)
DOSSIER_KEYS = ("product_code",)
REVIEW_KEYS = ("document_type_code",)


async def funnel(scope: ReportRange, *, size: int, after: Sequence[str] | None = None) -> Page:
    """Per month (of the link) and product: links sent, used (registered), paid."""
    q = _Sql()
    start, end = q.mark(scope.start), q.mark(scope.end)
    products = q.in_products("l.product_id", scope.product_ids)
    aggregate = (
        f"SELECT {month_of('l.created_at')} AS month, p.code AS product_code, "
        "p.id AS product_id, p.name AS product_name, COUNT(*) AS sent, "
        "COUNT(l.used_at) AS registered, SUM(CASE WHEN EXISTS (SELECT 1 FROM orders o "
        "WHERE o.payment_link_id = l.id AND o.paid_at IS NOT NULL) THEN 1 ELSE 0 END) AS paid "
        "FROM payment_links l JOIN products p ON p.id = l.product_id "
        f"WHERE l.created_at >= {start} AND l.created_at < {end}{products} "
        "GROUP BY 1, p.code, p.id, p.name"
    )
    return await _page(q, aggregate, FUNNEL_KEYS, size, after)


async def revenue(scope: ReportRange, *, size: int, after: Sequence[str] | None = None) -> Page:
    """Per month, product and currency: paid orders and their amounts (month of payment),
    refunds (month of the refund), net = gross - refunded."""
    q = _Sql()
    start, end = q.mark(scope.start), q.mark(scope.end)
    products = q.in_products("o.product_id", scope.product_ids)
    aggregate = (
        "SELECT t.month AS month, p.code AS product_code, t.currency AS currency, "
        "p.id AS product_id, p.name AS product_name, SUM(t.paid) AS paid_orders, "
        "SUM(t.gross) AS gross, SUM(t.refunded) AS refunded, "
        "SUM(t.gross) - SUM(t.refunded) AS net FROM ("
        f"SELECT {month_of('o.paid_at')} AS month, o.product_id AS product_id, "
        "UPPER(o.currency) AS currency, 1 AS paid, o.amount AS gross, 0 AS refunded "
        "FROM orders o WHERE o.paid_at IS NOT NULL "
        f"AND o.paid_at >= {start} AND o.paid_at < {end}{products} "
        "UNION ALL "
        f"SELECT {month_of('r.created_at')}, o.product_id, UPPER(r.currency), 0, 0, r.amount "
        "FROM refunds r JOIN orders o ON o.id = r.order_id "
        f"WHERE r.created_at >= {start} AND r.created_at < {end}{products}"
        ") t JOIN products p ON p.id = t.product_id "
        "GROUP BY t.month, p.code, t.currency, p.id, p.name"
    )
    return await _page(q, aggregate, REVENUE_KEYS, size, after)


async def step_durations(
    scope: ReportRange, *, size: int, after: Sequence[str] | None = None
) -> Page:
    """Per catalogue step: the steps completed (not skipped) in the range, started ->
    completed."""
    q = _Sql()
    start, end = q.mark(scope.start), q.mark(scope.end)
    products = q.in_products("dos.product_id", scope.product_ids)
    base = (
        "SELECT s.code AS step_code, s.id AS step_id, s.label AS step_label, "
        f"{seconds_between('si.started_at', 'si.completed_at')} AS x "
        "FROM step_instances si JOIN steps s ON s.id = si.step_id "
        "JOIN dossiers dos ON dos.id = si.dossier_id "
        "WHERE si.completed_at IS NOT NULL AND si.skipped_at IS NULL "
        f"AND si.started_at IS NOT NULL AND si.completed_at >= {start} "
        f"AND si.completed_at < {end}{products}"
    )
    aggregate = _durations(base, STEP_KEYS, ("step_id", "step_label"))
    return await _page(q, aggregate, STEP_KEYS, size, after)


async def dossier_durations(
    scope: ReportRange, *, size: int, after: Sequence[str] | None = None
) -> Page:
    """Per product: the dossiers completed in the range, created -> completed."""
    q = _Sql()
    start, end = q.mark(scope.start), q.mark(scope.end)
    products = q.in_products("dos.product_id", scope.product_ids)
    base = (
        "SELECT p.code AS product_code, p.id AS product_id, p.name AS product_name, "
        f"{seconds_between('dos.created_at', 'dos.completed_at')} AS x "
        "FROM dossiers dos JOIN products p ON p.id = dos.product_id "
        f"WHERE dos.completed_at IS NOT NULL AND dos.completed_at >= {start} "
        f"AND dos.completed_at < {end}{products}"
    )
    aggregate = _durations(base, DOSSIER_KEYS, ("product_id", "product_name"))
    return await _page(q, aggregate, DOSSIER_KEYS, size, after)


async def review_turnaround(
    scope: ReportRange, *, size: int, after: Sequence[str] | None = None
) -> Page:
    """Per document type (documents asked for on the fly without one: code ''): the reviews
    made in the range, the version's upload -> its review."""
    q = _Sql()
    start, end = q.mark(scope.start), q.mark(scope.end)
    products = q.in_products("dos.product_id", scope.product_ids)
    base = (
        "SELECT COALESCE(dt.code, '') AS document_type_code, dt.id AS document_type_id, "
        "dt.label AS document_type_label, "
        f"{seconds_between('v.uploaded_at', 'rv.reviewed_at')} AS x "
        "FROM document_reviews rv JOIN document_versions v ON v.id = rv.document_version_id "
        "JOIN documents doc ON doc.id = v.document_id "
        "JOIN dossiers dos ON dos.id = doc.dossier_id "
        "LEFT JOIN document_types dt ON dt.id = doc.document_type_id "
        f"WHERE rv.reviewed_at >= {start} AND rv.reviewed_at < {end}{products}"
    )
    aggregate = _durations(base, REVIEW_KEYS, ("document_type_id", "document_type_label"))
    return await _page(q, aggregate, REVIEW_KEYS, size, after)
