"""Chat messages: the Message type, the chat mutations' inputs and payloads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from app.context import Info
from app.models import Message
from app.schema.common import (
    Connection,
    UserError,
    _decode,
    _encode,
    gid,
    page_of,
    page_size,
)
from app.schema.enums import ActorType, NotificationChannel
from app.services import messages
from app.services.codes import MessageErrorCode

if TYPE_CHECKING:
    from app.schema.dossiers import DossierType

# Marks the class itself as a GraphQL enum (see app.schema.enums).
strawberry.enum(MessageErrorCode, name="MessageErrorCode")
_CARRIED = "carried_sender_name"


@strawberry.type(name="MessageAttachment", description="An uploaded file of the dossier.")
class MessageAttachmentType:
    document_version_id: strawberry.ID
    document_id: strawberry.ID
    file_name: str
    mime_type: str
    file_size_bytes: int
    version_number: int


@strawberry.type(
    name="MessageSharedFile", description="A file the firm shared with the dossier, attached."
)
class MessageSharedFileType:
    shared_file_id: strawberry.ID
    file_name: str
    mime_type: str
    file_size_bytes: int


@dataclass
class LiveMessage:
    """A message as published to subscribers: everything its fields need, no query."""

    id: uuid.UUID
    dossier_id: uuid.UUID
    sender_type: ActorType
    sender_id: uuid.UUID | None
    content: str
    attachments: list[dict[str, Any]]
    created_at: datetime
    read_at: datetime | None
    carried_sender_name: str | None = None
    channel: NotificationChannel = NotificationChannel.IN_APP

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> LiveMessage:
        return cls(
            id=uuid.UUID(data["id"]),
            dossier_id=uuid.UUID(data["dossierId"]),
            sender_type=ActorType(data["senderType"]),
            sender_id=uuid.UUID(data["senderId"]) if data.get("senderId") else None,
            content=data["content"],
            attachments=list(data.get("attachments") or []),
            created_at=datetime.fromisoformat(data["createdAt"]),
            read_at=datetime.fromisoformat(data["readAt"]) if data.get("readAt") else None,
            carried_sender_name=data.get("senderName"),
            channel=NotificationChannel(data.get("channel") or "IN_APP"),
        )


@strawberry.type(name="Message", description="A chat message in a dossier.")
class MessageType:
    content: str
    sender_type: ActorType = strawberry.field(description="USER (the client), AGENT or SYSTEM.")
    created_at: datetime
    read_at: datetime | None = strawberry.field(
        description="When the other side read it (null while unread)."
    )
    channel: NotificationChannel = strawberry.field(
        description="Where it was written: IN_APP, or SMS / WHATSAPP for a client's reply "
        "by text message."
    )

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    @strawberry.field
    def dossier_id(self) -> strawberry.ID:
        return gid(self.dossier_id)

    @strawberry.field(description="The client's profile id or the agent's id; null for SYSTEM.")
    def sender_id(self) -> strawberry.ID | None:
        sender = self.sender_id
        return gid(sender) if sender else None

    @strawberry.field(description="The sender's display name; null for SYSTEM.")
    async def sender_name(self, info: Info) -> str | None:
        if hasattr(self, _CARRIED):  # a live message carries it
            return getattr(self, _CARRIED)
        sender = self.sender_id
        if not sender:
            return None
        if self.sender_type == ActorType.AGENT:
            agent = await info.context.loaders.agent.load(sender)
            return agent.name if agent else None
        profile = await info.context.loaders.profile.load(sender)
        return profile.full_name if profile else None

    @strawberry.field(description="Files of the dossier attached to the message.")
    def attachments(self) -> list[MessageAttachmentType]:
        return [
            MessageAttachmentType(
                document_version_id=gid(a.get("documentVersionId")),
                document_id=gid(a.get("documentId")),
                file_name=a.get("fileName") or "",
                mime_type=a.get("mimeType") or "",
                file_size_bytes=int(a.get("fileSizeBytes") or 0),
                version_number=int(a.get("versionNumber") or 0),
            )
            for a in (self.attachments or [])
            if a.get("documentVersionId")
        ]

    @strawberry.field(description="Files the firm shared with the dossier, attached.")
    def shared_files(self) -> list[MessageSharedFileType]:
        return [
            MessageSharedFileType(
                shared_file_id=gid(a.get("sharedFileId")),
                file_name=a.get("fileName") or "",
                mime_type=a.get("mimeType") or "",
                file_size_bytes=int(a.get("fileSizeBytes") or 0),
            )
            for a in (self.attachments or [])
            if a.get("sharedFileId")
        ]


@strawberry.type
class MessageUserError(UserError):
    code: MessageErrorCode


@strawberry.input
class SendMessageInput:
    dossier_id: strawberry.ID
    content: str = strawberry.field(description="1 to 10,000 characters (trimmed).")
    attachments: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Ids of document versions uploaded to this dossier."
    )
    shared_file_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Ids of files the firm shared with this dossier (counted with "
        "`attachments` against the limit).",
    )


@strawberry.type
class SendMessagePayload:
    message: MessageType | None = None
    cursor: str | None = strawberry.field(
        default=None, description="The new message's cursor (for `messageAdded(after:)`)."
    )
    user_errors: list[MessageUserError] = strawberry.field(default_factory=list)


@strawberry.input
class MarkDossierMessagesReadInput:
    dossier_id: strawberry.ID


@strawberry.type
class MarkDossierMessagesReadPayload:
    dossier: Annotated[DossierType, strawberry.lazy("app.schema.dossiers")] | None = None
    marked_count: int = strawberry.field(
        default=0, description="How many messages were unread and are now read."
    )
    user_errors: list[MessageUserError] = strawberry.field(default_factory=list)


# --- Field resolvers: Dossier.messages, unreadMessageCount (Dossier, Profile, Agent) ---

ORDER = ("created_at", "id")


def message_cursor(message: Any) -> str:
    """The same cursor as the messages connection's edges."""
    return _encode([message.created_at, message.id])


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
    size, backwards = page_size(first, last)
    after_key = tuple(_decode(after, Message, ORDER)) if after else None
    before_key = tuple(_decode(before, Message, ORDER)) if before else None
    loaders = info.context.loaders
    rows = list(
        await loaders.message_pages.load((dossier_id, size, backwards, after_key, before_key))
    )

    async def count() -> int:
        return await loaders.message_counts.load(dossier_id)

    return page_of(
        rows,
        size,
        backwards=backwards,
        after=after,
        before=before,
        cursor=message_cursor,
        count=count,
    )


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
