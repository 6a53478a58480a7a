"""An agent's chat answer, sent back to the client on the channel they wrote from.

The outbox consumer "phone-relay" (after "notifications"): for each MESSAGE_SENT by an
agent, when the dossier's client last wrote to us on WhatsApp less than 24 hours ago (and
has not opted out), or by SMS within `sms_reply_window_hours`, the answer goes there as
text: a `chat_reply` notification with one delivery on that channel (the most recent of
the two when both are open). It is addressed to the client's phone only (no in-app row:
the chat is already in the app, and the e-mail notice of the burst is unchanged).
Idempotent per event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from app.models import Agent, Dossier, Event, Message, Notification, NotificationDelivery, Profile
from app.models.enums import ActorType, EventType, NotificationChannel, NotificationStatus
from app.services.notifications.rendering import normal_locale, render_heading
from app.services.phone.consents import PHONE_CHANNELS, allows, consents_of, window_open
from app.settings import Settings, get_settings

TEMPLATE = "chat_reply"


async def consume(events: Sequence[Event], *, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    todo = [
        e
        for e in events
        if e.event_type == EventType.MESSAGE_SENT
        and e.entity_type == "message"
        and e.actor_type == ActorType.AGENT
    ]
    if not todo:
        return
    done = set(
        await Notification.filter(
            event_id__in=[e.id for e in todo], template_code=TEMPLATE
        ).values_list("event_id", flat=True)
    )
    todo = [e for e in todo if e.id not in done]
    if not todo:
        return
    messages = {m.id: m for m in await Message.filter(id__in=[e.entity_id for e in todo])}
    dossiers = {
        d.id: d
        for d in await Dossier.filter(id__in=list({m.dossier_id for m in messages.values()}))
    }
    profiles = {
        p.id: p for p in await Profile.filter(id__in=list({d.user_id for d in dossiers.values()}))
    }
    states = await consents_of(profiles)
    agents = {
        a.id: a.name
        for a in await Agent.filter(id__in=[e.actor_id for e in todo if e.actor_id]).only(
            "id", "name"
        )
    }
    now = datetime.now(UTC)
    notifications: list[Notification] = []
    deliveries: list[NotificationDelivery] = []
    for event in todo:
        message = messages.get(event.entity_id)
        dossier = dossiers.get(message.dossier_id) if message else None
        profile = profiles.get(dossier.user_id) if dossier else None
        if message is None or dossier is None or profile is None or not profile.phone:
            continue
        if profile.erased_at is not None:
            continue
        channel = _reply_channel(profile.id, states, now, settings)
        if channel is None:
            continue
        locale = normal_locale(profile.locale)
        context = {
            "actor": agents.get(event.actor_id, "") if event.actor_id else "",
            "text": message.content,
            "reference": dossier.reference,
            "dossier_ref": dossier.reference,
            "action_url": f"{settings.public_app_url.rstrip('/')}/dossiers/{dossier.id}",
        }
        title, body = render_heading(TEMPLATE, locale, context)
        notification = Notification(
            user_id=None,  # the client's chat holds it already: no in-app notification
            dossier_id=dossier.id,
            event_id=event.id,
            title=title,
            message=body,
            template_code=TEMPLATE,
            payload={
                "eventType": event.event_type.value,
                "recipientKey": f"phone:{profile.id}",
                "profileId": str(profile.id),
                "locale": locale,
                "context": context,
            },
        )
        notifications.append(notification)
        deliveries.append(
            NotificationDelivery(
                notification_id=notification.id,
                channel=channel,
                recipient=profile.phone,
                status=NotificationStatus.PENDING,
                next_attempt_at=now,
            )
        )
    if notifications:
        await Notification.bulk_create(notifications)
        await NotificationDelivery.bulk_create(deliveries)


def _reply_channel(
    profile_id: uuid.UUID,
    states: dict,
    now: datetime,
    settings: Settings,
) -> NotificationChannel | None:
    open_ones = []
    for channel in PHONE_CHANNELS:
        consent = states.get((profile_id, channel))
        if consent is None or allows(consent, channel) is not None:
            continue
        if window_open(consent, channel, now, settings) and consent.last_inbound_at:
            open_ones.append((consent.last_inbound_at, channel))
    return max(open_ones)[1] if open_ones else None
