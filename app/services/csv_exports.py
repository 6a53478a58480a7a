"""CSV exports of dossiers, orders and events for admins (issue 19, item 4).

`createCsvExport` answers a signed, expiring link (`app.services.signed_links`, purpose
CSV_EXPORT_PURPOSE) to `/exports/csv/<kind>?from=…&to=…&by=<admin>`: the signature covers the
kind, the range and the admin who asked, so none of them can be changed, and the link stops
working when that admin is disabled or no longer an admin (checked when it is used). The
route streams the rows created in [from, to), oldest first, read by keyset in batches of
EXPORT_BATCH_ROWS (never the whole table in memory), as UTF-8 CSV with a header row. A cell
that a spreadsheet would read as a formula (= + - @ tab CR first) gets a leading quote.

The columns of each kind, in order, are COLUMNS below (the README lists them too).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from tortoise import connections

from app.models import Agent
from app.models.enums import AgentRole
from app.services import signed_links
from app.services.signed_links import LinkRefused
from app.settings import get_settings

CSV_EXPORT_PURPOSE = "csv-export-v1"
EXPORT_BATCH_ROWS = 1000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ExportKind(StrEnum):
    DOSSIERS = "DOSSIERS"
    ORDERS = "ORDERS"
    EVENTS = "EVENTS"


@dataclass(frozen=True)
class Column:
    header: str
    sql: str  # over the kind's FROM clause (the exported table is `t`)
    kind: str = "text"  # "text", "datetime" or "json"


COLUMNS: dict[ExportKind, tuple[Column, ...]] = {
    ExportKind.DOSSIERS: (
        Column("id", "t.id"),
        Column("reference", "t.reference"),
        Column("status", "t.status"),
        Column("type", "t.type"),
        Column("product_code", "p.code"),
        Column("product_name", "p.name"),
        Column("client_id", "t.user_id"),
        Column("client_name", "c.full_name"),
        Column("client_email", "cr.email"),
        Column("created_at", "t.created_at", "datetime"),
        Column("updated_at", "t.updated_at", "datetime"),
        Column("completed_at", "t.completed_at", "datetime"),
    ),
    ExportKind.ORDERS: (
        Column("id", "t.id"),
        Column("status", "t.status"),
        Column("payment_method", "t.payment_method"),
        Column("amount", "t.amount"),
        Column("refunded_amount", "t.refunded_amount"),
        Column("currency", "UPPER(t.currency)"),
        Column("product_code", "p.code"),
        Column("client_id", "t.user_id"),
        Column("client_name", "c.full_name"),
        Column("client_email", "cr.email"),
        Column("dossier_id", "t.dossier_id"),
        Column("payment_reference", "t.payment_reference"),
        Column("created_at", "t.created_at", "datetime"),
        Column("paid_at", "t.paid_at", "datetime"),
    ),
    ExportKind.EVENTS: (
        Column("id", "t.id"),
        Column("created_at", "t.created_at", "datetime"),
        Column("event_type", "t.event_type"),
        Column("entity_type", "t.entity_type"),
        Column("entity_id", "t.entity_id"),
        Column("actor_type", "t.actor_type"),
        Column("actor_id", "t.actor_id"),
        Column("payload", "t.payload", "json"),
    ),
}

_FROM: dict[ExportKind, str] = {
    ExportKind.DOSSIERS: (
        "dossiers t JOIN products p ON p.id = t.product_id "
        "JOIN profiles c ON c.id = t.user_id LEFT JOIN credentials cr ON cr.profile_id = c.id"
    ),
    ExportKind.ORDERS: (
        "orders t JOIN products p ON p.id = t.product_id "
        "JOIN profiles c ON c.id = t.user_id LEFT JOIN credentials cr ON cr.profile_id = c.id"
    ),
    ExportKind.EVENTS: "events t",
}


# --- the link ------------------------------------------------------------------------------


def _instant(value: datetime) -> str:
    """A range bound as the link carries it (UTC, `Z`)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _subject(kind: str, start: str, end: str, admin_id: str) -> str:
    return f"{kind}|{start}|{end}|{admin_id}"


@dataclass(frozen=True)
class ExportLink:
    url: str
    expires_at: datetime


