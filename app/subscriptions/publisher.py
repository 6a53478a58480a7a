"""The outbox consumer that turns dispatched events into live updates.

It runs after commit (the outbox dispatches committed events), in registration order after
the notifications consumer, inside the dispatch transaction. Per batch it reads what the
subscribers will need in a fixed number of queries (messages and their senders' names,
the dossiers concerned, the batch's notifications) and publishes self-contained payloads:
a subscriber never queries the database per event (DESIGN §6).

A publish that fails raises `PublishFailed` once the batch is tried: the outbox then leaves
the batch unprocessed and the worker's relay dispatches it again later (subscribers drop
what they already had, by id). The mutation that made the events has already committed
and answers normally.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from app.models import Agent, Dossier, DossierMember, Event, Message, Notification, Profile
from app.models.enums import ActorType, EventType
from app.settings import get_settings
from app.subscriptions import topics
from app.subscriptions.hub import Hub, hub_for, publishing_hubs

logger = logging.getLogger("app.subscriptions")

E = EventType
REVIEW_EVENTS = {E.DOCUMENT_APPROVED, E.DOCUMENT_CHANGES_REQUESTED, E.DOCUMENT_REJECTED}
UPDATE_EVENTS = {
    E.DOSSIER_STATUS_CHANGED,
    E.DOSSIER_COMPLETED,
    E.DOSSIER_CANCELLED,
    E.STEP_STARTED,
    E.STEP_COMPLETED,
    E.STEP_SKIPPED,
    E.STEP_ASSIGNED,
    E.STEP_DUE_DATE_CHANGED,
}
REVIEW_DECISIONS = {
    E.DOCUMENT_APPROVED: "APPROVED",
    E.DOCUMENT_CHANGES_REQUESTED: "CHANGES_REQUESTED",
    E.DOCUMENT_REJECTED: "REJECTED",
}


class PublishFailed(Exception):
    pass


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


def dossier_id_of(event: Event) -> str | None:
    """The event conventions: entity_id for entity_type "dossier", else payload.dossierId."""
    if event.entity_type == "dossier":
        return str(event.entity_id)
    value = (event.payload or {}).get("dossierId")
    return str(value) if value else None


async def sender_names(rows: Sequence[Message]) -> dict[str, str]:
    """Display names of the senders of these messages: at most two queries."""
    agents = {m.sender_id for m in rows if m.sender_type == ActorType.AGENT and m.sender_id}
    profiles = {m.sender_id for m in rows if m.sender_type == ActorType.USER and m.sender_id}
    names: dict[str, str] = {}
    if agents:
        for agent in await Agent.filter(id__in=list(agents)).only("id", "name"):
            names[str(agent.id)] = agent.name
    if profiles:
        for profile in await Profile.filter(id__in=list(profiles)).only("id", "full_name"):
            names[str(profile.id)] = profile.full_name
    return names


def message_data(
    message: Message, names: dict[str, str], previous_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "dossierId": str(message.dossier_id),
        "senderType": message.sender_type.value,
        "senderId": _str(message.sender_id),
        "senderName": names.get(str(message.sender_id)) if message.sender_id else None,
        "content": message.content,
        "attachments": message.attachments or [],
        "channel": message.channel.value if message.channel else "IN_APP",
        "createdAt": _iso(message.created_at),
        "readAt": _iso(message.read_at),
        "previousId": previous_id,
    }


def review_data(event: Event, dossier: Dossier | None) -> dict[str, Any]:
    payload = event.payload or {}
    return {
        "eventId": str(event.id),
        "eventType": event.event_type.value,
        "dossierId": dossier_id_of(event),
        "documentId": payload.get("documentId")
        or (str(event.entity_id) if event.entity_type == "document" else None),
        "documentVersionId": payload.get("versionId"),
        "decision": payload.get("decision") or REVIEW_DECISIONS[event.event_type],
        "reason": payload.get("reason"),
        "reviewerId": _str(event.actor_id) if event.actor_type == ActorType.AGENT else None,
        "occurredAt": _iso(event.created_at),
        "dossierStatus": dossier.status.value if dossier else None,
    }


def update_data(event: Event, dossier: Dossier | None) -> dict[str, Any]:
    payload = event.payload or {}
    return {
        "eventId": str(event.id),
        "eventType": event.event_type.value,
        "dossierId": dossier_id_of(event),
        "occurredAt": _iso(event.created_at),
        "oldStatus": payload.get("old"),
        "newStatus": payload.get("new"),
        "reason": payload.get("reason"),
        "stepInstanceId": payload.get("stepInstanceId"),
        "assignedToId": payload.get("agentId"),
        # the dossier as it is now (read after commit), so a subscriber needs no query
        "status": dossier.status.value if dossier else None,
        "currentStepInstanceId": _str(dossier.current_step_instance_id) if dossier else None,
        "completedAt": _iso(dossier.completed_at) if dossier else None,
        "updatedAt": _iso(dossier.updated_at) if dossier else None,
    }


def notification_data(notification: Notification) -> dict[str, Any]:
    return {
        "id": str(notification.id),
        "userId": _str(notification.user_id),
        "agentId": _str(notification.agent_id),
        "dossierId": _str(notification.dossier_id),
        "eventId": _str(notification.event_id),
        "title": notification.title,
        "message": notification.message,
        "templateCode": notification.template_code,
        "payload": notification.payload or {},
        "actionUrl": notification.action_url,
        "readAt": _iso(notification.read_at),
        "createdAt": _iso(notification.created_at),
        "groupKey": notification.group_key,
    }


def encode(kind: str, data: dict[str, Any]) -> str:
    return orjson.dumps({"kind": kind, "data": data}).decode()


def decode(raw: str) -> tuple[str, dict[str, Any]]:
    envelope = orjson.loads(raw)
    return envelope["kind"], envelope["data"]


async def build(batch: Sequence[Event]) -> list[tuple[str, str]]:
    """(topic, payload) pairs for a batch of events, in event order."""
    sent = [e for e in batch if e.event_type == E.MESSAGE_SENT and e.entity_type == "message"]
    sent_ids = {e.id for e in sent}
    dossier_scoped = [e for e in batch if e.event_type in REVIEW_EVENTS | UPDATE_EVENTS]
    out: list[tuple[str, str]] = []

    messages: dict[uuid.UUID, Message] = {}
    names: dict[str, str] = {}
    if sent:
        rows = await Message.filter(id__in=[e.entity_id for e in sent])
        messages = {row.id: row for row in rows}
        names = await sender_names(rows)

    dossiers: dict[str, Dossier] = {}
    wanted = {d for d in (dossier_id_of(e) for e in dossier_scoped) if d}
    members: dict[str, list[uuid.UUID]] = {}
    if wanted:
        dossiers = {str(d.id): d for d in await Dossier.filter(id__in=list(wanted))}
        # a dossier's members follow it on their own feeds as its client does (issue 18)
        for member in await DossierMember.filter(dossier_id__in=list(wanted), removed_at=None):
            members.setdefault(str(member.dossier_id), []).append(member.profile_id)

    for event in batch:
        if event.id in sent_ids:
            message = messages.get(event.entity_id)
            if message is None:
                continue
            previous = (event.payload or {}).get("previousMessageId")
            data = message_data(message, names, previous)
            out.append((topics.dossier_messages(data["dossierId"]), encode("message", data)))
        elif event.event_type in REVIEW_EVENTS | UPDATE_EVENTS:
            dossier_id = dossier_id_of(event)
            if dossier_id is None:
                continue
            dossier = dossiers.get(dossier_id)
            review = event.event_type in REVIEW_EVENTS
            payload = encode(
                "review" if review else "update",
                review_data(event, dossier) if review else update_data(event, dossier),
            )
            targets = (
                [topics.dossier_reviews(dossier_id), topics.AGENT_REVIEWS]
                if review
                else [topics.dossier_updates(dossier_id), topics.AGENT_UPDATES]
            )
            if dossier is not None:
                for profile_id in [dossier.user_id, *members.get(str(dossier.id), [])]:
                    targets.append(
                        topics.client_reviews(profile_id)
                        if review
                        else topics.client_updates(profile_id)
                    )
            out += [(topic, payload) for topic in targets]

    if batch:
        for notification in await Notification.filter(event_id__in=[e.id for e in batch]):
            data = notification_data(notification)
            if data["userId"]:
                out.append((topics.notifications("profile", data["userId"]), encode("n", data)))
            if data["agentId"]:
                out.append((topics.notifications("agent", data["agentId"]), encode("n", data)))
    return out


async def publish_batch(batch: Sequence[Event], hubs: Sequence[Hub] | None = None) -> int:
    """Publish a batch's live updates to every hub of this process; returns how many
    publications were made. Raises PublishFailed (after trying) if any failed."""
    pairs = await build(batch)
    if not pairs:
        return 0
    targets = hubs if hubs is not None else publishing_hubs(hub_for(get_settings()))
    done = 0
    for hub in targets:
        for topic, payload in pairs:
            if not await hub.publish(topic, payload):
                # stop at the first failure: the medium is most likely down
                raise PublishFailed("a live update could not be published; the relay will retry")
            done += 1
    return done


async def consume(batch: Sequence[Event]) -> None:
    """The outbox consumer (see app.consumers). Marks the batch `published_at`
    (in the dispatch transaction) once its live updates are all out."""
    await publish_batch(batch)
    if batch:
        await Event.filter(id__in=[e.id for e in batch], published_at=None).update(
            published_at=datetime.now(UTC)
        )
