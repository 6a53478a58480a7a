"""The outbox consumer: from a batch of events to notifications and their deliveries.

`consume` is registered as "notifications" by `app.consumers.install_consumers`.
It runs inside `outbox.dispatch`'s transaction, so an event's notifications and its
`processed_at` commit together. For every event whose type has a rule in `RULES` it finds
the recipients, renders the rule's template in the recipient's language and writes one
`notifications` row per recipient plus one `notification_deliveries` row per channel
(unique per notification and channel). IN_APP is the row itself (its delivery is recorded
SENT at once); the other channels are PENDING until the delivery worker
(`app.services.delivery`) sends them.

- Idempotent per event: a recipient already notified for an event (notification row with
  that `event_id`, or an event folded into a group) is never notified twice.
- Throttled chat: MESSAGE_SENT makes one notification per conversation burst and recipient
  (`group_key`); later messages of the burst fold into it (count, wording) and send nothing
  new. A burst ends when the recipient reads the notification or the chat (MESSAGES_READ),
  or after `message_notification_burst_minutes` of silence.
- Payment reminders go out only on the channel their event names; the e-mail and the phone
  reminder of one slot share one notification (one entry in the app).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.connection import get_connection
from tortoise.expressions import Q

from app.models import Event, Notification, NotificationDelivery
from app.models.enums import ActorType, EventType, NotificationChannel, NotificationStatus
from app.services.notifications.facts import (
    Facts,
    build_context,
    dossier_id_of,
    load_facts,
    message_preview,
)
from app.services.notifications.rendering import render, render_heading
from app.services.notifications.rules import (
    RULES,
    Grouping,
    Recipient,
    Rule,
    channels_for,
    is_actor,
)
from app.settings import Settings, get_settings

logger = logging.getLogger("app.notifications")

MAX_FOLDED_EVENT_IDS = 200


def _group_key(rule: Rule, event: Event, recipient: Recipient, facts: Facts) -> str | None:
    if rule.grouping == Grouping.CHAT_BURST:
        dossier = facts.dossier_of(event)
        return f"chat:{dossier.id}:{recipient.key}" if dossier else None
    if rule.grouping == Grouping.REMINDER_SLOT:
        slot = (event.payload or {}).get("slot", 0)
        return f"reminder:{event.entity_id}:{slot}:{recipient.key}"
    return None


@dataclass
class _Planned:
    event: Event
    rule: Rule
    recipient: Recipient
    channels: list[tuple[NotificationChannel, str]]
    group_key: str | None


def _plan(event: Event, facts: Facts, settings: Settings) -> list[_Planned]:
    planned = []
    for rule in RULES[event.event_type]:
        seen: set[str] = set()
        for recipient in facts.recipients(rule, event):
            if recipient.key in seen or is_actor(event, recipient):
                continue
            seen.add(recipient.key)
            channels = channels_for(rule, event, recipient, settings)
            if not channels:
                continue
            group_key = _group_key(rule, event, recipient, facts)
            planned.append(_Planned(event, rule, recipient, channels, group_key))
    return planned


def _still_open(group: Notification, rule: Rule, event: Event, settings: Settings) -> bool:
    """May `event` fold into the group's notification instead of making a new one?"""
    if rule.grouping == Grouping.REMINDER_SLOT:
        return True
    if group.read_at is not None:
        return False
    last = (group.payload or {}).get("lastEventAt")
    if not last:
        return False
    window = timedelta(minutes=settings.message_notification_burst_minutes)
    return event.created_at - datetime.fromisoformat(last) <= window


async def _lock_groups(keys: Iterable[str]) -> None:
    """Serialise concurrent dispatchers on the same groups (PostgreSQL; SQLite already
    runs one write transaction at a time)."""
    connection = get_connection("default")
    if connection.capabilities.dialect != "postgres":
        return
    ordered = sorted(set(keys))
    if ordered:  # one statement, the locks taken in key order (no deadlock between two)
        await connection.execute_query(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM unnest($1::text[]) WITH ORDINALITY AS keys(k, n) ORDER BY n",
            [ordered],
        )


