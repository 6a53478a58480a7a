from __future__ import annotations

import uuid

import strawberry

from app.context import Info
from app.errors import DomainError, ValidationFailed
from app.models import Message
from app.schema.common import dossier_id_of, row_as, user_errors
from app.schema.dossiers import DossierType
from app.schema.messages import (
    MarkDossierMessagesReadInput,
    MarkDossierMessagesReadPayload,
    MessageErrorCode,
    MessageType,
    MessageUserError,
    SendMessageInput,
    SendMessagePayload,
    message_cursor,
)
from app.services import messages
from app.services.codes import MessageErrorCode as Code


def _errors(error: DomainError) -> list[MessageUserError]:
    return user_errors(error, MessageUserError, MessageErrorCode)


def _attachment_ids(
    values: list[strawberry.ID] | None, field: str = "attachments"
) -> list[uuid.UUID]:
    """Ids inside an input: a malformed one is reported like an unknown one, in the payload."""
    ids, bad = [], []
    for i, value in enumerate(values or []):
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            bad.append(
                DomainError(
                    Code.INVALID_ATTACHMENT,
                    "No such uploaded file in this dossier.",
                    [field, str(i)],
                )
            )
    if bad:
        raise ValidationFailed(bad)
    return ids


@strawberry.type
class MessageMutation:
    @strawberry.mutation(
        description="Post a message in a dossier's chat (its client, or an agent)."
    )
    async def send_message(self, info: Info, input: SendMessageInput) -> SendMessagePayload:
        viewer = await info.context.require_viewer()
        dossier_id = await dossier_id_of(input.dossier_id)
        try:
            attachments = _attachment_ids(input.attachments)
            shared_file_ids = _attachment_ids(input.shared_file_ids, "sharedFileIds")
            message: Message = await messages.send_message(
                viewer, dossier_id, input.content, attachments, shared_file_ids
            )
        except DomainError as error:
            return SendMessagePayload(user_errors=_errors(error))
        return SendMessagePayload(
            message=row_as(MessageType, message), cursor=message_cursor(message)
        )

    @strawberry.mutation(
        description="Mark the other side's messages in a dossier as read (sets their readAt)."
    )
    async def mark_dossier_messages_read(
        self, info: Info, input: MarkDossierMessagesReadInput
    ) -> MarkDossierMessagesReadPayload:
        viewer = await info.context.require_viewer()
        dossier_id = await dossier_id_of(input.dossier_id)
        try:
            dossier, count = await messages.mark_dossier_messages_read(viewer, dossier_id)
        except DomainError as error:
            return MarkDossierMessagesReadPayload(user_errors=_errors(error))
        return MarkDossierMessagesReadPayload(
            dossier=row_as(DossierType, dossier), marked_count=count
        )
