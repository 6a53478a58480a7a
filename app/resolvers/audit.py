"""The access audit for administrators (issue 19, item 5)."""

from __future__ import annotations

import uuid

import strawberry

from app.context import Info
from app.errors import BadUserInput, DomainError, NotFound
from app.schema.audit import AccessEventType
from app.schema.common import Connection, dossier_id_of, paginate
from app.services import access_audit

NEWEST_FIRST = ("-occurred_at", "-id")


def _id(value: strawberry.ID | None) -> uuid.UUID | None:
    """A malformed id matches nothing, like a missing one."""
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return uuid.UUID(int=0)


async def _dossier_id(value: strawberry.ID | None) -> uuid.UUID | None:
    """A dossier's id or case number; an unknown one matches nothing."""
    if value is None:
        return None
    try:
        return await dossier_id_of(value)
    except NotFound:
        return uuid.UUID(int=0)


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description="Administrators: who viewed or downloaded what, newest first, for one "
        "client (every dossier of theirs), one document or one dossier (give exactly one). "
        "Dossier views are agents' and admins' `dossier(id:)` reads; downloads are everyone's."
    )
    async def access_log(
        self,
        info: Info,
        client_id: strawberry.ID | None = None,
        document_id: strawberry.ID | None = None,
        dossier_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AccessEventType]:
        await info.context.require_admin()
        try:
            queryset = access_audit.access_log(
                client_id=_id(client_id),
                document_id=_id(document_id),
                dossier_id=await _dossier_id(dossier_id),
            )
        except DomainError as error:
            raise BadUserInput(error.message) from None
        return await paginate(
            queryset, first=first, after=after, last=None, before=None, order=NEWEST_FIRST
        )
