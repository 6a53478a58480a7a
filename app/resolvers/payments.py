from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from app import models as m
from app.context import Info
from app.errors import DomainError, NotFound
from app.models import Credential
from app.schema.common import Connection, paginate, parse_id, row_as, user_errors
from app.schema.identity import ProfileType
from app.schema.payments import (
    CreatePaymentLinkInput,
    CreatePaymentLinkPayload,
    OrderFilter,
    OrderType,
    PaymentErrorCode,
    PaymentLinkPayload,
    PaymentLinkPreview,
    PaymentLinkState,
    PaymentLinkType,
    PaymentUserError,
    RedeemPaymentLinkInput,
    RedeemPaymentLinkPayload,
    RefundOrderInput,
    RefundOrderPayload,
    RefundType,
    RegisterWithPaymentLinkInput,
    RegisterWithPaymentLinkPayload,
    ResendPaymentLinkInput,
    ResumeCheckoutInput,
    ResumeCheckoutPayload,
    RevokePaymentLinkInput,
)
from app.services.payments.checkout import (
    redeem_payment_link,
    register_with_payment_link,
    resume_checkout,
)
from app.services.payments.links import (
    LinkState,
    create_payment_link,
    link_amount,
    link_by_token,
    link_state,
    resend_payment_link,
    revoke_payment_link,
)
from app.services.payments.orders import visible_orders
from app.services.payments.refunds import refund_order


def _errors(error: DomainError) -> list[PaymentUserError]:
    return user_errors(error, PaymentUserError, PaymentErrorCode)


def _provider(info: Info):
    return info.context.request.app.state.payments


