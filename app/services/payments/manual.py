"""Dossiers opened without online payment: an agent records a bank transfer, a cash
payment or a waived fee, and the dossier opens through the same code as a paid checkout
(`fulfilment.mark_paid`). The client's profile is reused, or created with an invitation
to choose a password (app.services.recovery.invite_client)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import Dossier, Order, Product, Profile
from app.models.enums import EventType, OrderStatus, PaymentMethod
from app.services import events
from app.services.catalog import product_on_sale
from app.services.payments.errors import PaymentErrorCode
from app.services.payments.fulfilment import mark_paid
from app.services.payments.orders import locked_order
from app.services.recovery import client_for
from app.services.validation import check_name, check_text, normalise_email

RECORDED_METHODS = frozenset(
    {PaymentMethod.BANK_TRANSFER, PaymentMethod.CASH, PaymentMethod.WAIVED}
)


@dataclass
class OpenedDossier:
    profile: Profile
    order: Order
    dossier: Dossier
    invited: bool  # a new client, sent an invitation to choose a password


def _check(
    method: PaymentMethod, reference: str | None, note: str | None
) -> tuple[str | None, str | None]:
    if method not in RECORDED_METHODS:
        raise DomainError(
            PaymentErrorCode.INVALID_PAYMENT_METHOD,
            "Record a bank transfer, cash or a waived fee; online payments use a payment link.",
            "paymentMethod",
        )
    if reference is not None:
        reference = check_text(reference, "reference", max_length=200, required=False) or None
    if method == PaymentMethod.BANK_TRANSFER and reference is None:
        raise DomainError(
            PaymentErrorCode.REQUIRED, "Give the bank transfer's reference.", "reference"
        )
    if note is not None:
        note = check_text(note, "note", max_length=2000, required=False) or None
    return reference, note


async def open_dossier_for_client(
    agent: Viewer,
    *,
    client_email: str,
    client_name: str,
    product_id: uuid.UUID,
    method: PaymentMethod,
    reference: str | None = None,
    note: str | None = None,
) -> OpenedDossier:
    email = normalise_email(client_email, "clientEmail")
    name = check_name(client_name, "clientName")
    reference, note = _check(method, reference, note)
    product = await Product.filter(id=product_id).first()
    if product is None:
        raise NotFound("No such product.")
    if not product_on_sale(product):
        raise DomainError(
            PaymentErrorCode.PRODUCT_INACTIVE, "This product is not on sale.", "productId"
        )
    if (
        reference is not None
        and await Order.filter(payment_method=method, payment_reference=reference).exists()
    ):
        raise DomainError(
            PaymentErrorCode.DUPLICATE_REFERENCE,
            "A payment with this reference was already recorded.",
            "reference",
        )
    async with in_transaction():
        profile, invited = await client_for(agent, email=email, full_name=name, field="clientEmail")
        order = await Order.create(
            user_id=profile.id,
            product_id=product.id,
            amount=0 if method == PaymentMethod.WAIVED else product.price_amount,
            currency=product.currency,
            status=OrderStatus.PENDING,
            payment_method=method,
            recorded_by_id=agent.agent.id if agent.agent else None,
            payment_reference=reference,
            note=note,
            metadata={},
        )
        await events.record(
            "order",
            order.id,
            EventType.ORDER_CREATED,
            actor=agent,
            payload={"amount": order.amount, "currency": order.currency},
        )
        locked = await locked_order(order.id, with_product=True)
        assert locked is not None  # created above, in this transaction
        await mark_paid(
            locked,
            payload={
                "amount": locked.amount,
                "currency": locked.currency,
                "method": method.value,
                **({"reference": reference} if reference else {}),
            },
            actor=agent,
        )
        dossier = await Dossier.get(id=locked.dossier_id)
    return OpenedDossier(profile, locked, dossier, invited)
