"""Refunds of an order: each one made through the payment provider (an admin's or one
Stripe reports), or recorded by hand for an order paid offline."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel
from app.models.enums import RefundReason

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.payments import Order


class Refund(CreatedModel):
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="refunds", on_delete=fields.CASCADE
    )
    # The provider's id (Stripe's `re_…`): a refund the webhook reports again is known by
    # it and counted once. Null: a manual refund (money returned outside the provider).
    provider_refund_id = fields.CharField(max_length=255, null=True, unique=True)
    amount = fields.IntField()
    currency = fields.CharField(max_length=3)
    reason = fields.CharEnumField(RefundReason, max_length=32, default=RefundReason.OTHER)
    note = fields.TextField(null=True)
    # The admin who asked for it; null for a refund made in Stripe's dashboard.
    requested_by: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="refunds_requested", null=True, on_delete=fields.SET_NULL
    )

    order_id: uuid.UUID
    requested_by_id: uuid.UUID | None

    class Meta:
        table = "refunds"
        indexes = (
            Index(fields=("order_id", "created_at"), name="idx_refunds_order"),
            Index(fields=("requested_by_id",), name="idx_refunds_requested_by_id"),
            # The reports' revenue: refunds made in a range of time.
            Index(fields=("created_at",), name="idx_refunds_created_at"),
        )
