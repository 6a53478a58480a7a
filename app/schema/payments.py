"""Payment links, registration, orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from app import models as m
from app.context import Info
from app.schema.catalog import ProductType
from app.schema.common import UserError, gid, row_as
from app.schema.enums import OrderStatus, RefundReason
from app.schema.identity import AgentType, ProfileType
from app.services.payments.errors import PaymentErrorCode
from app.services.payments.links import LinkState as PaymentLinkState
from app.services.payments.links import link_state, register_url

# Marks the classes themselves as GraphQL enums (see app.schema.enums).
strawberry.enum(PaymentErrorCode, name="PaymentErrorCode")
strawberry.enum(
    PaymentLinkState,
    name="PaymentLinkState",
    description="Whether a payment link can still be used.",
)


@strawberry.type(name="PaymentLink", description="A link an admin sent to a prospect.")
class PaymentLinkType:
    token: str
    prospect_email: str
    prospect_name: str
    expires_at: datetime
    used_at: datetime | None
    created_at: datetime

    if TYPE_CHECKING:  # the root value is the PaymentLink row: columns read below
        product_id: uuid.UUID
        created_by_id: uuid.UUID | None
        used_by_id: uuid.UUID | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return gid(self.id)

    @strawberry.field
    def state(self) -> PaymentLinkState:
        return link_state(row_as(m.PaymentLink, self))

    @strawberry.field(description="The registration page the prospect is sent to.")
    def url(self) -> str:
        return register_url(self.token)

    @strawberry.field
    async def product(self, info: Info) -> ProductType:
        return await info.context.loaders.product.load(self.product_id)

    @strawberry.field
    async def created_by(self, info: Info) -> AgentType | None:
        if self.created_by_id is None:
            return None
        return await info.context.loaders.agent.load(self.created_by_id)

    @strawberry.field(description="The client who registered with it.")
    async def used_by(self, info: Info) -> ProfileType | None:
        if self.used_by_id is None:
            return None
        return await info.context.loaders.profile.load(self.used_by_id)


@strawberry.type(description="What the registration page shows; readable without a token.")
class PaymentLinkPreview:
    state: PaymentLinkState
    product_name: str
    product_description: str | None
    price_amount: int
    currency: str
    prospect_name: str
    prospect_email: str
    expires_at: datetime


@strawberry.type(name="Order", description="A purchase of a product by a client.")
class OrderType:
    amount: int
    currency: str
    status: OrderStatus
    refunded_amount: int = strawberry.field(
        description="How much of `amount` went back to the client (REFUNDED: all of it)."
    )
    paid_at: datetime | None
    created_at: datetime
    updated_at: datetime

    if TYPE_CHECKING:  # the root value is the Order row: columns read below
        product_id: uuid.UUID
        user_id: uuid.UUID

    @strawberry.field
    def id(self) -> strawberry.ID:
        return gid(self.id)

    @strawberry.field
    async def product(self, info: Info) -> ProductType:
        return await info.context.loaders.product.load(self.product_id)

    @strawberry.field
    async def client(self, info: Info) -> ProfileType:
        return await info.context.loaders.profile.load(self.user_id)

    @strawberry.field(description="The dossier this order opened, once paid.")
    def dossier_id(self) -> strawberry.ID | None:
        return gid(self.dossier_id) if self.dossier_id else None


@strawberry.type(name="Refund", description="Money given back to a client for an order.")
class RefundType:
    amount: int
    currency: str
    reason: RefundReason
    note: str | None
    created_at: datetime

    if TYPE_CHECKING:  # the root value is the Refund row: columns read below
        order_id: uuid.UUID
        requested_by_id: uuid.UUID | None
        provider_refund_id: str | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return gid(self.id)

    @strawberry.field(description="Made outside the payment provider (an order paid offline).")
    def manual(self) -> bool:
        return self.provider_refund_id is None

    @strawberry.field(description="The admin who asked for it; null when made in Stripe.")
    async def requested_by(self, info: Info) -> AgentType | None:
        if self.requested_by_id is None:
            return None
        return await info.context.loaders.agent.load(self.requested_by_id)


@strawberry.type
class PaymentUserError(UserError):
    code: PaymentErrorCode


@strawberry.input
class CreatePaymentLinkInput:
    product_id: strawberry.ID
    prospect_email: str
    prospect_name: str
    expires_in_hours: int | None = strawberry.field(default=None, description="Default 7 days.")


@strawberry.type
class CreatePaymentLinkPayload:
    payment_link: PaymentLinkType | None = None
    user_errors: list[PaymentUserError] = strawberry.field(default_factory=list)


@strawberry.input
class RegisterWithPaymentLinkInput:
    token: str
    full_name: str
    phone: str
    password: str


@strawberry.type
class RegisterWithPaymentLinkPayload:
    token: str | None = strawberry.field(default=None, description="The new client's JWT.")
    expires_at: datetime | None = None
    refresh_token: str | None = strawberry.field(
        default=None, description="The session's refresh token (see login)."
    )
    refresh_expires_at: datetime | None = None
    profile: ProfileType | None = None
    order: OrderType | None = None
    checkout_url: str | None = strawberry.field(
        default=None, description="Send the client here to pay (Stripe Checkout)."
    )
    user_errors: list[PaymentUserError] = strawberry.field(default_factory=list)


@strawberry.input
class ResumeCheckoutInput:
    order_id: strawberry.ID


@strawberry.type
class ResumeCheckoutPayload:
    checkout_url: str | None = None
    user_errors: list[PaymentUserError] = strawberry.field(default_factory=list)


@strawberry.input
class OrderFilter:
    status: list[OrderStatus] | None = None
    client_id: strawberry.ID | None = strawberry.field(default=None, description="Agents only.")


@strawberry.input
class RefundOrderInput:
    order_id: strawberry.ID
    amount: int | None = strawberry.field(
        default=None,
        description="In the currency's smallest unit; default: all that is left to refund.",
    )
    reason: RefundReason
    note: str | None = strawberry.field(default=None, description="For the agents' eyes.")


@strawberry.type
class RefundOrderPayload:
    order: OrderType | None = None
    refund: RefundType | None = None
    user_errors: list[PaymentUserError] = strawberry.field(default_factory=list)
