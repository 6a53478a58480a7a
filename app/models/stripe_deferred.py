"""Stripe events that came before the state they apply to, kept until it arrives."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, WhereIndex

if TYPE_CHECKING:
    from app.models.payments import Order


class DeferredStripeEvent(CreatedModel):
    """A verified Stripe event that found its order not yet in the state it applies to
    (a `charge.refunded` before the checkout's completion made the order PAID): the
    whole event, kept in the webhook's transaction and applied in the transaction that
    makes the order paid (`app.services.payments.fulfilment.mark_paid`).

    It waits for its payment (the charge's payment intent, which an order only learns
    when it is paid) and, when the event names it, for its order."""

    stripe_event_id = fields.CharField(max_length=255, unique=True)
    type = fields.CharField(max_length=128)
    payment_intent_id = fields.CharField(max_length=255, null=True)
    order: fields.ForeignKeyNullableRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="deferred_stripe_events", null=True, on_delete=fields.CASCADE
    )
    payload: dict[str, Any] = fields.JSONField()  # the event, as Stripe sent it
    applied_at = fields.DatetimeField(null=True)

    order_id: uuid.UUID | None

    class Meta:
        table = "stripe_deferred_events"
        indexes = (
            Index(fields=("order_id",), name="idx_stripe_deferred_events_order_id"),
            # What a payment looks for when it lands: the events still waiting for it.
            WhereIndex(
                fields=("payment_intent_id",),
                name="idx_stripe_deferred_events_pending_intent",
                where="applied_at IS NULL",
            ),
        )
