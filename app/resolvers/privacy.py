from __future__ import annotations

import strawberry

from app.context import Info
from app.errors import DomainError
from app.providers.storage import Storage
from app.schema.common import parse_id, row_as, user_errors
from app.schema.identity import ProfileType
from app.schema.privacy import (
    DataExportType,
    EraseClientInput,
    EraseClientPayload,
    PrivacyUserError,
    RequestDataExportInput,
    RequestDataExportPayload,
)
from app.services.codes import PrivacyErrorCode
from app.services.privacy import erasure, exports


def _errors(error: DomainError) -> list[PrivacyUserError]:
    return user_errors(error, PrivacyUserError, PrivacyErrorCode)


def _storage(info: Info) -> Storage:
    return info.context.request.app.state.storage


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(
        description="Ask for an archive of everything we hold about you (GDPR right of "
        "access): its link is e-mailed to you when it is ready. One at a time."
    )
    async def request_my_data_export(self, info: Info) -> RequestDataExportPayload:
        viewer = await info.context.require_client()
        assert viewer.profile is not None
        try:
            export = await exports.request_export(viewer, viewer.profile.id)
        except DomainError as error:
            return RequestDataExportPayload(user_errors=_errors(error))
        return RequestDataExportPayload(data_export=row_as(DataExportType, export))

    @strawberry.mutation(
        description="Admins: build a client's data-export archive; its link is e-mailed to "
        "the client and to you."
    )
    async def request_data_export(
        self, info: Info, input: RequestDataExportInput
    ) -> RequestDataExportPayload:
        viewer = await info.context.require_admin()
        try:
            export = await exports.request_export(viewer, parse_id(input.profile_id, what="client"))
        except DomainError as error:
            return RequestDataExportPayload(user_errors=_errors(error))
        return RequestDataExportPayload(data_export=row_as(DataExportType, export))

    @strawberry.mutation(
        description="Admins: erase a client (GDPR right to erasure). Their files are "
        "deleted and their personal data replaced by tombstones; orders and refunds stay "
        "without personal fields; their sessions end. Refused while a dossier of theirs runs "
        "unless `force`."
    )
    async def erase_client(self, info: Info, input: EraseClientInput) -> EraseClientPayload:
        viewer = await info.context.require_admin()
        try:
            erased = await erasure.erase_client(
                viewer,
                parse_id(input.profile_id, what="client"),
                reason=input.reason,
                force=input.force,
                storage=_storage(info),
            )
        except DomainError as error:
            return EraseClientPayload(user_errors=_errors(error))
        return EraseClientPayload(
            client=row_as(ProfileType, erased.profile), already_erased=erased.already
        )
