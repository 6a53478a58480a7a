"""Fulfilment = the paid checkout session opens the dossier; records PAYMENT_SUCCEEDED.

One name for one thing: `fulfil` here, the webhook's handlers for the Stripe events that
say a session is paid (`checkout.session.completed` when paid,
`checkout.session.async_payment_succeeded`), and the PAYMENT_SUCCEEDED event it records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.db import Writes
from app.domain.viewer import Viewer
from app.models import Order, PaymentReminder, Profile
from app.models.enums import EventType, OrderStatus, UserStatus
from app.services import events
from app.services.payments import deferred, refunds
from app.services.payments.errors import UnmatchedEvent
from app.services.payments.orders import locked_order
from app.services.workflow.steps import open_dossier


def _charged(order: Order, session: dict[str, Any]) -> int | None:
    """What the session charged for this order, or None when it is not this order's: its
    id and currency, and its amount — less only by a promotion code where the product
    takes them (never more)."""
    if str(session.get("client_reference_id") or "") != str(order.id):
        return None
    if str(session.get("currency") or "").lower() != order.currency.lower():
        return None
    total = session.get("amount_total")
    if not isinstance(total, int) or isinstance(total, bool):
        return None
    if total == order.amount:
        return total
    discounted = 0 <= total < order.amount and order.product.allow_promotion_codes
    return total if discounted else None


async def fulfil(session: dict[str, Any]) -> None:
    """Fulfil the paid checkout `session`: `mark_paid` for its order. Runs in the
    webhook's transaction; idempotent and monotonic (a paid order stays paid)."""
    metadata = session.get("metadata") or {}
    order = await locked_order(
        metadata.get("order_id") or session.get("client_reference_id"), with_product=True
    )
    charged = None if order is None else _charged(order, session)
    if order is None or charged is None:
        raise UnmatchedEvent("checkout session does not match an order of ours")
    if order.status != OrderStatus.PENDING:
        return
    payload: dict[str, Any] = {
        "amount": charged,
        "currency": order.currency,
        "sessionId": session["id"],
    }
    if charged != order.amount:  # a promotion code: the order records what was paid
        payload["listAmount"] = order.amount
        order.amount = charged
    await mark_paid(order, payload=payload, payment_intent_id=session.get("payment_intent") or None)


async def mark_paid(
    order: Order,
    *,
    payload: dict[str, Any],
    payment_intent_id: str | None = None,
    actor: Viewer | None = None,
    now: datetime | None = None,
) -> None:
    """The one way an order becomes paid (a webhook's session, an agent's record): order
    PAID, profile ACTIVE, its payment reminders cancelled, the dossier opened; records
    PAYMENT_SUCCEEDED with `payload`. `order` is PENDING, locked in the caller's
    transaction, its product read with it. After the reads (the Stripe events waiting for
    this payment, the product's steps, the first step's document types) every change goes
    out together (`Writes`: one statement on PostgreSQL); then the waiting events are
    applied, in the same transaction (a refund that came before its payment: the order
    ends as if it had come after, `app.services.payments.refunds`)."""
    now = now or datetime.now(UTC)
    waiting = await deferred.waiting_for(order.id, payment_intent_id)
    writes = Writes()
    writes.update(Profile, {"id": order.user_id}, status=UserStatus.ACTIVE, updated_at=now)
    writes.update(
        PaymentReminder,
        {"order_id": order.id, "sent_at": None, "cancelled_at": None},
        cancelled_at=now,
    )
    events.add(writes, "order", order.id, EventType.PAYMENT_SUCCEEDED, actor=actor, payload=payload)
    await open_dossier(order, actor=actor, product=order.product, writes=writes)
    order.status = OrderStatus.PAID
    order.paid_at = now
    order.stripe_payment_intent_id = payment_intent_id
    order.updated_at = now
    writes.update(  # after the dossier it points to
        Order,
        {"id": order.id},
        status=order.status,
        amount=order.amount,
        paid_at=now,
        stripe_payment_intent_id=order.stripe_payment_intent_id,
        dossier_id=order.dossier_id,
        updated_at=now,
    )
    await writes.run()
    if waiting:
        await refunds.apply_deferred(order, waiting)
