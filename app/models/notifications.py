from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, WhereIndex
from app.models.enums import ActorType, EventType, NotificationChannel, NotificationStatus

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.dossiers import Dossier
    from app.models.profiles import Profile


class Event(CreatedModel):
    """The audit log, the dossier timeline and the outbox, in one table."""

    entity_type = fields.CharField(max_length=64)
    entity_id = fields.UUIDField()
    event_type = fields.CharEnumField(EventType, max_length=64)
    actor_type = fields.CharEnumField(ActorType, max_length=16)
    actor_id = fields.UUIDField(null=True)
    payload: dict[str, Any] = fields.JSONField(default=dict)
    # Outbox state: set once the event is published to subscribers / turned into
    # notifications. The worker's relay picks up rows where these are still null.
    published_at = fields.DatetimeField(null=True)
    processed_at = fields.DatetimeField(null=True)

    notifications: fields.ReverseRelation[Notification]  # the other side of notifications.event

    class Meta:
        table = "events"
        indexes = (
            Index(fields=("entity_type", "entity_id"), name="idx_events_entity"),
            Index(fields=("created_at",), name="idx_events_created_at"),
            Index(fields=("published_at",), name="idx_events_published_at"),
            # The relay's batch: unprocessed events, oldest first.
            WhereIndex(
                fields=("created_at", "id"),
                name="idx_events_unprocessed",
                where="processed_at IS NULL",
            ),
            # The timeline / notification filters by event type, newest first.
            Index(fields=("event_type", "created_at", "id"), name="idx_events_type_created"),
            # What someone did (an erasure scrubs the events its client caused).
            Index(fields=("actor_id",), name="idx_events_actor_id"),
        )


class Notification(CreatedModel):
    user: fields.ForeignKeyNullableRelation[Profile] = fields.ForeignKeyField(
        "models.Profile", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    # Beyond the ERD: agents are notified too.
    agent: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    dossier: fields.ForeignKeyNullableRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    event: fields.ForeignKeyNullableRelation[Event] = fields.ForeignKeyField(
        "models.Event", related_name="notifications", null=True, on_delete=fields.SET_NULL
    )
    title = fields.TextField()
    message = fields.TextField()
    template_code = fields.CharField(max_length=64)
    payload: dict[str, Any] = fields.JSONField(default=dict)
    action_url = fields.TextField(null=True)
    read_at = fields.DatetimeField(null=True)
    # Throttling: notifications sharing a group key (e.g. one conversation burst) collapse.
    group_key = fields.CharField(max_length=128, null=True)

    # The foreign keys' columns (attributes Tortoise adds):
    user_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    dossier_id: uuid.UUID | None
    event_id: uuid.UUID | None
    deliveries: fields.ReverseRelation[NotificationDelivery]  # the other side of its notification

    class Meta:
        table = "notifications"
        indexes = (
            Index(fields=("user_id",), name="idx_notifications_user_id"),
            Index(fields=("read_at",), name="idx_notifications_read_at"),
            Index(fields=("agent_id",), name="idx_notifications_agent_id"),
            Index(fields=("group_key",), name="idx_notifications_group_key"),
            Index(fields=("dossier_id",), name="idx_notifications_dossier_id"),
            Index(fields=("event_id",), name="idx_notifications_event_id"),
            # A user's (an agent's) notifications, newest first.
            Index(fields=("user_id", "created_at", "id"), name="idx_notifications_user_created"),
            Index(fields=("agent_id", "created_at", "id"), name="idx_notifications_agent_created"),
            # …and the unread ones (the unread count, `unreadOnly`): only the few unread.
            WhereIndex(
                fields=("user_id", "created_at", "id"),
                name="idx_notifications_user_unread",
                where="read_at IS NULL",
            ),
            WhereIndex(
                fields=("agent_id", "created_at", "id"),
                name="idx_notifications_agent_unread",
                where="read_at IS NULL",
            ),
        )


class NotificationDelivery(CreatedModel):
    notification: fields.ForeignKeyRelation[Notification] = fields.ForeignKeyField(
        "models.Notification", related_name="deliveries", on_delete=fields.CASCADE
    )
    channel = fields.CharEnumField(NotificationChannel, max_length=16)
    recipient = fields.TextField()
    status = fields.CharEnumField(
        NotificationStatus, max_length=16, default=NotificationStatus.PENDING
    )
    provider = fields.CharField(max_length=64, null=True)
    provider_message_id = fields.CharField(max_length=255, null=True)
    provider_response: dict[str, Any] | None = fields.JSONField(null=True)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    claimed_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    sent_at = fields.DatetimeField(null=True)
    failed_at = fields.DatetimeField(null=True)
    # Issue 20, receipts and bounces (app.services.receipts, app.services.bounces): the
    # provider's last status applied (Twilio's MessageStatus, "bounce" for a DSN), its error
    # code (Twilio's ErrorCode, a DSN's Status such as 5.1.1) and when each state was told.
    provider_status = fields.CharField(max_length=32, null=True)
    error_code = fields.CharField(max_length=32, null=True)
    delivered_at = fields.DatetimeField(null=True)
    read_at = fields.DatetimeField(null=True)
    # A delivery made because another one failed for good (an invalid number, a hard
    # bounce): the one it replaces and why. Made once: a failover never fails over. A plain
    # column (a foreign key to its own table is a cycle Tortoise cannot migrate).
    failover_of_id = fields.UUIDField(null=True)
    failover_reason = fields.TextField(null=True)

    notification_id: uuid.UUID  # the foreign key's column (an attribute Tortoise adds)

    class Meta:
        table = "notification_deliveries"
        unique_together = (("notification", "channel"),)
        indexes = (
            Index(fields=("status", "next_attempt_at"), name="idx_deliveries_due"),
            # what went to an address (an erasure finds the e-mails sent to its client's)
            Index(fields=("recipient",), name="idx_deliveries_recipient"),
            # a status callback finds its delivery by Twilio's MessageSid
            Index(fields=("provider_message_id",), name="idx_deliveries_provider_message_id"),
            Index(fields=("failover_of_id",), name="idx_deliveries_failover_of"),
        )
