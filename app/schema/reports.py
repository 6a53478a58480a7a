"""Reports and CSV exports for admins: the shapes (app.services.reports, .csv_exports)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
import strawberry

from app.errors import BadUserInput, DomainError
from app.schema.common import Connection, Edge, UserError, page_of, page_size, parse_id
from app.services import reports
from app.services.csv_exports import ExportKind
from app.services.reports import ReportErrorCode, ReportRange

strawberry.enum(ReportErrorCode, name="ReportErrorCode")
strawberry.enum(ExportKind, name="CsvExportKind", description="What a CSV export holds.")

T = TypeVar("T")


def _id(value: Any) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


def _seconds(value: Any) -> float:
    return round(float(value or 0), 3)


@strawberry.type(description="Payment links made in a month for a product, and what came of them.")
class FunnelRow:
    month: str = strawberry.field(description="UTC month the links were made, 'YYYY-MM'.")
    product_id: strawberry.ID
    product_code: str
    product_name: str
    sent: int = strawberry.field(description="Links made (sent to a prospect).")
    registered: int = strawberry.field(
        description="Of those, links used: an account registered, or a returning client's order."
    )
    paid: int = strawberry.field(description="Of those, links whose order was paid.")

    @strawberry.field(description="registered / sent.")
    def registration_rate(self) -> float:
        return self.registered / self.sent if self.sent else 0.0

    @strawberry.field(description="paid / sent.")
    def payment_rate(self) -> float:
        return self.paid / self.sent if self.sent else 0.0


@strawberry.type(
    description="Money in a month for a product, in one currency (amounts in minor units): "
    "orders by the month they were paid, refunds by the month they were made."
)
class RevenueRow:
    month: str
    product_id: strawberry.ID
    product_code: str
    product_name: str
    currency: str
    paid_orders: int
    gross: int
    refunded: int
    net: int = strawberry.field(description="gross - refunded.")


@strawberry.type(description="How long a catalogue step takes, started -> completed (seconds).")
class StepDuration:
    step_id: strawberry.ID
    step_code: str
    step_label: str
    count: int
    average_seconds: float
    median_seconds: float
    p90_seconds: float


@strawberry.type(description="How long a product's dossiers take, created -> completed (seconds).")
class DossierDuration:
    product_id: strawberry.ID
    product_code: str
    product_name: str
    count: int
    average_seconds: float
    median_seconds: float
    p90_seconds: float


@strawberry.type(
    description="Upload -> review of a document type's versions (seconds); documents "
    "requested without a type are one row with a null type."
)
class ReviewTurnaround:
    document_type_id: strawberry.ID | None
    document_type_code: str | None
    document_type_label: str | None
    count: int
    average_seconds: float
    median_seconds: float
    p90_seconds: float


def _funnel(row: dict[str, Any]) -> FunnelRow:
    return FunnelRow(
        month=row["month"],
        product_id=strawberry.ID(str(row["product_id"])),
        product_code=row["product_code"],
        product_name=row["product_name"],
        sent=int(row["sent"]),
        registered=int(row["registered"]),
        paid=int(row["paid"] or 0),
    )


def _revenue(row: dict[str, Any]) -> RevenueRow:
    return RevenueRow(
        month=row["month"],
        product_id=strawberry.ID(str(row["product_id"])),
        product_code=row["product_code"],
        product_name=row["product_name"],
        currency=row["currency"],
        paid_orders=int(row["paid_orders"]),
        gross=int(row["gross"]),
        refunded=int(row["refunded"]),
        net=int(row["net"]),
    )


def _stats(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "count": int(row["n"]),
        "average_seconds": _seconds(row["mean"]),
        "median_seconds": _seconds(row["p50"]),
        "p90_seconds": _seconds(row["p90"]),
    }


def _step(row: dict[str, Any]) -> StepDuration:
    return StepDuration(
        step_id=strawberry.ID(str(row["step_id"])),
        step_code=row["step_code"],
        step_label=row["step_label"],
        **_stats(row),
    )


def _dossier(row: dict[str, Any]) -> DossierDuration:
    return DossierDuration(
        product_id=strawberry.ID(str(row["product_id"])),
        product_code=row["product_code"],
        product_name=row["product_name"],
        **_stats(row),
    )


def _review(row: dict[str, Any]) -> ReviewTurnaround:
    return ReviewTurnaround(
        document_type_id=_id(row["document_type_id"]),
        document_type_code=row["document_type_code"] or None,
        document_type_label=row["document_type_label"],
        **_stats(row),
    )


def _cursor(keys: Sequence[str], row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([str(row[k]) for k in keys])).decode()


def _after(cursor: str | None, keys: Sequence[str]) -> list[str] | None:
    if cursor is None:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError):
        raise BadUserInput("Invalid cursor.") from None
    if not isinstance(values, list) or len(values) != len(keys):
        raise BadUserInput("Invalid cursor.")
    if not all(isinstance(v, str) for v in values):
        raise BadUserInput("Invalid cursor.")
    return values


Read = Callable[..., Awaitable[reports.Page]]


async def _connection(
    read: Read,
    scope: ReportRange,
    keys: Sequence[str],
    convert: Callable[[dict[str, Any]], T],
    first: int | None,
    after: str | None,
) -> Connection[T]:
    size, _ = page_size(first, None)
    page = await read(scope, size=size, after=_after(after, keys))
    pairs = [(row, convert(row)) for row in page.rows]
    connection = page_of(
        pairs,
        size,
        backwards=False,
        after=after,
        before=None,
        cursor=lambda pair: _cursor(keys, pair[0]),
        count=page.count,
    )
    connection.edges = [Edge(cursor=e.cursor, node=e.node[1]) for e in connection.edges]
    return connection


@strawberry.input(description="What the reports cover: [from, to) and, optionally, products.")
class ReportFilter:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    product_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only these products (at most 100)."
    )

    def scope(self) -> ReportRange:
        ids: list[uuid.UUID] | None = None
        if self.product_ids is not None:
            ids = [parse_id(i, what="product") for i in self.product_ids]
        try:
            return reports.report_range(self.from_, self.to, ids)
        except DomainError as error:
            raise BadUserInput(error.message) from None


@strawberry.type(
    name="Reports",
    description="Admins' reports over a range (half open, UTC months); each one SQL aggregate.",
)
class ReportsType:
    _scope: strawberry.Private[ReportRange]

    @strawberry.field(description="Links sent -> registered -> paid, by month and product.")
    async def funnel(
        self, first: int | None = None, after: str | None = None
    ) -> Connection[FunnelRow]:
        return await _connection(
            reports.funnel, self._scope, reports.FUNNEL_KEYS, _funnel, first, after
        )

    @strawberry.field(description="Gross, refunded and net, by month, product and currency.")
    async def revenue(
        self, first: int | None = None, after: str | None = None
    ) -> Connection[RevenueRow]:
        return await _connection(
            reports.revenue, self._scope, reports.REVENUE_KEYS, _revenue, first, after
        )

    @strawberry.field(description="Time per catalogue step (steps completed in the range).")
    async def step_durations(
        self, first: int | None = None, after: str | None = None
    ) -> Connection[StepDuration]:
        return await _connection(
            reports.step_durations, self._scope, reports.STEP_KEYS, _step, first, after
        )

    @strawberry.field(description="Time per dossier, by product (dossiers completed in the range).")
    async def dossier_durations(
        self, first: int | None = None, after: str | None = None
    ) -> Connection[DossierDuration]:
        return await _connection(
            reports.dossier_durations, self._scope, reports.DOSSIER_KEYS, _dossier, first, after
        )

    @strawberry.field(description="Upload -> review, by document type (reviews in the range).")
    async def review_turnaround(
        self, first: int | None = None, after: str | None = None
    ) -> Connection[ReviewTurnaround]:
        return await _connection(
            reports.review_turnaround, self._scope, reports.REVIEW_KEYS, _review, first, after
        )


@strawberry.type
class ReportUserError(UserError):
    code: ReportErrorCode


@strawberry.input
class CreateCsvExportInput:
    kind: ExportKind
    from_: datetime = strawberry.field(name="from")
    to: datetime


@strawberry.type
class CreateCsvExportPayload:
    url: str | None = strawberry.field(
        default=None, description="The signed link to the CSV (GET, no token needed)."
    )
    expires_at: datetime | None = None
    user_errors: list[ReportUserError] = strawberry.field(default_factory=list)
