"""Admins' reports and CSV exports (issue 19, item 4)."""

from __future__ import annotations

import strawberry

from app.context import Info
from app.errors import DomainError
from app.schema.common import user_errors
from app.schema.reports import (
    CreateCsvExportInput,
    CreateCsvExportPayload,
    ReportErrorCode,
    ReportFilter,
    ReportsType,
    ReportUserError,
)
from app.services.csv_exports import export_link
from app.services.reports import report_range


@strawberry.type
class ReportQuery:
    @strawberry.field(
        description="Reports over a range of time (admins only): the payment funnel, revenue "
        "net of refunds, time per step and per dossier, review turnaround."
    )
    async def reports(self, info: Info, filter: ReportFilter) -> ReportsType:
        await info.context.require_admin()
        return ReportsType(_scope=filter.scope())


@strawberry.type
class ReportMutation:
    @strawberry.mutation(
        description="A signed link to a CSV of the dossiers, orders or events created in "
        "[from, to) (admins only); it expires, and stops working if your account is disabled."
    )
    async def create_csv_export(
        self, info: Info, input: CreateCsvExportInput
    ) -> CreateCsvExportPayload:
        admin = await info.context.require_admin()
        try:
            scope = report_range(input.from_, input.to)
        except DomainError as error:
            return CreateCsvExportPayload(
                user_errors=user_errors(error, ReportUserError, ReportErrorCode)
            )
        link = export_link(input.kind, scope.start, scope.end, admin.actor_id)
        return CreateCsvExportPayload(url=link.url, expires_at=link.expires_at)
