"""Registration with a payment link, and checkout: a Stripe Checkout Session for a
pending order, started at registration and resumed later (a reminder's link, the
client's "pay now").

External calls (the payment provider) never run inside a database transaction: the
registration commits first, then talks to Stripe, and a provider failure leaves a
consistent account whose checkout can be resumed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import Credential, Order, PaymentLink, Product, Profile
from app.models.enums import EventType, OrderStatus, UserStatus
from app.providers.payments import CheckoutRequest, PaymentProvider, PaymentProviderError
from app.security import hash_password
from app.services import events, search
from app.services.payments.errors import PaymentErrorCode
from app.services.payments.links import link_amount, link_by_token, refuse_unless_usable
from app.services.payments.orders import visible_orders
from app.services.sessions import Origin, start_session
from app.services.validation import check_name, check_password, normalise_phone
from app.settings import get_settings


@dataclass
class Registration:
    profile: Profile
    order: Order
    token: str
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    checkout_url: str | None
    checkout_error: DomainError | None


def _urls(order: Order) -> tuple[str, str]:
    base = get_settings().public_app_url.rstrip("/")
    return (
        f"{base}/payment/success?order={order.id}",
        f"{base}/payment/cancelled?order={order.id}",
    )


async def start_checkout(
    provider: PaymentProvider, order: Order, *, now: datetime | None = None
) -> str:
    """A Checkout Session for a pending order; returns its URL.

    Each attempt has a deterministic idempotency key (`checkout-<order>-<attempt>`), so a
    retry or a double click within an attempt gets the same session back from Stripe
    instead of a second one. A new attempt starts when the last session expired or failed,
    or is older than the reuse window.
    """
    now = now or datetime.now(UTC)
    window = timedelta(minutes=get_settings().checkout_reuse_minutes)
    async with in_transaction():
        order = await Order.filter(id=order.id).select_for_update().get()
        if order.status != OrderStatus.PENDING:
            raise DomainError(
                PaymentErrorCode.ORDER_NOT_PAYABLE, "This order is not awaiting payment."
            )
        meta = dict(order.metadata)
        attempt = int(meta.get("checkout_attempt", 0))
        started = meta.get("checkout_started_at")
        stale = (
            attempt == 0
            or meta.get("checkout_closed")
            or not started
            or now - datetime.fromisoformat(started) > window
        )
        if stale:
            attempt += 1
            meta.update(
                checkout_attempt=attempt, checkout_started_at=now.isoformat(), checkout_closed=False
            )
            order.metadata = meta
            await order.save(update_fields=["metadata", "updated_at"])
    profile = await Profile.get(id=order.user_id)
    product = await Product.get(id=order.product_id)
    credential = await Credential.get(profile_id=profile.id)
    try:
        if not profile.stripe_customer_id:
            customer_id = await provider.create_customer(
                profile_id=profile.id,
                email=credential.email,
                name=profile.full_name,
                phone=profile.phone,
            )
            await Profile.filter(id=profile.id).update(stripe_customer_id=customer_id)
            profile.stripe_customer_id = customer_id
        success_url, cancel_url = _urls(order)
        session = await provider.create_checkout_session(
            CheckoutRequest(
                order_id=order.id,
                customer_id=profile.stripe_customer_id,
                product_name=product.name,
                amount=order.amount,
                currency=order.currency,
                success_url=success_url,
                cancel_url=cancel_url,
                idempotency_key=f"checkout-{order.id}-{attempt}",
                customer_email=credential.email,
                allow_promotion_codes=product.allow_promotion_codes,
            )
        )
    except PaymentProviderError as exc:
        raise DomainError(
            PaymentErrorCode.CHECKOUT_UNAVAILABLE,
            "The payment service is unavailable; try again in a moment.",
        ) from exc
    if session.id != order.stripe_checkout_session_id:
        async with in_transaction():
            await Order.filter(id=order.id).update(
                stripe_checkout_session_id=session.id,
                stripe_customer_id=profile.stripe_customer_id,
                updated_at=datetime.now(UTC),
            )
            if order.payment_link_id:
                await PaymentLink.filter(id=order.payment_link_id).update(
                    stripe_checkout_session_id=session.id
                )
            await events.record(
                "order",
                order.id,
                EventType.CHECKOUT_STARTED,
                payload={"sessionId": session.id, "attempt": attempt},
            )
    return session.url


async def close_checkout(order: Order) -> None:
    """The current session can no longer be paid: the next checkout starts a new attempt."""
    if not order.metadata.get("checkout_closed"):
        order.metadata = {**order.metadata, "checkout_closed": True}
        await order.save(update_fields=["metadata", "updated_at"])


async def register_with_payment_link(
    provider: PaymentProvider,
    *,
    token: str,
    full_name: str,
    phone: str,
    password: str,
    origin: Origin | None = None,
) -> Registration:
    full_name = check_name(full_name, "fullName")
    phone_e164 = normalise_phone(phone)
    link = await link_by_token(token)
    refuse_unless_usable(link)
    product: Product = link.product
    if await Credential.filter(email=link.prospect_email).exists():
        raise DomainError(
            PaymentErrorCode.EMAIL_TAKEN,
            "An account already exists for this email; log in and pay with this link.",
        )
    check_password(password, email=link.prospect_email, name=full_name)
    # Hashed once the link is known to be good: a made-up token costs no hash.
    password_hash = await hash_password(password)
    now = datetime.now(UTC)
    try:
        async with in_transaction():
            # The conditional update is the single-use guard: of two concurrent
            # registrations exactly one changes the row.
            await _claim(link, now)
            profile = await Profile.create(
                full_name=full_name, phone=phone_e164, status=UserStatus.PENDING
            )
            credential = await Credential.create(
                email=link.prospect_email,
                password_hash=password_hash,
                password_changed_at=now,
                profile=profile,
            )
            await events.record("profile", profile.id, EventType.PROFILE_CREATED)
            await search.index_clients([profile.id])
            order = await _order_from_link(link, product, profile)
    except IntegrityError:  # the email was taken concurrently
        raise DomainError(
            PaymentErrorCode.EMAIL_TAKEN,
            "An account already exists for this email; log in and pay with this link.",
        ) from None
    tokens = await start_session(credential, origin, method="registration")
    checkout_url, checkout_error = None, None
    try:
        checkout_url = await start_checkout(provider, order)
    except DomainError as error:
        checkout_error = error
    return Registration(
        profile,
        order,
        tokens.access_token,
        tokens.expires_at,
        tokens.refresh_token,
        tokens.refresh_expires_at,
        checkout_url,
        checkout_error,
    )


async def _claim(link: PaymentLink, now: datetime) -> None:
    """The conditional update is the single-use guard: of two concurrent uses exactly one
    changes the row (a link revoked meanwhile changes none)."""
    claimed = await PaymentLink.filter(id=link.id, used_at=None, revoked_at=None).update(
        used_at=now
    )
    if claimed != 1:
        raise DomainError(PaymentErrorCode.LINK_USED, "This payment link was already used.")


async def _order_from_link(link: PaymentLink, product: Product, profile: Profile) -> Order:
    """The pending order a claimed link opens for `profile`, at the link's price."""
    await PaymentLink.filter(id=link.id).update(used_by_id=profile.id)
    order = await Order.create(
        user_id=profile.id,
        product_id=product.id,
        payment_link_id=link.id,
        amount=link_amount(link, product),
        currency=product.currency,
        status=OrderStatus.PENDING,
        metadata={},
    )
    await events.record(
        "payment_link",
        link.id,
        EventType.PAYMENT_LINK_USED,
        actor=None,
        payload={"profileId": str(profile.id)},
    )
    await events.record(
        "order",
        order.id,
        EventType.ORDER_CREATED,
        payload={"amount": order.amount, "currency": order.currency},
    )
    return order


