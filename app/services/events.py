"""Writing events: the audit log, the timeline and the outbox.

Call `record` inside the transaction that makes the change, so both commit or neither does.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.auth import Viewer
from app.models import Event
from app.models.enums import ActorType, EventType
from app.services import outbox


def actor_of(viewer: Viewer | None) -> tuple[ActorType, uuid.UUID | None]:
    if viewer is None:
        return ActorType.SYSTEM, None
    return viewer.actor_type, viewer.actor_id


async def record(
    entity_type: str,
    entity_id: uuid.UUID,
    event_type: EventType,
    *,
    actor: Viewer | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    actor_type, actor_id = actor_of(actor)
    event = await Event.create(
        entity_type=entity_type,
        entity_id=entity_id,
        event_type=event_type,
        actor_type=actor_type,
        actor_id=actor_id,
        payload=payload or {},
    )
    outbox.track(event.id)
    return event
