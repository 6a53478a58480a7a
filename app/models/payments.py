from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, TimestampedModel, UUIDModel, WhereIndex
from app.models.enums import NotificationChannel, OrderStatus, PaymentMethod

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.catalog import Product
    from app.models.dossiers import Dossier
    from app.models.profiles import Profile


class PaymentLink(CreatedModel):
    # The SHA-256 (hex) of the link's secret, never the secret: new links derive theirs
    # from the id with SECRET_KEY (app.services.payments.links.link_secret), so a resend
    # carries the same link and no row, event or log holds it. Migration 0015 hashed the
    # secrets of the links made before.
    token = fields.CharField(max_length=128, unique=True)
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="payment_links", on_delete=fields.RESTRICT
    )
    prospect_email = fields.CharField(max_length=320)
    prospect_name = fields.TextField()
    stripe_checkout_session_id = fields.CharField(max_length=255, null=True, unique=True)
    # created_by and used_by carry the ERD's column names (migration 0006). Tortoise 1.1's
    # `makemigrations` writes a no-op "Alter field" for each of them every time (see
    # tests/test_schema_db.py::_column_echo): delete those from a new migration.
    created_by: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent",
        related_name="payment_links",
        null=True,
        on_delete=fields.SET_NULL,
        source_field="created_by",  # the ERD's column name (the attribute is created_by_id)
    )
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    # Beyond the ERD: a link an admin withdrew, and a price of its own (a quote, a
    # discount; the product's when null).
    revoked_at = fields.DatetimeField(null=True)
    amount = fields.IntField(null=True)
    used_by: fields.ForeignKeyNullableRelation[Profile] = fields.ForeignKeyField(
        "models.Profile",
        related_name="used_payment_links",
        null=True,
        on_delete=fields.SET_NULL,
        source_field="used_by",  # the ERD's column name (the attribute is used_by_id)
    )

    # The foreign keys' columns (attributes Tortoise adds):
    product_id: uuid.UUID
    created_by_id: uuid.UUID | None
    used_by_id: uuid.UUID | None
    orders: fields.ReverseRelation[Order]  # the other side of orders.payment_link

    class Meta:
        table = "payment_links"
        indexes = (
            Index(fields=("product_id",), name="idx_payment_links_product_id"),
            Index(fields=("used_by",), name="idx_payment_links_used_by"),
            # the links sent to an address (an erasure finds those its client never used)
            Index(fields=("prospect_email",), name="idx_payment_links_prospect_email"),
            # The reports' funnel: links made in a range of time.
            Index(fields=("created_at",), name="idx_payment_links_created_at"),
        )


class Order(TimestampedModel):
    user: fields.ForeignKeyRelation[Profile] = fields.ForeignKeyField(
        "models.Profile", related_name="orders", on_delete=fields.CASCADE
    )
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="orders", on_delete=fields.RESTRICT
    )
    payment_link: fields.ForeignKeyNullableRelation[PaymentLink] = fields.ForeignKeyField(
        "models.PaymentLink", related_name="orders", null=True, on_delete=fields.SET_NULL
    )
    dossier: fields.ForeignKeyNullableRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="orders", null=True, on_delete=fields.SET_NULL
    )
    amount = fields.IntField()
    currency = fields.CharField(max_length=3)
    status = fields.CharEnumField(OrderStatus, max_length=16, default=OrderStatus.PENDING)
    stripe_checkout_session_id = fields.CharField(max_length=255, null=True, unique=True)
    stripe_payment_intent_id = fields.CharField(max_length=255, null=True, unique=True)
    stripe_customer_id = fields.CharField(max_length=255, null=True)
    metadata: dict[str, Any] = fields.JSONField(default=dict)
    paid_at = fields.DatetimeField(null=True)
    # Beyond the ERD: how it was paid (online, or recorded by an agent: who, with the
    # transfer's reference and a note), and how much of it was refunded.
    # db_default as well: the orders made before these columns get them when migrated
    payment_method = fields.CharEnumField(
        PaymentMethod,
        max_length=16,
        default=PaymentMethod.CHECKOUT,
        db_default=PaymentMethod.CHECKOUT,
    )
    recorded_by: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="recorded_orders", null=True, on_delete=fields.SET_NULL
    )
    payment_reference = fields.TextField(null=True)
    note = fields.TextField(null=True)
    refunded_amount = fields.IntField(default=0, db_default=0)

    # The foreign keys' columns (attributes Tortoise adds):
    user_id: uuid.UUID
    product_id: uuid.UUID
    payment_link_id: uuid.UUID | None
    dossier_id: uuid.UUID | None
    recorded_by_id: uuid.UUID | None
    payment_reminders: fields.ReverseRelation[PaymentReminder]  # the other side of its order

    class Meta:
        table = "orders"
        indexes = (
            Index(fields=("status",), name="idx_orders_status"),
            Index(fields=("created_at",), name="idx_orders_created_at"),
            Index(fields=("user_id",), name="idx_orders_user_id"),
            Index(fields=("product_id",), name="idx_orders_product_id"),
            Index(fields=("payment_link_id",), name="idx_orders_payment_link_id"),
            Index(fields=("dossier_id",), name="idx_orders_dossier_id"),
            Index(fields=("recorded_by_id",), name="idx_orders_recorded_by_id"),
            # openDossier refuses a reference recorded twice (a double click)
            Index(fields=("payment_reference",), name="idx_orders_payment_reference"),
            # The reports' revenue: orders paid in a range of time.
            Index(fields=("paid_at",), name="idx_orders_paid_at"),
        )


class PaymentReminder(UUIDModel):
    user: fields.ForeignKeyRelation[Profile] = fields.ForeignKeyField(
        "models.Profile", related_name="payment_reminders", on_delete=fields.CASCADE
    )
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="payment_reminders", on_delete=fields.CASCADE
    )
    sent_via = fields.CharEnumField(NotificationChannel, max_length=16)
    sent_at = fields.DatetimeField(null=True)
    clicked_at = fields.DatetimeField(null=True)
    # Beyond the ERD: the schedule. Slot k of the configured schedule, due at scheduled_for;
    # cancelled once the order no longer waits for payment.
    slot = fields.IntField(default=0)
    scheduled_for = fields.DatetimeField(null=True)
    cancelled_at = fields.DatetimeField(null=True)

    # The foreign keys' columns (attributes Tortoise adds):
    user_id: uuid.UUID
    order_id: uuid.UUID

    class Meta:
        table = "payment_reminders"
        unique_together = (("order", "slot", "sent_via"),)
        indexes = (
            Index(fields=("order_id",), name="idx_payment_reminders_order_id"),
            Index(fields=("scheduled_for",), name="idx_payment_reminders_due"),
            Index(fields=("user_id",), name="idx_payment_reminders_user_id"),
            # The sender's batch: reminders neither sent nor cancelled, by due time.
            WhereIndex(
                fields=("scheduled_for", "id"),
                name="idx_payment_reminders_unsent_due",
                where="sent_at IS NULL AND cancelled_at IS NULL",
            ),
        )


class StripeEvent(UUIDModel):
    """A Stripe event id we have processed: each event is handled at most once."""

    stripe_event_id = fields.CharField(max_length=255, unique=True)
    type = fields.CharField(max_length=128)
    processed_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stripe_events"
