"""What the delivery worker may send on a phone channel, decided when it sends.

For a WHATSAPP delivery: the client must have opted in (else SMS instead); inside the
24-hour customer-service window (they wrote to us on WhatsApp less than 24 hours ago) the
message goes as free text; outside it, by the Twilio Content template that
`WHATSAPP_TEMPLATES` maps the notification's template and language to (`ContentSid` and
`ContentVariables`, filled from the notification's context); no such template: SMS instead.
For an SMS delivery: nothing once the client has opted SMS out.

"Instead" means: this delivery is FAILED with the reason (`last_error`, and
`provider_response.skipped` with its code) and one SMS delivery of the same notification
is queued, unless the notification already has one or SMS is opted out too.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson

from app.models import ChannelConsent, Notification
from app.models.enums import NotificationChannel
from app.providers.channels import Outbound
from app.services.phone.consents import allows, consents_of, window_open
from app.settings import Settings

REASONS = {
    "NO_WHATSAPP_OPT_IN": "the client has not opted in to WhatsApp",
    "WHATSAPP_OPTED_OUT": "the client opted out of WhatsApp",
    "SMS_OPTED_OUT": "the client opted out of SMS",
    "NO_WHATSAPP_TEMPLATE": "no WhatsApp template for {template} in {locale} "
    "(outside the 24-hour window)",
}
MAX_VARIABLE_CHARS = 1024  # Twilio Content variables are short strings


@dataclass(frozen=True)
class Skip:
    code: str
    reason: str
    fallback: NotificationChannel | None = None


Consents = dict[tuple[uuid.UUID, NotificationChannel], ChannelConsent]


def profile_of(notification: Notification) -> uuid.UUID | None:
    """The client a notification is for (a chat relay carries it in its payload)."""
    if notification.user_id:
        return notification.user_id
    raw = (notification.payload or {}).get("profileId")
    try:
        return uuid.UUID(str(raw)) if raw else None
    except ValueError:
        return None


async def load(notifications: Iterable[Notification]) -> Consents:
    return await consents_of(p for n in notifications if (p := profile_of(n)))


def decide(
    message: Outbound,
    profile_id: uuid.UUID | None,
    consents: Consents,
    settings: Settings,
    now: datetime,
) -> Outbound | Skip:
    """The message as it may go (perhaps by template), or why it may not."""
    channel = message.channel

    def consent(of: NotificationChannel) -> ChannelConsent | None:
        return consents.get((profile_id, of)) if profile_id else None

    sms_refused = allows(consent(NotificationChannel.SMS), NotificationChannel.SMS)
    fallback = None if sms_refused else NotificationChannel.SMS
    if channel == NotificationChannel.SMS:
        return Skip(sms_refused, REASONS[sms_refused]) if sms_refused else message
    if channel != NotificationChannel.WHATSAPP:
        return message
    refused = allows(consent(channel), channel)
    if refused:
        return Skip(refused, REASONS[refused], fallback)
    if window_open(consent(channel), channel, now, settings):
        return message  # free text
    template = (settings.whatsapp_templates.get(message.template_code) or {}).get(message.locale)
    if template is None:
        reason = REASONS["NO_WHATSAPP_TEMPLATE"].format(
            template=message.template_code or "this message", locale=message.locale
        )
        return Skip("NO_WHATSAPP_TEMPLATE", reason, fallback)
    variables = {
        str(n): _variable(message.context.get(key)) for n, key in enumerate(template.variables, 1)
    }
    return dataclasses.replace(
        message,
        content_sid=template.content_sid,
        content_variables=orjson.dumps(variables).decode(),
    )


def _variable(value: object) -> str:
    text = "" if value is None else str(value)
    return (text.strip() or "-")[:MAX_VARIABLE_CHARS]  # Twilio refuses empty variables
