"""Refunds: money going back to the client, part of an order or all of it.

Three ways in, one way to count them (`_count`):

- an admin's `refundOrder` (`refund_order`): through the provider (Stripe's Refund API)
  for an order paid online, or recorded as a manual refund, with the admin, for one paid
  offline (bank transfer, cash: the money went back the way it came, outside Stripe);
- Stripe's `charge.refunded` (`charge_refunded`), for our refunds and for those made in
  Stripe's dashboard;
- a `charge.refunded` that came before its payment: kept (`app.services.payments.deferred`)
  and applied by the payment (`apply_deferred`, in `mark_paid`'s transaction).

Each refund is a `refunds` row, known by its provider id, so the webhook that reports an
admin's refund again adds nothing. The order's `refunded_amount` only grows: Stripe's
`amount_refunded` is cumulative, so an older event that arrives late lowers nothing. A
partial refund records ORDER_PARTIALLY_REFUNDED and leaves the order PAID; the refund
that reaches the order's amount records ORDER_REFUNDED, makes the order REFUNDED and
cancels its dossier (unless it already ended) with a status-history row.

A full refund that came before its payment therefore opens the dossier and cancels it in
the same transaction, as if the events had come in Stripe's order: both delivery orders
end in the same rows, and nobody ever sees the dossier running.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import DeferredStripeEvent, Dossier, Order, Profile, Refund
from app.models.enums import DossierStatus, EventType, OrderStatus, PaymentMethod, RefundReason
from app.providers.payments import PaymentProvider, PaymentProviderError, RefundRequest
from app.services import events
from app.services.payments import deferred
from app.services.payments.errors import PaymentErrorCode, UnmatchedEvent
from app.services.payments.orders import locked_order
from app.services.validation import check_text
from app.services.workflow.machine import transition

STRIPE_REASONS: dict[RefundReason, str | None] = {
    RefundReason.REQUESTED_BY_CUSTOMER: "requested_by_customer",
    RefundReason.DUPLICATE: "duplicate",
    RefundReason.FRAUDULENT: "fraudulent",
    RefundReason.OTHER: None,
}
_FROM_STRIPE = {stripe: ours for ours, stripe in STRIPE_REASONS.items() if stripe}
NOTE_MAX = 1000
# The same refund (order, amount, admin) asked again this soon is the same request (a double
# click whose first click is already done, a retry whose answer was lost): answered with
# the refund made, never made twice.
REPEAT_WINDOW = timedelta(minutes=5)


# --- counting ----------------------------------------------------------------------------


async def _count(
    order: Order, total: int, *, actor: Viewer | None = None, details: dict[str, Any]
) -> bool:
    """The (locked, PAID or REFUNDED) order has now `total` refunded; False when that is
    nothing new (an event about a refund already counted, or an older one)."""
    total = min(total, order.amount)
    if total <= order.refunded_amount:
        return False
    payload: dict[str, Any] = {
        "amount": total - order.refunded_amount,
        "refundedAmount": total,
        "currency": order.currency,
        **details,
    }
    if order.dossier_id:
        payload["dossierId"] = str(order.dossier_id)
    order.refunded_amount = total
    if order.status != OrderStatus.PAID:  # already REFUNDED: only the amount catches up
        await order.save(update_fields=["refunded_amount", "updated_at"])
        return True
    if total < order.amount:
        await order.save(update_fields=["refunded_amount", "updated_at"])
        await events.record(
            "order", order.id, EventType.ORDER_PARTIALLY_REFUNDED, actor=actor, payload=payload
        )
        return True
    order.status = OrderStatus.REFUNDED
    await order.save(update_fields=["status", "refunded_amount", "updated_at"])
    await events.record("order", order.id, EventType.ORDER_REFUNDED, actor=actor, payload=payload)
    if order.dossier_id:
        dossier = await Dossier.filter(id=order.dossier_id).select_for_update().get()
        if dossier.status not in (DossierStatus.CANCELLED, DossierStatus.COMPLETED):
            await transition(
                dossier, DossierStatus.CANCELLED, actor=actor, reason="Payment refunded"
            )
    return True


async def _recorded_total(order_id: uuid.UUID) -> int:
    rows = await Refund.filter(order_id=order_id).annotate(total=Sum("amount")).values("total")
    return int((rows[0]["total"] if rows else None) or 0)


# --- Stripe's charge.refunded --------------------------------------------------------------


async def _order_by_intent(payment_intent_id: str | None) -> Order | None:
    if not payment_intent_id:
        return None
    return (
        await Order.filter(stripe_payment_intent_id=payment_intent_id).select_for_update().first()
    )


async def _lock_unpaid_orders_of(customer_id: Any) -> None:
    """Lock the customer's unpaid orders: a payment being fulfilled right now holds its
    order's lock, so this waits for it to commit (then the order is found by its payment
    intent), or makes it wait for this event to be kept (then it applies it)."""
    if not customer_id:
        return
    profile_ids = await Profile.filter(stripe_customer_id=str(customer_id)).values_list(
        "id", flat=True
    )
    if profile_ids:
        await Order.filter(
            user_id__in=list(profile_ids), status=OrderStatus.PENDING
        ).select_for_update()


async def charge_refunded(charge: dict[str, Any], *, event: dict[str, Any]) -> bool:
    """Stripe's `charge.refunded`, in the webhook's transaction. False when its payment is
    not there yet (the order is not paid, or not known by this payment intent: it learns
    it when paid): the event is kept and applied with the payment."""
    payment_intent_id = charge.get("payment_intent") or None
    order = await _order_by_intent(payment_intent_id)
    order_id = (charge.get("metadata") or {}).get("order_id")
    if order is None and order_id:
        order = await locked_order(order_id)
        if order is None:
            raise UnmatchedEvent("refund for an unknown order")
    elif order is None:
        if not payment_intent_id:
            raise UnmatchedEvent("refund without a payment")
        await _lock_unpaid_orders_of(charge.get("customer"))
        order = await _order_by_intent(payment_intent_id)  # paid meanwhile?
    if order is None or order.status not in (OrderStatus.PAID, OrderStatus.REFUNDED):
        await deferred.defer(
            event, order_id=order.id if order else None, payment_intent_id=payment_intent_id
        )
        return False
    await apply_charge(order, charge)
    return True


def _reason(stripe_reason: Any) -> RefundReason:
    return _FROM_STRIPE.get(str(stripe_reason), RefundReason.OTHER)


async def apply_charge(order: Order, charge: dict[str, Any]) -> None:
    """A refunded charge of the (locked, PAID or REFUNDED) order: its refunds not known
    yet recorded, and the order's refunded amount raised to the charge's (cumulative)
    `amount_refunded`, or to the whole amount when the charge says it is refunded."""
    listed = [
        r
        for r in (charge.get("refunds") or {}).get("data") or []
        if isinstance(r, dict) and r.get("id") and r.get("status") not in ("failed", "canceled")
    ]
    known = set(
        await Refund.filter(provider_refund_id__in=[r["id"] for r in listed]).values_list(
            "provider_refund_id", flat=True
        )
        if listed
        else []
    )
    new = [r for r in listed if r["id"] not in known]
    if new:
        await Refund.bulk_create(
            [
                Refund(
                    order_id=order.id,
                    provider_refund_id=r["id"],
                    amount=int(r.get("amount") or 0),
                    currency=str(r.get("currency") or order.currency).lower(),
                    reason=_reason(r.get("reason")),
                )
                for r in new
            ]
        )
    total = int(charge.get("amount_refunded") or 0)
    if charge.get("refunded"):
        total = max(total, order.amount)
    await _count(
        order,
        total,
        details={
            "refundIds": [r["id"] for r in new],
            "reason": _reason(new[0].get("reason")).value if new else None,
        },
    )


async def apply_deferred(order: Order, rows: Sequence[DeferredStripeEvent]) -> None:
    """The kept events of an order that has just been paid (locked, in its transaction)."""
    for row in rows:
        if row.type == "charge.refunded":
            await apply_charge(order, (row.payload.get("data") or {}).get("object") or {})
    await deferred.applied(rows)


# --- an admin's refund ---------------------------------------------------------------------


@dataclass
class RefundResult:
    order: Order
    refund: Refund


def _refundable(order: Order, amount: int | None) -> int:
    """The amount to refund (None: what is left), or the reason it cannot be."""
    if order.status != OrderStatus.PAID:
        raise DomainError(
            PaymentErrorCode.ORDER_NOT_REFUNDABLE,
            f"Only a paid order can be refunded; this one is {OrderStatus(order.status).value}.",
            "orderId",
        )
    if order.payment_method == PaymentMethod.WAIVED:
        raise DomainError(
            PaymentErrorCode.NOTHING_TO_REFUND,
            "This order's payment was waived: nothing was paid.",
            "orderId",
        )
    if order.payment_method == PaymentMethod.CHECKOUT and not order.stripe_payment_intent_id:
        raise DomainError(
            PaymentErrorCode.NOTHING_TO_REFUND,
            "This order has no online payment to refund.",
            "orderId",
        )
    left = order.amount - order.refunded_amount
    if amount is None:
        return left
    if amount <= 0:
        raise DomainError(
            PaymentErrorCode.INVALID_AMOUNT, "The amount must be more than zero.", "amount"
        )
    if amount > left:
        raise DomainError(
            PaymentErrorCode.AMOUNT_TOO_LARGE,
            f"At most {left} (in the currency's smallest unit) is left to refund.",
            "amount",
        )
    return amount


async def _repeat(
    order_id: uuid.UUID, amount: int, requested_by: uuid.UUID | None
) -> Refund | None:
    if requested_by is None:
        return None
    return (
        await Refund.filter(
            order_id=order_id,
            amount=amount,
            requested_by_id=requested_by,
            created_at__gte=datetime.now(UTC) - REPEAT_WINDOW,
        )
        .order_by("-created_at")
        .first()
    )


async def refund_order(
    provider: PaymentProvider,
    admin: Viewer,
    order_id: uuid.UUID,
    *,
    amount: int | None,
    reason: RefundReason,
    note: str | None = None,
) -> RefundResult:
    """Refund `amount` of a paid order (None: what is left of it).

    A double click or a retry never refunds twice:
    - the same refund (order, amount, admin) recorded less than REPEAT_WINDOW ago is the
      answer (checked again under the order's lock);
    - online (Stripe Checkout), the provider refunds first, outside any transaction, then
      the refund is recorded. The idempotency key is the order, how many of the admins'
      refunds of it are recorded, and this amount: two clicks in flight together, or a
      retry after a failure (the request reached Stripe, its answer did not reach us;
      Stripe's webhook may have recorded the refund meanwhile, without an admin), send the
      same key and get the same refund back, which is recorded once.
    Paid offline: recorded as a manual refund with the admin, no provider call. Whatever
    is refused, or a provider failure, changes nothing."""
    if note is not None:
        note = check_text(note, "note", max_length=NOTE_MAX, required=False) or None
    order = await Order.filter(id=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    amount = _refundable(order, amount)
    requested_by = admin.agent.id if admin.agent else None
    # The admins' refunds of this order recorded so far (not the webhook's, which may be
    # the very refund a retry is about to ask again), counted BEFORE looking for a repeat:
    # a concurrent click recorded after the count is either seen as the repeat, or was
    # not counted and its key is this one.
    ours = await Refund.filter(order_id=order.id, requested_by_id__not_isnull=True).count()
    repeated = await _repeat(order.id, amount, requested_by)
    if repeated is not None:
        return RefundResult(order, repeated)
    made = None
    intent = order.stripe_payment_intent_id
    if order.payment_method == PaymentMethod.CHECKOUT and intent:  # else paid offline
        try:
            made = await provider.refund(
                RefundRequest(
                    order_id=order.id,
                    payment_intent_id=intent,
                    amount=amount,
                    currency=order.currency,
                    reason=STRIPE_REASONS[reason],
                    idempotency_key=f"refund-{order.id}-{ours}-{amount}",
                )
            )
        except PaymentProviderError as exc:
            raise DomainError(
                PaymentErrorCode.REFUND_UNAVAILABLE,
                "The payment service did not refund: nothing was refunded. Try again in a moment.",
            ) from exc
    async with in_transaction():
        locked = await locked_order(order.id)
        if locked is None:
            raise NotFound("No such order.")
        order = locked
        if made is None:  # again, under the lock: a concurrent click
            repeated = await _repeat(order.id, amount, requested_by)
            if repeated is not None:
                return RefundResult(order, repeated)
            _refundable(order, amount)
            row = await Refund.create(
                order_id=order.id,
                amount=amount,
                currency=order.currency,
                reason=reason,
                note=note,
                requested_by_id=requested_by,
            )
        else:
            found = await Refund.filter(provider_refund_id=made.id).first()
            if found is not None and found.requested_by_id is not None:
                return RefundResult(order, found)  # a double click: that refund, once
            if found is None:
                row = await Refund.create(
                    order_id=order.id,
                    provider_refund_id=made.id,
                    amount=made.amount,
                    currency=made.currency.lower(),
                    reason=reason,
                    note=note,
                    requested_by_id=requested_by,
                )
            else:  # Stripe's webhook told us first: it is ours, from this admin
                await Refund.filter(id=found.id).update(
                    reason=reason, note=note, requested_by_id=requested_by
                )
                row = await Refund.get(id=found.id)
        recorded = await _recorded_total(order.id)
        await _count(
            order,
            max(order.refunded_amount, recorded),
            actor=admin,
            details={
                "refundIds": [row.provider_refund_id] if row.provider_refund_id else [],
                "reason": reason.value,
                "note": note,
                "manual": made is None,
            },
        )
    return RefundResult(order, row)
