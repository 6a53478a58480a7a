"""Reading and marking notifications, and the audit log: what the API's resolvers call.

A viewer only ever sees their own notifications (a client's by profile, an agent's by
agent); ids that are not theirs are ignored like ids that do not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from app.db import fetch_value
from app.models import Event, Notification, NotificationDelivery
from app.models.enums import EventType, NotificationChannel


def _owner_filter(viewer: Any) -> dict[str, Any]:
    if getattr(viewer, "agent", None) is not None:
        return {"agent_id": viewer.agent.id}
    if getattr(viewer, "profile", None) is not None:
        return {"user_id": viewer.profile.id}
    raise ValueError("a viewer is a client or an agent")


def visible_notifications(viewer: Any, *, unread_only: bool = False):
    """The viewer's own notifications, never anyone else's."""
    queryset = Notification.filter(**_owner_filter(viewer))
    if unread_only:
        queryset = queryset.filter(read_at=None)
    return queryset


async def unread_count(viewer: Any) -> int:
    # Read on every dashboard: the statement is written once, not rebuilt per request.
    ((column, owner),) = _owner_filter(viewer).items()
    sql = f'SELECT COUNT(*) FROM "notifications" WHERE "{column}" = $1 AND "read_at" IS NULL'
    return int(await fetch_value(sql, owner))


MAX_MARK_IDS = 100


async def mark_read(
    viewer: Any,
    *,
    ids: Sequence[uuid.UUID] | None = None,
    all_: bool = False,
    now: datetime | None = None,
) -> tuple[list[Notification], int]:
    """Mark the viewer's notifications read (these ids, or all): the newest of those marked
    (at most MAX_MARK_IDS: every one when ids are given) and how many were marked.

    Ids that are not the viewer's (or do not exist) are ignored alike. `all` is one UPDATE
    however many are unread (years of notifications are never loaded to be marked).
    """
    now = now or datetime.now(UTC)
    queryset = visible_notifications(viewer, unread_only=True)
    if not all_:
        queryset = queryset.filter(id__in=list(ids or []))
    marked = list(await queryset.order_by("-created_at", "-id").limit(MAX_MARK_IDS))
    if not marked:
        return [], 0
    if all_:
        # Those created after `marked` was read stay unread: they were not shown.
        count = (
            await visible_notifications(viewer, unread_only=True)
            .filter(created_at__lte=marked[0].created_at)
            .update(read_at=now)
        )
    else:
        count = await Notification.filter(
            id__in=[n.id for n in marked], read_at=None, **_owner_filter(viewer)
        ).update(read_at=now)
    for notification in marked:
        notification.read_at = now
    return marked, count


def event_log(
    *,
    entity_type: str | None = None,
    entity_id: uuid.UUID | None = None,
    event_types: Sequence[EventType] | None = None,
):
    """The audit log, filtered (the API pages it newest first)."""
    queryset = Event.all()
    if entity_type is not None:
        queryset = queryset.filter(entity_type=entity_type)
    if entity_id is not None:
        queryset = queryset.filter(entity_id=entity_id)
    if event_types:
        queryset = queryset.filter(event_type__in=list(event_types))
    return queryset


def client_deliveries(profile_id: uuid.UUID | None, channel: NotificationChannel | None = None):
    """Staff: how each notification of one client went out, per channel (issue 20). A
    missing or malformed client id matches nothing."""
    queryset = NotificationDelivery.filter(notification__user_id=profile_id or uuid.UUID(int=0))
    if channel is not None:
        queryset = queryset.filter(channel=channel)
    return queryset
