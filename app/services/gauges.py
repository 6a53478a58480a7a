"""The database-wide numbers an operator watches, read when `/metrics` is scraped (never
per request): how far the outbox is behind and how many deliveries wait. One indexed
query each (tests/test_query_plans.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.functions import Count

from app.models import Event, NotificationDelivery
from app.models.enums import NotificationChannel, NotificationStatus


async def outbox_lag_seconds(now: datetime | None = None) -> float:
    """Age of the oldest event not yet processed (idx_events_unprocessed); 0 when none."""
    rows = (
        await Event.filter(processed_at=None)
        .order_by("created_at")
        .limit(1)
        .values_list("created_at", flat=True)
    )
    if not rows:
        return 0.0
    oldest: datetime = rows[0]  # type: ignore[assignment]  # flat=True: the value itself
    return max(0.0, ((now or datetime.now(UTC)) - oldest).total_seconds())


async def delivery_backlog() -> dict[str, int]:
    """PENDING deliveries per channel (idx_deliveries_due), every channel present."""
    rows = (
        await NotificationDelivery.filter(status=NotificationStatus.PENDING)
        .annotate(waiting=Count("id"))
        .group_by("channel")
        .values_list("channel", "waiting")
    )
    backlog = {channel.value: 0 for channel in NotificationChannel}
    for channel, waiting in rows:
        backlog[str(getattr(channel, "value", channel))] = int(waiting)
    return backlog
