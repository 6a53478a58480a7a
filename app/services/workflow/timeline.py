"""The dossier timeline (a read model): status changes, step events, uploads, reviews,
messages and the refunds of the order that opened it, merged in time order."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise.expressions import Subquery

from app.db import latest_ids_per_parent
from app.models import (
    DocumentReview,
    DocumentVersion,
    DossierStatusHistory,
    Event,
    Message,
    Order,
)
from app.models.enums import ActorType, EventType


class TimelineKind(StrEnum):
    STATUS_CHANGED = "STATUS_CHANGED"
    STEP_STARTED = "STEP_STARTED"
    STEP_COMPLETED = "STEP_COMPLETED"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_ASSIGNED = "STEP_ASSIGNED"
    DOCUMENT_UPLOADED = "DOCUMENT_UPLOADED"
    DOCUMENT_REVIEWED = "DOCUMENT_REVIEWED"
    MESSAGE_SENT = "MESSAGE_SENT"
    DUE_DATE_CHANGED = "DUE_DATE_CHANGED"
    DOCUMENT_REMINDER_SENT = "DOCUMENT_REMINDER_SENT"
    ORDER_PARTIALLY_REFUNDED = "ORDER_PARTIALLY_REFUNDED"
    ORDER_REFUNDED = "ORDER_REFUNDED"
    DOCUMENT_REQUESTED = "DOCUMENT_REQUESTED"
    DOCUMENT_WAIVED = "DOCUMENT_WAIVED"
    FILE_SHARED = "FILE_SHARED"


STEP_EVENTS = {
    EventType.STEP_STARTED: TimelineKind.STEP_STARTED,
    EventType.STEP_COMPLETED: TimelineKind.STEP_COMPLETED,
    EventType.STEP_SKIPPED: TimelineKind.STEP_SKIPPED,
    EventType.STEP_ASSIGNED: TimelineKind.STEP_ASSIGNED,
    EventType.STEP_DUE_DATE_CHANGED: TimelineKind.DUE_DATE_CHANGED,
    EventType.DOCUMENT_REMINDER_SENT: TimelineKind.DOCUMENT_REMINDER_SENT,
    # documents requested on the fly or waived, files shared (the dossier is their entity)
    EventType.DOCUMENT_REQUESTED: TimelineKind.DOCUMENT_REQUESTED,
    EventType.DOCUMENT_WAIVED: TimelineKind.DOCUMENT_WAIVED,
    EventType.FILE_SHARED: TimelineKind.FILE_SHARED,
}
# The order's events that belong on its dossier's timeline (the order is their entity).
REFUND_EVENTS = {
    EventType.ORDER_PARTIALLY_REFUNDED: TimelineKind.ORDER_PARTIALLY_REFUNDED,
    EventType.ORDER_REFUNDED: TimelineKind.ORDER_REFUNDED,
}


@dataclass(frozen=True)
class TimelineItem:
    kind: TimelineKind
    at: datetime
    actor_type: ActorType
    actor_id: uuid.UUID | None
    row: Any  # the history row, event, version, review or message behind the entry


# Per source: FROM (with the dossier reached), the dossier column, the time column.
_SOURCES = {
    "status": ('"dossier_status_history" t', 't."dossier_id"', 't."created_at"'),
    "events": ('"events" t', 't."entity_id"', 't."created_at"'),
    "versions": (
        '"document_versions" t JOIN "documents" d ON d."id" = t."document_id"',
        'd."dossier_id"',
        't."uploaded_at"',
    ),
    "reviews": (
        '"document_reviews" t JOIN "document_versions" v ON v."id" = t."document_version_id"'
        ' JOIN "documents" d ON d."id" = v."document_id"',
        'd."dossier_id"',
        't."reviewed_at"',
    ),
    "messages": ('"messages" t', 't."dossier_id"', 't."created_at"'),
    "refunds": (
        '"events" t JOIN "orders" o ON o."id" = t."entity_id"',
        'o."dossier_id"',
        't."created_at"',
    ),
}


async def latest_ids(
    source: str, dossier_ids: Sequence[str], last: int, before: Any = None
) -> list[Any]:
    """The ids of the latest `last` rows of `source` for each dossier (before `before`, a
    database value), in one statement (`app.db.latest_ids_per_parent`), so a batch of
    dossiers reads `last` rows each and not their whole history."""
    from_sql, parent, at = _SOURCES[source]
    where = ""
    if source == "events":
        kinds = ", ".join(f"'{kind.value}'" for kind in STEP_EVENTS)
        where = f't."entity_type" = \'dossier\' AND t."event_type" IN ({kinds})'
    elif source == "refunds":
        kinds = ", ".join(f"'{kind.value}'" for kind in REFUND_EVENTS)
        where = f't."entity_type" = \'order\' AND t."event_type" IN ({kinds})'
    return await latest_ids_per_parent(
        from_sql, parent, at, dossier_ids, last, where=where, before=before
    )


async def timelines(
    dossier_ids: Sequence[uuid.UUID], *, last: int, before: datetime | None = None
) -> dict[uuid.UUID, list[TimelineItem]]:
    """The latest `last` entries (before `before`) of each dossier, oldest first.

    Status history, step events (started, completed, skipped, assigned, due date moved,
    reminder sent, document requested or waived, file shared), uploads, reviews, messages
    and the refunds of the dossier's order, merged in time order. One query per source
    for the whole batch (two for a batch of dossiers: the ids of each dossier's latest
    `last` rows, then those rows), so each dossier costs at most `last` rows per source.
    """
    ids = list({str(i) for i in dossier_ids})
    if not ids or last <= 0:
        return {uuid.UUID(i): [] for i in ids}

    async def bounded(queryset: Any, column: str, source: str) -> Any:
        """The source's rows: `last` of them per dossier, however many dossiers (for a
        batch, their ids through a window per dossier, then the rows)."""
        if len(ids) > 1:
            model = queryset.model
            before_value = (
                model._meta.fields_map[column].to_db_value(before, model) if before else None
            )
            chosen = await latest_ids(source, ids, last, before_value)
            return await queryset.filter(id__in=chosen) if chosen else []
        if before is not None:
            queryset = queryset.filter(**{f"{column}__lt": before})
        return await queryset.order_by(f"-{column}", "-id").limit(last)

    out: dict[str, list[TimelineItem]] = defaultdict(list)
    for row in await bounded(
        DossierStatusHistory.filter(dossier_id__in=ids), "created_at", "status"
    ):
        out[str(row.dossier_id)].append(
            TimelineItem(
                TimelineKind.STATUS_CHANGED,
                row.created_at,
                ActorType(row.changed_by_type),
                row.changed_by_id,
                row,
            )
        )
    step_events = Event.filter(
        entity_type="dossier", entity_id__in=ids, event_type__in=list(STEP_EVENTS)
    )
    for row in await bounded(step_events, "created_at", "events"):
        out[str(row.entity_id)].append(
            TimelineItem(
                STEP_EVENTS[EventType(row.event_type)],
                row.created_at,
                ActorType(row.actor_type),
                row.actor_id,
                row,
            )
        )
    versions = DocumentVersion.filter(document__dossier_id__in=ids).select_related("document")
    for row in await bounded(versions, "uploaded_at", "versions"):
        out[str(row.document.dossier_id)].append(
            TimelineItem(
                TimelineKind.DOCUMENT_UPLOADED,
                row.uploaded_at,
                ActorType(row.uploaded_by_type),
                row.uploaded_by_id,
                row,
            )
        )
    reviews = DocumentReview.filter(document_version__document__dossier_id__in=ids).select_related(
        "document_version__document"
    )
    for row in await bounded(reviews, "reviewed_at", "reviews"):
        out[str(row.document_version.document.dossier_id)].append(
            TimelineItem(
                TimelineKind.DOCUMENT_REVIEWED,
                row.reviewed_at,
                ActorType.AGENT,
                row.reviewer_id,
                row,
            )
        )
    for row in await bounded(Message.filter(dossier_id__in=ids), "created_at", "messages"):
        out[str(row.dossier_id)].append(
            TimelineItem(
                TimelineKind.MESSAGE_SENT,
                row.created_at,
                ActorType(row.sender_type),
                row.sender_id,
                row,
            )
        )
    orders_of = Order.filter(dossier_id__in=ids).values("id")
    refund_events = Event.filter(
        entity_type="order",
        entity_id__in=Subquery(orders_of),
        event_type__in=list(REFUND_EVENTS),
    )
    refund_rows = await bounded(refund_events, "created_at", "refunds")
    if refund_rows:  # their dossier: one read, only when there are some
        dossier_of = dict(
            await Order.filter(id__in={row.entity_id for row in refund_rows}).values_list(
                "id", "dossier_id"
            )
        )
        for row in refund_rows:
            out[str(dossier_of[row.entity_id])].append(
                TimelineItem(
                    REFUND_EVENTS[EventType(row.event_type)],
                    row.created_at,
                    ActorType(row.actor_type),
                    row.actor_id,
                    row,
                )
            )
    result: dict[uuid.UUID, list[TimelineItem]] = {}
    for key in ids:
        items = sorted(out.get(key, []), key=lambda item: (item.at, str(item.row.id)))
        result[uuid.UUID(key)] = items[-last:]
    return result
