"""Stripe events kept until the state they apply to arrives.

Stripe delivers events in no particular order, and retries a failed delivery for days: a
`charge.refunded` can arrive before the `checkout.session.completed` of the payment it
refunds. Such an event is kept here (`defer`, in the webhook's transaction) and applied
by the transaction that makes the order paid (`waiting_for`, then the refund service), so
both delivery orders end in the same state.

Only `charge.refunded` ever waits: the other handled events apply to a PENDING order,
which exists from the registration on (before any checkout session), and a failure that
comes after the payment changes nothing by design.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q

from app.models import DeferredStripeEvent


async def defer(
    event: dict[str, Any], *, order_id: uuid.UUID | None, payment_intent_id: str | None
) -> DeferredStripeEvent:
    """Keep `event` until its order is paid (by that payment intent, or that order)."""
    return await DeferredStripeEvent.create(
        stripe_event_id=str(event["id"]),
        type=str(event["type"]),
        order_id=order_id,
        payment_intent_id=payment_intent_id,
        payload=event,
    )


async def waiting_for(
    order_id: uuid.UUID, payment_intent_id: str | None
) -> list[DeferredStripeEvent]:
    """The events still waiting for this order or this payment, in Stripe's order."""
    condition = Q(order_id=order_id)
    if payment_intent_id:
        condition |= Q(payment_intent_id=payment_intent_id)
    rows = await DeferredStripeEvent.filter(condition, applied_at=None)
    return sorted(rows, key=lambda r: (int(r.payload.get("created") or 0), r.created_at))


async def applied(rows: Sequence[DeferredStripeEvent], now: datetime | None = None) -> None:
    if rows:
        await DeferredStripeEvent.filter(id__in=[r.id for r in rows]).update(
            applied_at=now or datetime.now(UTC)
        )
