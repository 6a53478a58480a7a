from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel
from app.models.enums import ActorType, EventType, NotificationChannel, NotificationStatus


class Event(CreatedModel):
    """The audit log, the dossier timeline and the outbox, in one table."""

    entity_type = fields.CharField(max_length=64)
    entity_id = fields.UUIDField()
    event_type = fields.CharEnumField(EventType, max_length=64)
    actor_type = fields.CharEnumField(ActorType, max_length=16)
    actor_id = fields.UUIDField(null=True)
    payload = fields.JSONField(default=dict)
    # Outbox state: set once the event is published to subscribers / turned into
    # notifications. The worker's relay picks up rows where these are still null.
    published_at = fields.DatetimeField(null=True)
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "events"
        indexes = (
            Index(fields=("entity_type", "entity_id"), name="idx_events_entity"),
            Index(fields=("created_at",), name="idx_events_created_at"),
            Index(fields=("published_at",), name="idx_events_published_at"),
        )


class Notification(CreatedModel):
    user = fields.ForeignKeyField(
        "models.Profile", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    # Beyond the ERD: agents are notified too.
    agent = fields.ForeignKeyField(
        "models.Agent", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    dossier = fields.ForeignKeyField(
        "models.Dossier", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    event = fields.ForeignKeyField(
        "models.Event", related_name="notifications", null=True, on_delete=fields.SET_NULL
    )
    title = fields.TextField()
    message = fields.TextField()
    template_code = fields.CharField(max_length=64)
    payload = fields.JSONField(default=dict)
    action_url = fields.TextField(null=True)
    read_at = fields.DatetimeField(null=True)
    # Throttling: notifications sharing a group key (e.g. one conversation burst) collapse.
    group_key = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "notifications"
        indexes = (
            Index(fields=("user_id",), name="idx_notifications_user_id"),
            Index(fields=("read_at",), name="idx_notifications_read_at"),
            Index(fields=("agent_id",), name="idx_notifications_agent_id"),
            Index(fields=("group_key",), name="idx_notifications_group_key"),
        )


class NotificationDelivery(CreatedModel):
    notification = fields.ForeignKeyField(
        "models.Notification", related_name="deliveries", on_delete=fields.CASCADE
    )
    channel = fields.CharEnumField(NotificationChannel, max_length=16)
    recipient = fields.TextField()
    status = fields.CharEnumField(
        NotificationStatus, max_length=16, default=NotificationStatus.PENDING
    )
    provider = fields.CharField(max_length=64, null=True)
    provider_message_id = fields.CharField(max_length=255, null=True)
    provider_response = fields.JSONField(null=True)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    claimed_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    sent_at = fields.DatetimeField(null=True)
    failed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notification_deliveries"
        unique_together = (("notification", "channel"),)
        indexes = (Index(fields=("status", "next_attempt_at"), name="idx_deliveries_due"),)
