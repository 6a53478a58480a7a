"""Phone channels (issue 20): a client's consent per channel, and what came in by SMS or
WhatsApp through Twilio."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, TimestampedModel
from app.models.enums import ConsentSource, ConsentStatus, InboundOutcome, NotificationChannel

if TYPE_CHECKING:
    from app.models.dossiers import Dossier
    from app.models.messages import Message
    from app.models.profiles import Profile


class ChannelConsent(TimestampedModel):
    """One client's state on one phone channel (SMS or WHATSAPP): their consent (when and
    how it was given or withdrawn) and when they last wrote to us there (WhatsApp's
    customer-service window, the channel agents' answers go back on)."""

    profile: fields.ForeignKeyRelation[Profile] = fields.ForeignKeyField(
        "models.Profile", related_name="channel_consents", on_delete=fields.CASCADE
    )
    channel = fields.CharEnumField(NotificationChannel, max_length=16)
    status = fields.CharEnumField(ConsentStatus, max_length=16, null=True)
    opted_in_at = fields.DatetimeField(null=True)
    opted_in_via = fields.CharEnumField(ConsentSource, max_length=16, null=True)
    opted_in_by = fields.UUIDField(null=True)  # the agent who recorded a verbal consent
    opted_out_at = fields.DatetimeField(null=True)
    opted_out_via = fields.CharEnumField(ConsentSource, max_length=16, null=True)
    last_inbound_at = fields.DatetimeField(null=True)

    profile_id: uuid.UUID

    class Meta:
        table = "channel_consents"
        unique_together = (("profile", "channel"),)


class InboundMessage(CreatedModel):
    """An SMS or WhatsApp message Twilio brought us, once per Twilio MessageSid (a retried
    webhook finds it here and does nothing again). Those of no known client are kept for
    admins (`inboundMessages`), never attached to a dossier."""

    message_sid = fields.CharField(max_length=64, unique=True)
    channel = fields.CharEnumField(NotificationChannel, max_length=16)
    from_number = fields.TextField()  # E.164 when it parses, else as Twilio sent it
    body = fields.TextField()
    media: list[dict[str, Any]] = fields.JSONField(default=list)  # type, size, outcome
    outcome = fields.CharEnumField(InboundOutcome, max_length=32)
    profile: fields.ForeignKeyNullableRelation[Profile] = fields.ForeignKeyField(
        "models.Profile", related_name="inbound_messages", null=True, on_delete=fields.SET_NULL
    )
    dossier: fields.ForeignKeyNullableRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="inbound_messages", null=True, on_delete=fields.SET_NULL
    )
    message: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="inbound", null=True, on_delete=fields.SET_NULL
    )

    profile_id: uuid.UUID | None
    dossier_id: uuid.UUID | None
    message_id: uuid.UUID | None

    class Meta:
        table = "inbound_messages"
        indexes = (
            # The admins' list: by outcome, newest first.
            Index(fields=("outcome", "created_at", "id"), name="idx_inbound_outcome"),
            Index(fields=("profile_id",), name="idx_inbound_profile_id"),
            Index(fields=("dossier_id",), name="idx_inbound_dossier_id"),
            Index(fields=("message_id",), name="idx_inbound_message_id"),
        )