async def _update_folded(rows: list[Notification]) -> None:
    """The folded notifications' new wording, in one statement: on PostgreSQL the rows'
    values as arrays (no per-row CASE for the ORM to build), elsewhere its bulk update."""
    connection = get_connection("default")
    if connection.capabilities.dialect != "postgres":
        await Notification.bulk_update(rows, fields=["title", "message", "payload"])
        return
    payload_field = Notification._meta.fields_map["payload"]
    payloads = [payload_field.to_db_value(row.payload, row) for row in rows]
    await connection.execute_query(
        'UPDATE "notifications" AS n SET "title" = v.title, "message" = v.message, '
        '"payload" = v.payload::jsonb '
        "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) "
        "AS v(id, title, message, payload) WHERE n.id = v.id",
        [
            [row.id for row in rows],
            [row.title for row in rows],
            [row.message for row in rows],
            [p.decode() if isinstance(p, bytes) else p for p in payloads],
        ],
    )


async def consume(events: Sequence[Event], *, settings: Settings | None = None) -> None:
    """The outbox consumer: turn a batch of events into notifications and deliveries."""
    settings = settings or get_settings()
    await _close_read_chats([e for e in events if e.event_type == EventType.MESSAGES_READ])
    todo = sorted(
        (e for e in events if e.event_type in RULES), key=lambda e: (e.created_at, str(e.id))
    )
    if not todo:
        return
    facts = await load_facts(todo)

    planned: list[_Planned] = []
    for event in todo:
        try:
            planned += _plan(event, facts, settings)
        except Exception:  # one malformed event must not hold back the whole batch
            logger.exception("no notification for event %s (%s)", event.id, event.event_type)
    if not planned:
        return

    # Idempotency: (event, recipient) pairs already turned into a notification.
    done: set[tuple[uuid.UUID, str]] = set()
    for event_id, payload in await Notification.filter(
        event_id__in=list({p.event.id for p in planned})
    ).values_list("event_id", "payload"):
        done.add((uuid.UUID(str(event_id)), (payload or {}).get("recipientKey", "")))

    group_keys = {p.group_key for p in planned if p.group_key}
    groups: dict[str, Notification] = {}
    if group_keys:
        await _lock_groups(group_keys)
        # A chat burst can only continue in an unread notification; a reminder slot in any.
        open_groups = Notification.filter(group_key__in=group_keys).filter(
            Q(read_at=None) | Q(group_key__startswith="reminder:")
        )
        for existing in await open_groups.order_by("created_at", "id"):
            if existing.group_key is not None:  # always: it is one of group_keys
                groups[existing.group_key] = existing  # the latest one of each group wins
    group_channels: dict[uuid.UUID, set[NotificationChannel]] = {}
    if groups:
        for notification_id, channel in await NotificationDelivery.filter(
            notification_id__in=[g.id for g in groups.values()]
        ).values_list("notification_id", "channel"):
            group_channels.setdefault(notification_id, set()).add(NotificationChannel(channel))

    now = datetime.now(UTC)
    new_notifications: list[Notification] = []
    new_ids: set[uuid.UUID] = set()
    folded: dict[uuid.UUID, Notification] = {}
    deliveries: list[NotificationDelivery] = []

    def add_deliveries(notification: Notification, pairs: list[tuple[NotificationChannel, str]]):
        have = group_channels.setdefault(notification.id, set())
        for channel, address in pairs:
            if channel in have:
                continue
            have.add(channel)
            in_app = channel == NotificationChannel.IN_APP
            deliveries.append(
                NotificationDelivery(
                    notification_id=notification.id,
                    channel=channel,
                    recipient=address,
                    status=NotificationStatus.SENT if in_app else NotificationStatus.PENDING,
                    provider="in_app" if in_app else None,
                    sent_at=now if in_app else None,
                    next_attempt_at=None if in_app else now,
                )
            )

    for plan in planned:
        event, rule, recipient = plan.event, plan.rule, plan.recipient
        if (event.id, recipient.key) in done:
            continue
        group = groups.get(plan.group_key) if plan.group_key else None
        if group is not None and str(event.id) in (group.payload or {}).get("eventIds", []):
            continue  # already folded into its group
        if group is not None and _still_open(group, rule, event, settings):
            preview = (
                message_preview(event, facts)
                if event.event_type == EventType.MESSAGE_SENT
                else None
            )
            _fold(group, event, plan.channels, preview=preview)
            if group.id not in new_ids:
                folded[group.id] = group
            add_deliveries(group, plan.channels)
            continue
        try:
            context = build_context(event, recipient, facts, settings)
            rendered = render(rule.template, recipient.locale, context)
        except Exception:  # a template error must not hold back the whole batch
            logger.exception("cannot render %s for event %s", rule.template, event.id)
            continue
        dossier = facts.dossier_of(event)
        notification = Notification(
            user_id=recipient.profile_id,
            agent_id=recipient.agent_id,
            dossier_id=dossier.id if dossier else None,
            event_id=event.id,
            title=rendered.title,
            message=rendered.message,
            template_code=rule.template,
            action_url=context["action_url"],
            group_key=plan.group_key,
            payload={
                "eventType": event.event_type.value,
                "recipientKey": recipient.key,
                "recipientName": recipient.name,
                "locale": recipient.locale,
                "context": context,
                "eventIds": [str(event.id)],
                "lastEventAt": event.created_at.isoformat(),
                "channelUrls": _channel_urls(event, plan.channels),
            },
        )
        new_notifications.append(notification)
        new_ids.add(notification.id)
        done.add((event.id, recipient.key))
        if plan.group_key:
            groups[plan.group_key] = notification
        add_deliveries(notification, plan.channels)

    if new_notifications:
        await Notification.bulk_create(new_notifications)
    if folded:  # one statement for the whole batch
        await _update_folded(list(folded.values()))
    if deliveries:
        await NotificationDelivery.bulk_create(deliveries)
    if new_notifications or deliveries:
        logger.info(
            "%d notification(s), %d delivery(ies) from %d event(s)",
            len(new_notifications),
            len(deliveries),
            len(todo),
        )