@dataclass
class Redemption:
    order: Order
    checkout_url: str | None
    checkout_error: DomainError | None


async def redeem_payment_link(provider: PaymentProvider, viewer: Viewer, token: str) -> Redemption:
    """A logged-in client pays with a link made out to their e-mail (a renewal, a second
    service): a new order for the same profile, its checkout, and a new dossier once
    paid. A link for another e-mail is refused without using it."""
    if viewer.profile is None:
        raise DomainError(
            PaymentErrorCode.NOT_A_CLIENT, "Only a client can pay with a payment link."
        )
    link = await link_by_token(token)
    refuse_unless_usable(link)
    if link.prospect_email != viewer.email:
        raise DomainError(
            PaymentErrorCode.LINK_FOR_ANOTHER_ACCOUNT,
            "This payment link was made out to another e-mail address.",
        )
    async with in_transaction():
        await _claim(link, datetime.now(UTC))
        order = await _order_from_link(link, link.product, viewer.profile)
    checkout_url, checkout_error = None, None
    try:
        checkout_url = await start_checkout(provider, order)
    except DomainError as error:
        checkout_error = error
    return Redemption(order, checkout_url, checkout_error)


async def resume_checkout(provider: PaymentProvider, viewer: Viewer, order_id: uuid.UUID) -> str:
    order = await visible_orders(viewer).filter(id=order_id).first()
    if order is None or viewer.profile is None:
        raise NotFound("No such order.")
    return await start_checkout(provider, order)
