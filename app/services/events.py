"""Writing events: the audit log, the timeline and the outbox.

Call `record` inside the transaction that makes the change, so both commit or neither does.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.db import Writes
from app.domain.viewer import Viewer
from app.models import Event
from app.models.enums import ActorType, EventType
from app.services import outbox


def actor_of(viewer: Viewer | None) -> tuple[ActorType, uuid.UUID | None]:
    if viewer is None:
        return ActorType.SYSTEM, None
    return viewer.actor_type, viewer.actor_id


def build(
    entity_type: str,
    entity_id: uuid.UUID,
    event_type: EventType,
    *,
    actor: Viewer | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """The event row, not saved yet: save it in the change's transaction, then `track` it
    (or use `record`, which does both)."""
    actor_type, actor_id = actor_of(actor)
    return Event(
        entity_type=entity_type,
        entity_id=entity_id,
        event_type=event_type,
        actor_type=actor_type,
        actor_id=actor_id,
        payload=payload or {},
    )


def track(event: Event) -> None:
    """Hand a saved event to the current operation's outbox (dispatched after commit)."""
    outbox.track(event.id)


async def record(
    entity_type: str,
    entity_id: uuid.UUID,
    event_type: EventType,
    *,
    actor: Viewer | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    event = build(entity_type, entity_id, event_type, actor=actor, payload=payload)
    await event.save(force_create=True)
    track(event)
    return event


def add(
    writes: Writes,
    entity_type: str,
    entity_id: uuid.UUID,
    event_type: EventType,
    *,
    actor: Viewer | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """`record` for a batch of writes: the event joins `writes` (which the caller runs in
    the change's transaction) and the outbox, in the order events are added."""
    event = build(entity_type, entity_id, event_type, actor=actor, payload=payload)
    writes.insert(event)
    track(event)
    return event