def _channel_urls(event: Event, channels: list[tuple[NotificationChannel, str]]) -> dict:
    """A reminder's link is tracked per channel: remember which link each channel carries."""
    url = (event.payload or {}).get("url")
    if event.event_type != EventType.PAYMENT_REMINDER_SENT or not url:
        return {}
    return {channel.value: str(url) for channel, _ in channels}


def _fold(
    group: Notification,
    event: Event,
    channels: list[tuple[NotificationChannel, str]],
    *,
    preview: str | None = None,
) -> None:
    """Another event of the same burst/slot: count it, re-word the notification (the
    e-mail not sent yet will quote the latest message)."""
    payload = dict(group.payload or {})
    payload["channelUrls"] = {
        **_channel_urls(event, channels),
        **(payload.get("channelUrls") or {}),
    }
    event_ids = [*payload.get("eventIds", []), str(event.id)][-MAX_FOLDED_EVENT_IDS:]
    payload["eventIds"] = event_ids
    payload["lastEventAt"] = max(payload.get("lastEventAt") or "", event.created_at.isoformat())
    if event.event_type == EventType.MESSAGE_SENT:
        context = dict(payload.get("context") or {})
        context["count"] = int(context.get("count", 1)) + 1
        if preview:
            context["preview"] = preview
        payload["context"] = context
        group.title, group.message = render_heading(
            group.template_code, payload.get("locale", "fr"), context
        )
    group.payload = payload


async def _close_read_chats(events: Sequence[Event]) -> None:
    """Reading a dossier's chat ends the reader's burst: its chat notifications are read."""
    for event in events:
        dossier_id = dossier_id_of(event)
        if dossier_id is None or event.actor_id is None:
            continue
        side = {ActorType.USER: "user", ActorType.AGENT: "agent"}.get(event.actor_type)
        if side is None:
            continue
        await Notification.filter(
            group_key=f"chat:{dossier_id}:{side}:{event.actor_id}", read_at=None
        ).update(read_at=event.created_at)
