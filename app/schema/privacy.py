"""The GDPR (issue 19): data exports (right of access) and erasure (right to erasure)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from app.context import Info
from app.schema.common import UserError, gid
from app.schema.enums import ActorType, DataExportStatus
from app.schema.identity import ProfileType
from app.services.codes import PrivacyErrorCode

strawberry.enum(PrivacyErrorCode, name="PrivacyErrorCode")


@strawberry.type(
    name="DataExport",
    description="An archive of every record about a client (right of access): built by "
    "the worker, its signed link e-mailed to the client (and the admin who asked), deleted "
    "once it expires.",
)
class DataExportType:
    status: DataExportStatus
    requested_by_type: ActorType = strawberry.field(description="The client, or an admin.")
    created_at: datetime = strawberry.field(description="When it was asked for.")
    ready_at: datetime | None
    expires_at: datetime | None = strawberry.field(description="When its link stops working.")
    size_bytes: int | None

    if TYPE_CHECKING:  # the root value is the DataExport row
        profile_id: uuid.UUID

    @strawberry.field
    def id(self) -> strawberry.ID:
        return gid(self.id)

    @strawberry.field(description="The client it is about.")
    async def client(self, info: Info) -> ProfileType:
        return await info.context.loaders.profile.load(self.profile_id)


@strawberry.type
class PrivacyUserError(UserError):
    code: PrivacyErrorCode


@strawberry.input
class RequestDataExportInput:
    profile_id: strawberry.ID = strawberry.field(description="The client to export.")


@strawberry.type
class RequestDataExportPayload:
    data_export: DataExportType | None = None
    user_errors: list[PrivacyUserError] = strawberry.field(default_factory=list)


@strawberry.input
class EraseClientInput:
    profile_id: strawberry.ID
    reason: str = strawberry.field(description="Why (kept in the CLIENT_ERASED event).")
    force: bool = strawberry.field(
        default=False, description="Erase although a dossier of theirs still runs."
    )


@strawberry.type
class EraseClientPayload:
    client: ProfileType | None = None
    already_erased: bool | None = strawberry.field(
        default=None, description="The client was erased before: nothing changed."
    )
    user_errors: list[PrivacyUserError] = strawberry.field(default_factory=list)
