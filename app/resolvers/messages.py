from __future__ import annotations

import uuid
from typing import Any

import strawberry

from app.context import Info
from app.errors import BadUserInput, DomainError, ValidationFailed
from app.models import Message
from app.schema.common import (
    DEFAULT_PAGE_SIZE,
    Connection,
    Edge,
    PageInfo,
    _decode,
    _encode,
    parse_id,
    row_as,
    user_errors,
)
from app.schema.dossiers import DossierType_
from app.schema.messages import (
    MarkDossierMessagesReadInput,
    MarkDossierMessagesReadPayload,
    MessageErrorCode,
    MessageType,
    MessageUserError,
    SendMessageInput,
    SendMessagePayload,
)
from app.services import messages
from app.services.codes import MessageErrorCode as Code
from app.settings import get_settings

ORDER = ("created_at", "id")


def _errors(error: DomainError) -> list[MessageUserError]:
    return user_errors(error, MessageUserError, MessageErrorCode)


def message_cursor(message: Any) -> str:
    """The same cursor as the messages connection's edges."""
    return _encode([message.created_at, message.id])


def _attachment_ids(values: list[strawberry.ID] | None) -> list[uuid.UUID]:
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
                    ["attachments", str(i)],
                )
            )
    if bad:
        raise ValidationFailed(bad)
    return ids


async def dossier_messages(
    info: Info,
    dossier_id: uuid.UUID,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[MessageType]:
    """`Dossier.messages`, oldest first (`last: n` gives the latest n), with the same
    cursors and page info as `paginate`; pages of many dossiers load in one statement."""
    cap = get_settings().max_page_size
    if first is not None and last is not None:
        raise BadUserInput("Pass either `first` or `last`, not both.")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= cap:
            raise BadUserInput(f"`{name}` must be between 0 and {cap}.")
    backwards = last is not None
    size = last if last is not None else (first if first is not None else DEFAULT_PAGE_SIZE)
    after_key = tuple(_decode(after, Message, ORDER)) if after else None
    before_key = tuple(_decode(before, Message, ORDER)) if before else None
    loaders = info.context.loaders
    rows = list(
        await loaders.message_pages.load((dossier_id, size, backwards, after_key, before_key))
    )
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    edges = [Edge(cursor=message_cursor(row), node=row) for row in rows]
    page_info = PageInfo(
        has_next_page=more if not backwards else before is not None,
        has_previous_page=more if backwards else after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )

    async def count() -> int:
        return await loaders.message_counts.load(dossier_id)

    return Connection(edges=edges, page_info=page_info, _count=count)


async def dossier_unread_count(info: Info, dossier_id: uuid.UUID) -> int:
    viewer = await info.context.require_viewer()
    reader = "agent" if viewer.is_agent else "client"
    return await info.context.loaders.unread_messages.load((dossier_id, reader))


async def my_unread_count(info: Info, owner: Any) -> int | None:
    """`unreadMessageCount` on Profile / Agent: the viewer's own total, null for others."""
    viewer = await info.context.viewer()
    if viewer is None or viewer.actor_id != owner.id:
        return None
    return await messages.unread_total(viewer)


@strawberry.type
class MessageMutation:
    @strawberry.mutation(
        description="Post a message in a dossier's chat (its client, or an agent)."
    )
    async def send_message(self, info: Info, input: SendMessageInput) -> SendMessagePayload:
        viewer = await info.context.require_viewer()
        dossier_id = parse_id(input.dossier_id, what="dossier")
        try:
            attachments = _attachment_ids(input.attachments)
            message: Message = await messages.send_message(
                viewer, dossier_id, input.content, attachments
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
        dossier_id = parse_id(input.dossier_id, what="dossier")
        try:
            dossier, count = await messages.mark_dossier_messages_read(viewer, dossier_id)
        except DomainError as error:
            return MarkDossierMessagesReadPayload(user_errors=_errors(error))
        return MarkDossierMessagesReadPayload(
            dossier=row_as(DossierType_, dossier), marked_count=count
        )
