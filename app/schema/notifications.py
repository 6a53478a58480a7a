"""Notifications (in-app list, read state, delivery per channel) and the events audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.scalars import JSON

from app.context import Info
from app.schema.common import UserError, gid
from app.schema.enums import ActorType, EventType, NotificationChannel, NotificationStatus


@strawberry.enum(name="NotificationErrorCode")
class NotificationErrorCode(StrEnum):
    REQUIRED = "REQUIRED"
    TOO_MANY_IDS = "TOO_MANY_IDS"


@strawberry.type(
    name="NotificationDelivery", description="How a notification went out on one channel."
)
class NotificationDeliveryType:
    channel: NotificationChannel
    status: NotificationStatus = strawberry.field(
        description="PENDING, SENT (the provider has it), then from its receipts DELIVERED, "
        "READ (WhatsApp), or UNDELIVERED / FAILED (a refusal, a bounce)."
    )
    attempts: int
    sent_at: datetime | None
    failed_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None = strawberry.field(
        description="When the provider told us it reached the handset."
    )
    read_at: datetime | None = strawberry.field(
        description="When WhatsApp told us the recipient read it."
    )
    error_code: str | None = strawberry.field(
        description="The provider's error code: Twilio's (21211, 63003, 30003...) or a "
        "bounce's status (5.1.1)."
    )
    provider_status: str | None = strawberry.field(
        description="The provider's last status told (Twilio's MessageStatus; `bounced`, "
        "`delayed` for e-mail)."
    )
    failover_reason: str | None = strawberry.field(
        description="Why this delivery was made: the permanent failure of `failoverOf`."
    )

    id: strawberry.ID

    if TYPE_CHECKING:  # the root value is the NotificationDelivery row
        recipient: str
        last_error: str | None
        failover_of_id: Any
        notification_id: Any

    @strawberry.field(description="The address it went to (an e-mail, a phone number).")
    def recipient_address(self) -> str:
        return self.recipient

    @strawberry.field(description="Agents only (null otherwise): why it failed or is delayed.")
    async def reason(self, info: Info) -> str | None:
        viewer = await info.context.viewer()
        return self.last_error if viewer is not None and viewer.agent is not None else None

    @strawberry.field(
        description="The delivery that failed for good, which this one replaces on the "
        "client's next channel (tried once)."
    )
    def failover_of(self) -> strawberry.ID | None:
        return gid(self.failover_of_id) if self.failover_of_id else None

    @strawberry.field(description="The notification it delivers.")
    async def notification(self, info: Info) -> NotificationType:
        return await info.context.loaders.notification.load(self.notification_id)


@strawberry.type(name="Notification", description="Something that happened, told to you.")
class NotificationType:
    title: str
    message: str
    template_code: str = strawberry.field(description="Which rule and template made it.")
    action_url: str | None = strawberry.field(description="Where to go in the app.")
    read_at: datetime | None
    created_at: datetime

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the Notification row: columns read below
        payload: dict[str, Any]

    @strawberry.field
    def read(self) -> bool:
        return self.read_at is not None

    @strawberry.field(description="The dossier it is about, if any.")
    def dossier_id(self) -> strawberry.ID | None:
        return gid(self.dossier_id) if self.dossier_id else None

    @strawberry.field(description="The event that caused it.")
    def event_type(self) -> EventType | None:
        value = (self.payload or {}).get("eventType")
        return EventType(value) if value else None

    @strawberry.field(description="Its delivery on each channel (IN_APP, EMAIL, SMS, WHATSAPP).")
    async def deliveries(self, info: Info) -> list[NotificationDeliveryType]:
        return await info.context.loaders.deliveries_by_notification.load(self.id)


@strawberry.type
class NotificationUserError(UserError):
    code: NotificationErrorCode


@strawberry.input(description="Give `ids`, or `all: true` for every unread notification.")
class MarkNotificationsReadInput:
    ids: list[strawberry.ID] | None = None
    all: bool = False


@strawberry.type
class MarkNotificationsReadPayload:
    notifications: list[NotificationType] = strawberry.field(
        default_factory=list,
        description="The notifications this call marked read, newest first: every one "
        "given by id, the newest 100 with `all: true` (`markedCount` says how many).",
    )
    marked_count: int = strawberry.field(
        default=0, description="How many notifications this call marked read."
    )
    unread_count: int = 0
    user_errors: list[NotificationUserError] = strawberry.field(default_factory=list)


@strawberry.type(name="Event", description="One entry of the audit log.")
class EventType_:
    entity_type: str
    event_type: EventType
    actor_type: ActorType
    payload: JSON
    created_at: datetime

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    @strawberry.field
    def entity_id(self) -> strawberry.ID:
        return gid(self.entity_id)

    @strawberry.field
    def actor_id(self) -> strawberry.ID | None:
        return gid(self.actor_id) if self.actor_id else None
