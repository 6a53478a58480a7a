"""Payment reminders: the worker sends each due one, until the order is paid.

Sending a reminder means recording a PAYMENT_REMINDER_SENT event carrying its channel
and tracked link; the notification rules turn it into a message on that channel.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from app.db import Writes
from app.models import Order, PaymentReminder, Product
from app.models.enums import EventType, OrderStatus
from app.services import events, outbox
from app.settings import get_settings


def tracked_url(reminder: PaymentReminder) -> str:
    return f"{get_settings().public_api_url.rstrip('/')}/pay/{reminder.id}"


async def send_due_reminders(*, now: datetime | None = None, limit: int = 100) -> int:
    """Send reminders whose time has come; cancel those whose order no longer waits.

    Rows are claimed with SKIP LOCKED so several workers never send one twice.
    Returns how many were sent.
    """
    now = now or datetime.now(UTC)
    sent = 0
    async with outbox.collecting(), in_transaction():
        due = list(
            await PaymentReminder.filter(sent_at=None, cancelled_at=None, scheduled_for__lte=now)
            .order_by("scheduled_for", "id")
            .limit(limit)
            .select_for_update(skip_locked=True)
        )
        if not due:
            return 0
        orders = {o.id: o for o in await Order.filter(id__in={r.order_id for r in due})}
        products = {
            p.id: p for p in await Product.filter(id__in={o.product_id for o in orders.values()})
        }
        # Every reminder's row and every event in ONE statement (PostgreSQL), not a few
        # per reminder: a pass costs its batch, not its batch times three.
        writes = Writes()
        for reminder in due:
            order = orders[reminder.order_id]
            if order.status != OrderStatus.PENDING:
                writes.update(PaymentReminder, {"id": reminder.id}, cancelled_at=now)
                continue
            writes.update(PaymentReminder, {"id": reminder.id}, sent_at=now)
            product = products[order.product_id]
            events.add(
                writes,
                "order",
                order.id,
                EventType.PAYMENT_REMINDER_SENT,
                payload={
                    "reminderId": str(reminder.id),
                    "channel": reminder.sent_via.value,
                    "slot": reminder.slot,
                    "url": tracked_url(reminder),
                    "productName": product.name,
                    "amount": order.amount,
                    "currency": order.currency,
                },
            )
            sent += 1
        await writes.run()
    return sent
