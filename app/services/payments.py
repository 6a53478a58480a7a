"""Payment links, registration, checkout, and what Stripe's events do to orders.

External calls (the payment provider) never run inside a database transaction: the
registration commits first, then talks to Stripe, and a provider failure leaves a
consistent account whose checkout can be resumed.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import phonenumbers
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.db import Writes
from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import (
    Credential,
    Dossier,
    Order,
    PaymentLink,
    PaymentReminder,
    Product,
    Profile,
)
from app.models.enums import (
    DossierStatus,
    EventType,
    NotificationChannel,
    OrderStatus,
    UserStatus,
)
from app.providers.payments import CheckoutRequest, PaymentProvider, PaymentProviderError
from app.security import hash_password, issue_token
from app.services import events
from app.services.validation import check_password, check_text, normalise_email
from app.services.workflow.machine import transition
from app.services.workflow.steps import open_dossier
from app.settings import get_settings

DEFAULT_LINK_HOURS = 7 * 24
MAX_LINK_HOURS = 90 * 24


class PaymentErrorCode(StrEnum):
    LINK_EXPIRED = "LINK_EXPIRED"
    LINK_USED = "LINK_USED"
    PRODUCT_INACTIVE = "PRODUCT_INACTIVE"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    INVALID_EXPIRY = "INVALID_EXPIRY"
    ORDER_NOT_PAYABLE = "ORDER_NOT_PAYABLE"
    CHECKOUT_UNAVAILABLE = "CHECKOUT_UNAVAILABLE"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"


class LinkState(StrEnum):
    VALID = "VALID"
    EXPIRED = "EXPIRED"
    USED = "USED"


def link_state(link: PaymentLink, now: datetime | None = None) -> LinkState:
    if link.used_at is not None:
        return LinkState.USED
    if link.expires_at <= (now or datetime.now(UTC)):
        return LinkState.EXPIRED
    return LinkState.VALID


def register_url(token: str) -> str:
    return f"{get_settings().public_app_url.rstrip('/')}/register?token={token}"


def normalise_phone(value: str, field: str = "phone") -> str:
    """E.164; numbers without a country code are read as French."""
    try:
        number = phonenumbers.parse(value.strip(), "FR")
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise DomainError(PaymentErrorCode.INVALID_PHONE, "Invalid phone number.", field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- payment links ---------------------------------------------------------------------


async def create_payment_link(
    admin: Viewer,
    *,
    product_id: uuid.UUID,
    prospect_email: str,
    prospect_name: str,
    expires_in_hours: int | None = None,
) -> PaymentLink:
    email = normalise_email(prospect_email, "prospectEmail")
    name = check_text(prospect_name, "prospectName", max_length=200)
    hours = DEFAULT_LINK_HOURS if expires_in_hours is None else expires_in_hours
    if not 1 <= hours <= MAX_LINK_HOURS:
        raise DomainError(
            PaymentErrorCode.INVALID_EXPIRY,
            f"A link lasts 1 to {MAX_LINK_HOURS} hours.",
            "expiresInHours",
        )
    product = await Product.filter(id=product_id).first()
    if product is None:
        raise NotFound("No such product.")
    if not product.active:
        raise DomainError(
            PaymentErrorCode.PRODUCT_INACTIVE, "This product is not on sale.", "productId"
        )
    async with in_transaction():
        link = await PaymentLink.create(
            token=secrets.token_urlsafe(32),
            product_id=product.id,
            prospect_email=email,
            prospect_name=name,
            created_by_id=admin.agent.id if admin.agent else None,
            expires_at=datetime.now(UTC) + timedelta(hours=hours),
        )
        await events.record(
            "payment_link",
            link.id,
            EventType.PAYMENT_LINK_CREATED,
            actor=admin,
            payload={
                "email": email,
                "name": name,
                "productName": product.name,
                "amount": product.price_amount,
                "currency": product.currency,
                "url": register_url(link.token),
                "expiresAt": link.expires_at.isoformat(),
            },
        )
    return link


async def link_by_token(token: str) -> PaymentLink:
    link = await PaymentLink.filter(token=token).select_related("product").first()
    if link is None:
        raise NotFound("No such payment link.")
    return link


# --- registration and checkout ----------------------------------------------------------


@dataclass
class Registration:
    profile: Profile
    order: Order
    token: str
    expires_at: datetime
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
    profile = await Profile.get(id=order.user_id)  # type: ignore[attr-defined]
    product = await Product.get(id=order.product_id)  # type: ignore[attr-defined]
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
            if order.payment_link_id:  # type: ignore[attr-defined]
                await PaymentLink.filter(id=order.payment_link_id).update(  # type: ignore[attr-defined]
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
) -> Registration:
    full_name = check_text(full_name, "fullName", max_length=200)
    phone_e164 = normalise_phone(phone)
    check_password(password)
    password_hash = hash_password(password)
    link = await link_by_token(token)
    state = link_state(link)
    if state == LinkState.USED:
        raise DomainError(PaymentErrorCode.LINK_USED, "This payment link was already used.")
    if state == LinkState.EXPIRED:
        raise DomainError(
            PaymentErrorCode.LINK_EXPIRED, "This payment link has expired; ask for a new one."
        )
    product: Product = link.product
    if not product.active:
        raise DomainError(PaymentErrorCode.PRODUCT_INACTIVE, "This product is not on sale.")
    now = datetime.now(UTC)
    try:
        async with in_transaction():
            # The conditional update is the single-use guard: of two concurrent
            # registrations exactly one changes the row.
            claimed = await PaymentLink.filter(id=link.id, used_at=None).update(used_at=now)
            if claimed != 1:
                raise DomainError(PaymentErrorCode.LINK_USED, "This payment link was already used.")
            if await Credential.filter(email=link.prospect_email).exists():
                raise DomainError(
                    PaymentErrorCode.EMAIL_TAKEN,
                    "An account already exists for this email; log in instead.",
                )
            profile = await Profile.create(
                full_name=full_name, phone=phone_e164, status=UserStatus.PENDING
            )
            credential = await Credential.create(
                email=link.prospect_email,
                password_hash=password_hash,
                password_changed_at=now,
                profile=profile,
            )
            await PaymentLink.filter(id=link.id).update(used_by_id=profile.id)
            order = await Order.create(
                user_id=profile.id,
                product_id=product.id,
                payment_link_id=link.id,
                amount=product.price_amount,
                currency=product.currency,
                status=OrderStatus.PENDING,
                metadata={},
            )
            await events.record("profile", profile.id, EventType.PROFILE_CREATED)
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
    except IntegrityError:  # the email was taken concurrently
        raise DomainError(
            PaymentErrorCode.EMAIL_TAKEN,
            "An account already exists for this email; log in instead.",
        ) from None
    jwt_token, expires = issue_token(credential)
    checkout_url, checkout_error = None, None
    try:
        checkout_url = await start_checkout(provider, order)
    except DomainError as error:
        checkout_error = error
    return Registration(profile, order, jwt_token, expires, checkout_url, checkout_error)


async def resume_checkout(provider: PaymentProvider, viewer: Viewer, order_id: uuid.UUID) -> str:
    order = await visible_orders(viewer).filter(id=order_id).first()
    if order is None or viewer.profile is None:
        raise NotFound("No such order.")
    return await start_checkout(provider, order)


def visible_orders(viewer: Viewer):
    if viewer.is_agent:
        return Order.all()
    if viewer.profile is not None:
        return Order.filter(user_id=viewer.profile.id)
    raise NotFound("No such order.")


# --- what Stripe's events do ------------------------------------------------------------


async def _locked_order(order_id: Any, *, with_product: bool = False) -> Order | None:
    """The order row, locked until the transaction ends; `with_product`: its product read
    in the same statement (only the order is locked)."""
    try:
        oid = uuid.UUID(str(order_id))
    except ValueError:
        return None
    queryset = Order.filter(id=oid)
    if with_product:
        queryset = queryset.select_related("product").select_for_update(of=("orders",))
    else:
        queryset = queryset.select_for_update()
    return await queryset.first()


def _session_matches(order: Order, session: dict[str, Any]) -> bool:
    """The session must be for this order, for its amount and currency."""
    return (
        str(session.get("client_reference_id") or "") == str(order.id)
        and session.get("amount_total") == order.amount
        and str(session.get("currency") or "").lower() == order.currency.lower()
    )


async def fulfil(session: dict[str, Any]) -> None:
    """Paid: order PAID, profile ACTIVE, the dossier opened. Runs in the webhook's
    transaction; idempotent and monotonic (a paid order stays paid). After the reads (the
    order with its product, the product's steps, the first step's document types) every
    change goes out together (`Writes`: one statement on PostgreSQL)."""
    metadata = session.get("metadata") or {}
    order = await _locked_order(
        metadata.get("order_id") or session.get("client_reference_id"), with_product=True
    )
    if order is None or not _session_matches(order, session):
        raise UnmatchedEvent("checkout session does not match an order of ours")
    if order.status != OrderStatus.PENDING:
        return
    now = datetime.now(UTC)
    writes = Writes()
    writes.update(Profile, {"id": order.user_id}, status=UserStatus.ACTIVE, updated_at=now)  # type: ignore[attr-defined]
    writes.update(
        PaymentReminder,
        {"order_id": order.id, "sent_at": None, "cancelled_at": None},
        cancelled_at=now,
    )
    events.add(
        writes,
        "order",
        order.id,
        EventType.PAYMENT_SUCCEEDED,
        payload={"amount": order.amount, "currency": order.currency, "sessionId": session["id"]},
    )
    await open_dossier(order, product=order.product, writes=writes)
    order.status = OrderStatus.PAID
    order.paid_at = now
    order.stripe_payment_intent_id = session.get("payment_intent") or None
    order.updated_at = now
    writes.update(  # after the dossier it points to
        Order,
        {"id": order.id},
        status=order.status,
        paid_at=now,
        stripe_payment_intent_id=order.stripe_payment_intent_id,
        dossier_id=order.dossier_id,  # type: ignore[attr-defined]
        updated_at=now,
    )
    await writes.run()


async def payment_failed(order_id: Any, *, reason: str) -> None:
    """Not paid: profile SUSPENDED (unless it already has a paid order), the order stays
    PENDING, and reminders are scheduled once."""
    order = await _locked_order(order_id)
    if order is None:
        raise UnmatchedEvent("payment failure for an unknown order")
    if order.status != OrderStatus.PENDING:
        return  # a late failure after payment changes nothing
    await close_checkout(order)
    profile_id = order.user_id  # type: ignore[attr-defined]
    has_paid = await Order.filter(user_id=profile_id, status=OrderStatus.PAID).exists()
    if not has_paid:
        await Profile.filter(id=profile_id).update(
            status=UserStatus.SUSPENDED, updated_at=datetime.now(UTC)
        )
    await schedule_reminders(order)
    await events.record("order", order.id, EventType.PAYMENT_FAILED, payload={"reason": reason})


async def schedule_reminders(order: Order) -> None:
    """One row per slot and channel; a second failure event schedules nothing new."""
    if await PaymentReminder.filter(order_id=order.id).exists():
        return
    profile = await Profile.get(id=order.user_id)  # type: ignore[attr-defined]
    settings = get_settings()
    channels = [NotificationChannel.EMAIL]
    if profile.phone:
        channels.append(settings.payment_reminder_phone_channel)
    now = datetime.now(UTC)
    await PaymentReminder.bulk_create(
        [
            PaymentReminder(
                user_id=profile.id,
                order_id=order.id,
                slot=slot,
                sent_via=channel,
                scheduled_for=now + timedelta(hours=hours),
            )
            for slot, hours in enumerate(settings.payment_reminder_hours)
            for channel in channels
        ]
    )


async def refund(payment_intent_id: str | None, metadata: dict[str, Any]) -> None:
    order = None
    if payment_intent_id:
        order = (
            await Order.filter(stripe_payment_intent_id=payment_intent_id)
            .select_for_update()
            .first()
        )
    if order is None and metadata.get("order_id"):
        order = await _locked_order(metadata["order_id"])
    if order is None:
        raise UnmatchedEvent("refund for an unknown payment")
    if order.status != OrderStatus.PAID:
        return
    order.status = OrderStatus.REFUNDED
    await order.save(update_fields=["status", "updated_at"])
    await events.record("order", order.id, EventType.ORDER_REFUNDED)
    dossier_id = order.dossier_id  # type: ignore[attr-defined]
    if dossier_id:
        dossier = await Dossier.filter(id=dossier_id).select_for_update().get()
        if dossier.status not in (DossierStatus.CANCELLED, DossierStatus.COMPLETED):
            await transition(dossier, DossierStatus.CANCELLED, reason="Payment refunded")


class UnmatchedEvent(Exception):
    """A well-signed event that refers to nothing of ours (or to the wrong amount)."""