def export_link(
    kind: ExportKind,
    start: datetime,
    end: datetime,
    admin_id: uuid.UUID,
    *,
    now: datetime | None = None,
) -> ExportLink:
    """The signed link to the CSV of `kind` created in [start, end) (the caller checked
    start < end, both aware, and that the admin is one)."""
    from urllib.parse import urlencode

    bounds = {"from": _instant(start), "to": _instant(end), "by": str(admin_id)}
    path = f"/exports/csv/{kind.value.lower()}?{urlencode(bounds)}"
    subject = _subject(kind.value, bounds["from"], bounds["to"], bounds["by"])
    ttl = timedelta(seconds=get_settings().export_url_ttl_seconds)
    signed, expires_at = signed_links.sign(CSV_EXPORT_PURPOSE, path, subject, ttl=ttl, now=now)
    return ExportLink(get_settings().public_api_url.rstrip("/") + signed, expires_at)


@dataclass(frozen=True)
class ExportRequest:
    kind: ExportKind
    start: datetime
    end: datetime
    admin_id: uuid.UUID

    @property
    def file_name(self) -> str:
        day = "%Y%m%d"
        return f"{self.kind.value.lower()}-{self.start.strftime(day)}-{self.end.strftime(day)}.csv"


async def open_export(
    kind: str,
    start: str | None,
    end: str | None,
    admin: str | None,
    expires: str | None,
    signature: str | None,
    *,
    now: datetime | None = None,
) -> ExportRequest:
    """What a link grants, or LinkRefused: a forged, altered or expired link, or one whose
    admin is disabled or no longer an admin."""
    upper = kind.upper()
    if upper not in ExportKind.__members__ or not (start and end and admin):
        raise LinkRefused("Invalid link.")
    signed_links.verify(
        CSV_EXPORT_PURPOSE, _subject(upper, start, end, admin), expires, signature, now=now
    )
    try:  # signed by us: these parse, but never trust a parser with a 500
        request = ExportRequest(
            ExportKind(upper),
            datetime.fromisoformat(start).astimezone(UTC),
            datetime.fromisoformat(end).astimezone(UTC),
            uuid.UUID(admin),
        )
    except ValueError:
        raise LinkRefused("Invalid link.") from None
    still_admin = await Agent.filter(
        id=request.admin_id, active=True, role=AgentRole.ADMIN
    ).exists()
    if not still_admin:
        raise LinkRefused("This link is no longer valid.")
    return request


# --- the rows ------------------------------------------------------------------------------

_NUMBERED = re.compile(r"\$(\d+)")


async def _fetch(sql: str, values: list[Any]) -> list[tuple[Any, ...]]:
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        sql = _NUMBERED.sub(r"?\1", sql)
        values = [str(v) if isinstance(v, uuid.UUID) else v for v in values]
    _, rows = await connection.execute_query(sql, values)
    return [tuple(row) for row in rows]


async def export_rows(
    request: ExportRequest, *, batch: int = EXPORT_BATCH_ROWS
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The rows of the export, a batch at a time, in (created_at, id) order: each batch is
    one statement that starts after the last row of the one before (keyset)."""
    columns = COLUMNS[request.kind]
    select = ", ".join([*(c.sql for c in columns), "t.created_at", "t.id"])
    after: tuple[Any, Any] | None = None
    while True:
        values: list[Any] = [request.start, request.end]
        keyset = ""
        if after is not None:
            values += list(after)
            keyset = " AND (t.created_at, t.id) > ($3, $4)"
        values.append(batch)
        sql = (
            f"SELECT {select} FROM {_FROM[request.kind]} "
            f"WHERE t.created_at >= $1 AND t.created_at < $2{keyset} "
            f"ORDER BY t.created_at, t.id LIMIT ${len(values)}"
        )
        rows = await _fetch(sql, values)
        if rows:
            yield [row[: len(columns)] for row in rows]
        if len(rows) < batch:
            return
        after = (rows[-1][-2], rows[-1][-1])


def defuse(cell: str) -> str:
    """A cell a spreadsheet would run as a formula, made text (OWASP's CSV injection)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "datetime":
        if isinstance(value, str):  # SQLite keeps ISO text with the offset
            value = datetime.fromisoformat(value)
        return defuse(value.astimezone(UTC).isoformat())
    if kind == "json" and not isinstance(value, str):
        return defuse(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())
    return defuse(str(value))


def csv_lines(rows: Sequence[Sequence[Any]], kinds: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_cell(v, k) for v, k in zip(row, kinds, strict=True)])
    return buffer.getvalue()


async def export_csv(
    request: ExportRequest, *, batch: int = EXPORT_BATCH_ROWS
) -> AsyncIterator[bytes]:
    """The CSV, UTF-8: the header row, then a chunk per batch of rows."""
    columns = COLUMNS[request.kind]
    kinds = [c.kind for c in columns]
    yield csv_lines([[c.header for c in columns]], ["text"] * len(columns)).encode()
    async for rows in export_rows(request, batch=batch):
        yield csv_lines(rows, kinds).encode()
