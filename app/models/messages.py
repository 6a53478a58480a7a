from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel
from app.models.enums import ActorType


class Message(CreatedModel):
    dossier = fields.ForeignKeyField(
        "models.Dossier", related_name="messages", on_delete=fields.CASCADE
    )
    sender_type = fields.CharEnumField(ActorType, max_length=16)
    sender_id = fields.UUIDField(null=True)
    content = fields.TextField()
    attachments = fields.JSONField(default=list)
    read_at = fields.DatetimeField(null=True)

    class Meta:
        table = "messages"
        indexes = (Index(fields=("dossier_id", "created_at"), name="idx_messages_dossier_created"),)