@strawberry.type
class PaymentQuery:
    @strawberry.field(description="What a registration page needs; no token required.")
    async def payment_link(self, token: str) -> PaymentLinkPreview:
        link = await link_by_token(token)
        product = link.product
        return PaymentLinkPreview(
            state=link_state(link),
            existing_client=await Credential.filter(email=link.prospect_email).exists(),
            product_name=product.name,
            product_description=product.description,
            price_amount=link_amount(link, product),
            currency=product.currency,
            prospect_name=link.prospect_name,
            prospect_email=link.prospect_email,
            expires_at=link.expires_at,
        )

    @strawberry.field(description="Payment links, newest first (admins only).")
    async def payment_links(
        self,
        info: Info,
        state: PaymentLinkState | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[PaymentLinkType]:
        await info.context.require_admin()
        queryset = m.PaymentLink.all()
        now = datetime.now(UTC)
        if state == LinkState.USED:
            queryset = queryset.filter(used_at__not_isnull=True)
        elif state == LinkState.REVOKED:
            queryset = queryset.filter(used_at=None, revoked_at__not_isnull=True)
        elif state == LinkState.EXPIRED:
            queryset = queryset.filter(used_at=None, revoked_at=None, expires_at__lte=now)
        elif state == LinkState.VALID:
            queryset = queryset.filter(used_at=None, revoked_at=None, expires_at__gt=now)
        return await paginate(
            queryset,
            first=first,
            after=after,
            last=last,
            before=before,
            order=("-created_at", "-id"),
        )

    @strawberry.field(description="Orders: a client's own, or all for agents; newest first.")
    async def orders(
        self,
        info: Info,
        filter: OrderFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[OrderType]:
        viewer = await info.context.require_viewer()
        queryset = visible_orders(viewer)
        if filter is not None:
            if filter.status:
                queryset = queryset.filter(status__in=list(filter.status))
            if filter.client_id is not None:
                queryset = queryset.filter(user_id=parse_id(filter.client_id, what="client"))
        return await paginate(
            queryset,
            first=first,
            after=after,
            last=last,
            before=before,
            order=("-created_at", "-id"),
        )

    @strawberry.field(description="One order: yours, or any for agents.")
    async def order(self, info: Info, id: strawberry.ID) -> OrderType:
        viewer = await info.context.require_viewer()
        order = await visible_orders(viewer).filter(id=parse_id(id, what="order")).first()
        if order is None:
            raise NotFound("No such order.")
        return order


@strawberry.type
class PaymentMutation:
    @strawberry.mutation(description="Send a prospect a link to register and pay (admins only).")
    async def create_payment_link(
        self, info: Info, input: CreatePaymentLinkInput
    ) -> CreatePaymentLinkPayload:
        admin = await info.context.require_admin()
        try:
            link, existing = await create_payment_link(
                admin,
                product_id=parse_id(input.product_id, what="product"),
                prospect_email=input.prospect_email,
                prospect_name=input.prospect_name,
                expires_in_hours=input.expires_in_hours,
                amount=input.amount,
            )
        except DomainError as error:
            return CreatePaymentLinkPayload(user_errors=_errors(error))
        return CreatePaymentLinkPayload(
            payment_link=row_as(PaymentLinkType, link), existing_client=existing
        )

    @strawberry.mutation(
        description="Withdraw a payment link not used yet (admins only); twice is a no-op."
    )
    async def revoke_payment_link(
        self, info: Info, input: RevokePaymentLinkInput
    ) -> PaymentLinkPayload:
        admin = await info.context.require_admin()
        link_id = parse_id(input.payment_link_id, what="payment link")
        try:
            link = await revoke_payment_link(admin, link_id)
        except DomainError as error:
            return PaymentLinkPayload(user_errors=_errors(error))
        return PaymentLinkPayload(payment_link=row_as(PaymentLinkType, link))

    @strawberry.mutation(
        description="E-mail a payment link again, the same link (admins only); "
        "`expiresInHours` moves its expiry, which also revives an expired one."
    )
    async def resend_payment_link(
        self, info: Info, input: ResendPaymentLinkInput
    ) -> PaymentLinkPayload:
        admin = await info.context.require_admin()
        link_id = parse_id(input.payment_link_id, what="payment link")
        try:
            link, existing = await resend_payment_link(
                admin, link_id, expires_in_hours=input.expires_in_hours
            )
        except DomainError as error:
            return PaymentLinkPayload(user_errors=_errors(error))
        return PaymentLinkPayload(
            payment_link=row_as(PaymentLinkType, link), existing_client=existing
        )

    @strawberry.mutation(
        description="Pay with a payment link made out to your e-mail (a returning client): "
        "a new order and its checkout; a new dossier once paid."
    )
    async def redeem_payment_link(
        self, info: Info, input: RedeemPaymentLinkInput
    ) -> RedeemPaymentLinkPayload:
        viewer = await info.context.require_viewer()
        try:
            redemption = await redeem_payment_link(_provider(info), viewer, input.token)
        except DomainError as error:
            return RedeemPaymentLinkPayload(user_errors=_errors(error))
        return RedeemPaymentLinkPayload(
            order=row_as(OrderType, redemption.order),
            checkout_url=redemption.checkout_url,
            user_errors=_errors(redemption.checkout_error) if redemption.checkout_error else [],
        )

    @strawberry.mutation(
        description="Register with a payment link; returns a token and the checkout URL."
    )
    async def register_with_payment_link(
        self, info: Info, input: RegisterWithPaymentLinkInput
    ) -> RegisterWithPaymentLinkPayload:
        try:
            registration = await register_with_payment_link(
                _provider(info),
                token=input.token,
                full_name=input.full_name,
                phone=input.phone,
                password=input.password,
                origin=info.context.origin(),
            )
        except DomainError as error:
            return RegisterWithPaymentLinkPayload(user_errors=_errors(error))
        return RegisterWithPaymentLinkPayload(
            token=registration.token,
            expires_at=registration.expires_at,
            refresh_token=registration.refresh_token,
            refresh_expires_at=registration.refresh_expires_at,
            profile=row_as(ProfileType, registration.profile),
            order=row_as(OrderType, registration.order),
            checkout_url=registration.checkout_url,
            user_errors=_errors(registration.checkout_error) if registration.checkout_error else [],
        )

    @strawberry.mutation(description="A fresh checkout for one of your unpaid orders.")
    async def resume_checkout(
        self, info: Info, input: ResumeCheckoutInput
    ) -> ResumeCheckoutPayload:
        viewer = await info.context.require_viewer()
        try:
            url = await resume_checkout(
                _provider(info), viewer, parse_id(input.order_id, what="order")
            )
        except DomainError as error:
            return ResumeCheckoutPayload(user_errors=_errors(error))
        return ResumeCheckoutPayload(checkout_url=url)

    @strawberry.mutation(
        description="Refund a paid order, in part or the rest of it (admins only): through "
        "the payment provider when it was paid online, else recorded as a manual refund. "
        "A full refund cancels its dossier. The same refund (order, amount, admin) asked "
        "again within 5 minutes is answered with the one made (a double click, a retry)."
    )
    async def refund_order(self, info: Info, input: RefundOrderInput) -> RefundOrderPayload:
        admin = await info.context.require_admin()
        try:
            result = await refund_order(
                _provider(info),
                admin,
                parse_id(input.order_id, what="order"),
                amount=input.amount,
                reason=input.reason,
                note=input.note,
            )
        except DomainError as error:
            return RefundOrderPayload(user_errors=_errors(error))
        return RefundOrderPayload(
            order=row_as(OrderType, result.order), refund=row_as(RefundType, result.refund)
        )
