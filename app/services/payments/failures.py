"""A checkout that was not paid (expired, failed): the profile suspended, the order left
PENDING, payment reminders scheduled; records PAYMENT_FAILED."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from app.models import Order, PaymentReminder, Profile
from app.models.enums import EventType, NotificationChannel, OrderStatus, UserStatus
from app.services import events
from app.services.payments.checkout import close_checkout
from app.services.payments.errors import UnmatchedEvent
from app.services.payments.orders import locked_order
from app.settings import get_settings

logger = logging.getLogger("app.payments")


async def payment_failed(order_id: Any, *, reason: str, session_id: str | None = None) -> None:
    """Not paid: profile SUSPENDED (unless it already has a paid order), the order stays
    PENDING, and reminders are scheduled once.

    `session_id`: the checkout session that failed. Only the order's current one counts:
    an older session expiring after the client started a new checkout (Stripe expires
    sessions a day later) changes nothing, or it would close the checkout the client is
    paying in and suspend them again."""
    order = await locked_order(order_id)
    if order is None:
        raise UnmatchedEvent("payment failure for an unknown order")
    if order.status != OrderStatus.PENDING:
        return  # a late failure after payment changes nothing
    current = order.stripe_checkout_session_id
    if session_id and current and session_id != current:
        logger.info("order %s: failure of a replaced checkout session ignored", order.id)
        return
    await close_checkout(order)
    profile_id = order.user_id
    has_paid = await Order.filter(user_id=profile_id, status=OrderStatus.PAID).exists()
    if not has_paid:
        await Profile.filter(id=profile_id).update(
            status=UserStatus.SUSPENDED, updated_at=datetime.now(UTC)
        )
    await schedule_reminders(order)
    await events.record("order", order.id, EventType.PAYMENT_FAILED, payload={"reason": reason})


async def schedule_reminders(order: Order) -> None:
    """One row per slot and channel; a second failure event schedules nothing new."""
    if await PaymentReminder.filter(order_id=order.id).exists():
        return
    profile = await Profile.get(id=order.user_id)
    settings = get_settings()
    channels = [NotificationChannel.EMAIL]
    if profile.phone:
        channels.append(settings.payment_reminder_phone_channel)
    now = datetime.now(UTC)
    await PaymentReminder.bulk_create(
        [
            PaymentReminder(
                user_id=profile.id,
                order_id=order.id,
                slot=slot,
                sent_via=channel,
                scheduled_for=now + timedelta(hours=hours),
            )
            for slot, hours in enumerate(settings.payment_reminder_hours)
            for channel in channels
        ]
    )
