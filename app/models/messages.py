from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, WhereIndex
from app.models.enums import ActorType, NotificationChannel

if TYPE_CHECKING:
    from app.models.dossiers import Dossier


class Message(CreatedModel):
    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="messages", on_delete=fields.CASCADE
    )
    sender_type = fields.CharEnumField(ActorType, max_length=16)
    sender_id = fields.UUIDField(null=True)
    content = fields.TextField()
    attachments: list[dict[str, Any]] = fields.JSONField(default=list)
    read_at = fields.DatetimeField(null=True)
    # Where the message was written (issue 20): IN_APP, or SMS / WHATSAPP for a client's
    # reply that came in through Twilio (app.services.phone.inbound).
    channel = fields.CharEnumField(
        NotificationChannel,
        max_length=16,
        default=NotificationChannel.IN_APP,
        db_default=NotificationChannel.IN_APP,
    )

    dossier_id: uuid.UUID  # the foreign key's column (an attribute Tortoise adds)

    class Meta:
        table = "messages"
        # A dossier's chat in (created_at, id) order: a page is an index range with a LIMIT.
        indexes = (
            Index(fields=("dossier_id", "created_at", "id"), name="idx_messages_dossier_order"),
            # The unread ones, by sender: unread counts read what is unread, not the chat.
            WhereIndex(
                fields=("dossier_id", "sender_type"),
                name="idx_messages_unread",
                where="read_at IS NULL",
            ),
        )
