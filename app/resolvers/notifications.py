from __future__ import annotations

import uuid

import strawberry

from app.context import Info
from app.errors import NotFound
from app.schema.common import Connection, dossier_id_of, paginate, row_as
from app.schema.enums import EventType, NotificationChannel
from app.schema.notifications import (
    EventType_,
    MarkNotificationsReadInput,
    MarkNotificationsReadPayload,
    NotificationDeliveryType,
    NotificationErrorCode,
    NotificationType,
    NotificationUserError,
)
from app.services.notifications import queries

NEWEST_FIRST = ("-created_at", "-id")


def _ids(values: list[strawberry.ID]) -> list[uuid.UUID]:
    """Malformed ids are treated like someone else's: ignored, never reported."""
    parsed = []
    for value in values:
        try:
            parsed.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return parsed


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="Your notifications, newest first.")
    async def notifications(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        unread_only: bool = False,
    ) -> Connection[NotificationType]:
        viewer = await info.context.require_viewer()
        return await paginate(
            queries.visible_notifications(viewer, unread_only=unread_only),
            first=first,
            after=after,
            last=last,
            before=before,
            order=NEWEST_FIRST,
        )

    @strawberry.field(description="How many of your notifications are unread.")
    async def unread_notification_count(self, info: Info) -> int:
        viewer = await info.context.require_viewer()
        return await queries.unread_count(viewer)

    @strawberry.field(
        description="Agents only: how a client's notifications went out, newest first, one "
        "entry per notification and channel, with the receipts' states (DELIVERED, READ, "
        "UNDELIVERED, FAILED), error codes and failovers. A missing or malformed client id "
        "answers an empty list."
    )
    async def client_deliveries(
        self,
        info: Info,
        client_id: strawberry.ID,
        channel: NotificationChannel | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[NotificationDeliveryType]:
        await info.context.require_agent()
        profile_id = _ids([client_id])
        return await paginate(
            queries.client_deliveries(profile_id[0] if profile_id else None, channel),
            first=first,
            after=after,
            last=None,
            before=None,
            order=NEWEST_FIRST,
        )

    @strawberry.field(
        description="The audit log (agents only), newest first; filter by entity and type. "
        "Dossier-scoped events about a document or message carry the dossier id in "
        "`payload.dossierId`."
    )
    async def events(
        self,
        info: Info,
        entity_type: str | None = None,
        entity_id: strawberry.ID | None = None,
        event_types: list[EventType] | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[EventType_]:
        await info.context.require_agent()
        entity: uuid.UUID | None = None
        if entity_id is not None:
            try:
                # a dossier's case number is its id here too
                entity = await dossier_id_of(entity_id) if entity_type == "dossier" else None
                entity = entity or uuid.UUID(str(entity_id))
            except (ValueError, NotFound):
                entity = uuid.UUID(int=0)  # a malformed id matches nothing, like a missing one
        queryset = queries.event_log(
            entity_type=entity_type, entity_id=entity, event_types=event_types
        )
        return await paginate(
            queryset, first=first, after=after, last=last, before=before, order=NEWEST_FIRST
        )


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(
        description="Mark your notifications read: the given ids, or all of them. Ids that "
        "are not yours are ignored."
    )
    async def mark_notifications_read(
        self, info: Info, input: MarkNotificationsReadInput
    ) -> MarkNotificationsReadPayload:
        viewer = await info.context.require_viewer()
        if not input.all and input.ids is None:
            return MarkNotificationsReadPayload(
                unread_count=await queries.unread_count(viewer),
                user_errors=[
                    NotificationUserError(
                        field=["ids"],
                        message="Give the ids to mark, or all: true.",
                        code=NotificationErrorCode.REQUIRED,
                    )
                ],
            )
        if input.ids is not None and len(input.ids) > queries.MAX_MARK_IDS:
            return MarkNotificationsReadPayload(
                unread_count=await queries.unread_count(viewer),
                user_errors=[
                    NotificationUserError(
                        field=["ids"],
                        message=f"At most {queries.MAX_MARK_IDS} ids at a time.",
                        code=NotificationErrorCode.TOO_MANY_IDS,
                    )
                ],
            )
        marked, count = await queries.mark_read(viewer, ids=_ids(input.ids or []), all_=input.all)
        return MarkNotificationsReadPayload(
            notifications=row_as(list[NotificationType], marked),
            marked_count=count,
            unread_count=await queries.unread_count(viewer),
        )
