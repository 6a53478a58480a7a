"""The client's next channel, once: when a delivery fails for good on one channel.

A permanent failure (Twilio: an invalid number, not a mobile, not on WhatsApp, an
unreachable or unknown handset; e-mail: a bounce) makes ONE new PENDING delivery of the
same notification on the next channel of `DELIVERY_FAILOVER` (by default WhatsApp -> SMS
-> e-mail, and e-mail -> SMS), linked to the failed one (`failover_of_id`) with the reason.
Never a loop: a delivery made by a failover does not fail over itself, and a notification
gets at most one delivery per channel (the table's unique key), so a channel it already
went out on is passed over.

A candidate channel is passed (to its own next one) when the client has no address for it:
no phone; an e-mail address flagged as bounced (app.services.bounces); the same number when
the failure was the number itself (an SMS to a number Twilio calls invalid would fail
again). Only clients' notifications fail over; the e-mail-only messages (security links,
payment links to prospects, data exports) and payment reminders (each of which already
goes out per channel) do not.

Runs inside the caller's transaction, with the failed row locked.
"""

from __future__ import annotations

import logging
from datetime import datetime

from app.models import Credential, Notification, NotificationDelivery, Profile
from app.models.enums import NotificationChannel, NotificationStatus
from app.services.notifications.rules import RULES, Audience, Via, usable_email
from app.settings import Settings, get_settings

logger = logging.getLogger("app.delivery.failover")

PHONE_CHANNELS = frozenset({NotificationChannel.SMS, NotificationChannel.WHATSAPP})

# Twilio error codes that say the message will never reach this address on this channel
# (https://www.twilio.com/docs/api/errors): the number itself ...
BAD_NUMBER_CODES = frozenset(
    {
        "21211",  # invalid 'To' phone number
        "21612",  # the 'To' number is not reachable via this channel
        "21614",  # 'To' is not a valid mobile number
        "30005",  # unknown destination handset
        "30006",  # landline or unreachable carrier
    }
)
# ... or this channel for this number.
PERMANENT_TWILIO_CODES = BAD_NUMBER_CODES | {
    "21610",  # the recipient replied STOP: unsubscribed from this sender
    "30003",  # unreachable destination handset
    "63003",  # WhatsApp: the channel could not find the 'To' address (not on WhatsApp)
    "63024",  # WhatsApp: invalid message recipient
}

# Messages that go by e-mail only, whatever the account's channels (security links, a
# prospect's payment link, an export's link), and payment reminders, sent per channel.
NO_FAILOVER_TEMPLATES = frozenset(
    rule.template
    for rules in RULES.values()
    for rule in rules
    if rule.audience in (Audience.ACCOUNT_EMAIL, Audience.PROSPECT)
    or Via.EVENT_CHANNEL in rule.channels
)


def is_permanent(code: str | None) -> bool:
    return bool(code) and str(code) in PERMANENT_TWILIO_CODES


async def fail_over(
    failed: NotificationDelivery,
    reason: str,
    *,
    now: datetime,
    bad_number: bool = False,
    settings: Settings | None = None,
) -> NotificationDelivery | None:
    """The delivery that replaces `failed` on the client's next channel, or None (no
    failover for this one: say why in the log)."""
    settings = settings or get_settings()
    if failed.failover_of_id is not None:
        logger.info("delivery %s: a failover itself, not failed over again", failed.id)
        return None
    notification = await Notification.get_or_none(id=failed.notification_id)
    if notification is None or notification.user_id is None:
        return None  # an agent's or a prospect's: no other channel known
    if notification.template_code in NO_FAILOVER_TEMPLATES:
        return None
    profile = await Profile.get_or_none(id=notification.user_id)
    if profile is None or profile.erased_at is not None:
        return None
    used = {
        NotificationChannel(str(c))
        for c in await NotificationDelivery.filter(notification_id=notification.id).values_list(
            "channel", flat=True
        )
    }
    credential = await Credential.get_or_none(profile_id=profile.id)
    email = usable_email(profile, credential.email if credential else None)
    original = NotificationChannel(failed.channel)
    channel = settings.delivery_failover.get(original)
    for _ in range(len(settings.delivery_failover)):
        if channel is None or channel == original:
            break
        address = _address(channel, profile, email, failed, bad_number)
        if address is not None and channel not in used:
            return await NotificationDelivery.create(
                notification_id=notification.id,
                channel=channel,
                recipient=address,
                status=NotificationStatus.PENDING,
                next_attempt_at=now,
                failover_of_id=failed.id,
                failover_reason=reason[:2000],
            )
        channel = settings.delivery_failover.get(channel)
    logger.info("delivery %s: no other channel to fail over to", failed.id)
    return None


def _address(
    channel: NotificationChannel,
    profile: Profile,
    email: str | None,
    failed: NotificationDelivery,
    bad_number: bool,
) -> str | None:
    if channel == NotificationChannel.EMAIL:
        return email
    if channel in PHONE_CHANNELS:
        phone = profile.phone or None
        same_number = phone == failed.recipient.removeprefix("whatsapp:")
        if phone and bad_number and failed.channel in PHONE_CHANNELS and same_number:
            return None  # the number is what failed: another phone channel fails the same
        return phone
    return None  # IN_APP is the notification itself
