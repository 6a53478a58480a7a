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
from app.schema.enums import OrderStatus, PaymentMethod, RefundReason
from app.schema.identity import AgentType, ProfileType
from app.services.payments.errors import PaymentErrorCode
from app.services.payments.links import LinkState as PaymentLinkState
from app.services.payments.links import link_state, register_url, secret_of

# Marks the classes themselves as GraphQL enums (see app.schema.enums).
strawberry.enum(PaymentErrorCode, name="PaymentErrorCode")
strawberry.enum(
    PaymentLinkState,
    name="PaymentLinkState",
    description="Whether a payment link can still be used.",
)


@strawberry.type(name="PaymentLink", description="A link an admin sent to a prospect or a client.")
class PaymentLinkType:
    prospect_email: str
    prospect_name: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
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

    @strawberry.field(
        description="The link's secret; null for a link made before secrets were derived "
        "(resendPaymentLink gives it a new one)."
    )
    def token(self) -> str | None:
        return secret_of(row_as(m.PaymentLink, self))

    @strawberry.field(
        description="The page the link opens (registration; a client pays on /pay once "
        "logged in); null as `token` is."
    )
    def url(self) -> str | None:
        secret = secret_of(row_as(m.PaymentLink, self))
        return register_url(secret) if secret else None

    @strawberry.field(description="Its own price, in cents; null: the product's.")
    def amount(self) -> int | None:
        return row_as(m.PaymentLink, self).amount

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
    existing_client: bool = strawberry.field(
        description="An account exists for its e-mail: log in, then redeemPaymentLink."
    )
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
    payment_method: PaymentMethod = strawberry.field(
        description="Online (CHECKOUT), or recorded by an agent."
    )
    payment_reference: str | None = strawberry.field(
        description="The bank transfer's or receipt's reference an agent recorded."
    )
    refunded_amount: int = strawberry.field(
        description="How much of `amount` went back to the client (REFUNDED: all of it)."
    )
    paid_at: datetime | None
    created_at: datetime
    updated_at: datetime

    if TYPE_CHECKING:  # the root value is the Order row: columns read below
        product_id: uuid.UUID
        user_id: uuid.UUID
        recorded_by_id: uuid.UUID | None

    @strawberry.field(description="The agent who recorded the payment (agents only).")
    async def recorded_by(self, info: Info) -> AgentType | None:
        viewer = await info.context.viewer()
        if self.recorded_by_id is None or viewer is None or not viewer.is_agent:
            return None
        return await info.context.loaders.agent.load(self.recorded_by_id)

    @strawberry.field(description="The agent's note on the payment (agents only).")
    async def note(self, info: Info) -> str | None:
        viewer = await info.context.viewer()
        note = row_as(m.Order, self).note
        return note if viewer is not None and viewer.is_agent else None

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
    amount: int | None = strawberry.field(
        default=None,
        description="The link's own price in cents (a quote, a discount); the product's "
        "when not given.",
    )


@strawberry.type
class CreatePaymentLinkPayload:
    payment_link: PaymentLinkType | None = None
    existing_client: bool | None = strawberry.field(
        default=None,
        description="The e-mail is an existing client's: the e-mail says to log in and pay.",
    )
    user_errors: list[PaymentUserError] = strawberry.field(default_factory=list)


@strawberry.input
class RedeemPaymentLinkInput:
    token: str


@strawberry.type
class RedeemPaymentLinkPayload:
    order: OrderType | None = None
    checkout_url: str | None = strawberry.field(
        default=None, description="Send the client here to pay (Stripe Checkout)."
    )
    user_errors: list[PaymentUserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokePaymentLinkInput:
    payment_link_id: strawberry.ID


@strawberry.input
class ResendPaymentLinkInput:
    payment_link_id: strawberry.ID
    expires_in_hours: int | None = strawberry.field(
        default=None, description="A new expiry from now; the link's own when not given."
    )


@strawberry.type
class PaymentLinkPayload:
    payment_link: PaymentLinkType | None = None
    existing_client: bool | None = None
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
