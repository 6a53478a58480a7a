"""Payment links: an admin creates one for a prospect or a returning client; the prospect
registers with it, a returning client redeems it once logged in (once, before it expires,
unless revoked: `link_state`); an admin can revoke it or send it again.

A link's secret is derived from its id with SECRET_KEY (HMAC-SHA256, `link_secret`), as
account tokens are: the row keeps only its SHA-256 (`token`), the e-mail's link is derived
when the e-mail is written (app.services.delivery), and a resend carries the same link.
No row, event, notification or log holds it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import PaymentLink, Product
from app.models.enums import EventType
from app.services import events
from app.services.catalog import product_on_sale
from app.services.payments.errors import PaymentErrorCode
from app.services.recovery import client_by_email
from app.services.validation import check_name, normalise_email
from app.settings import get_settings

DEFAULT_LINK_HOURS = 7 * 24
MAX_LINK_HOURS = 90 * 24


class LinkState(StrEnum):
    VALID = "VALID"
    EXPIRED = "EXPIRED"
    USED = "USED"
    REVOKED = "REVOKED"


def link_state(link: PaymentLink, now: datetime | None = None) -> LinkState:
    if link.used_at is not None:
        return LinkState.USED
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if link.expires_at <= (now or datetime.now(UTC)):
        return LinkState.EXPIRED
    return LinkState.VALID


def link_secret(link_id: uuid.UUID) -> str:
    key = get_settings().secret_key.encode()
    mac = hmac.new(key, f"payment-link:{link_id}".encode(), hashlib.sha256).digest()
    return f"{link_id.hex}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_of(link: PaymentLink) -> str | None:
    """The link's secret, or None for a link made before secrets were derived (its
    prospect holds a random one that only its hash remembers; a resend replaces it)."""
    secret = link_secret(link.id)
    return secret if hmac.compare_digest(token_digest(secret), link.token) else None


def register_url(secret: str, *, existing_client: bool = False) -> str:
    """Where the e-mail sends them: registration, or (a client already) paying once
    logged in."""
    path = "/pay" if existing_client else "/register"
    return f"{get_settings().public_app_url.rstrip('/')}{path}?token={secret}"


def link_url(link_id: str, existing_client: bool) -> str:
    """The e-mail's link, derived when the e-mail is written (app.services.delivery)."""
    return register_url(link_secret(uuid.UUID(link_id)), existing_client=existing_client)


async def is_existing_client(email: str) -> bool:
    """An account exists for `email`: a client's, or the refusal for a staff one."""
    return await client_by_email(email, "prospectEmail") is not None


def check_link_amount(product: Product, amount: int | None) -> int | None:
    """A link's own price (a quote, a discount), within the range an admin set on the
    product (updateProduct's linkAmountMin/linkAmountMax); the product's when not given."""
    if amount is None:
        return None
    low, high = product.link_amount_min, product.link_amount_max
    if low is None and high is None:
        raise DomainError(
            PaymentErrorCode.INVALID_AMOUNT,
            "This product's price is fixed: an admin can allow a range of link amounts.",
            "amount",
        )
    if not (low or 1) <= amount <= (high or product.price_amount):
        raise DomainError(
            PaymentErrorCode.INVALID_AMOUNT,
            f"A link for this product charges {low or 1} to {high or product.price_amount} cents.",
            "amount",
        )
    return amount


def link_amount(link: PaymentLink, product: Product) -> int:
    return link.amount if link.amount is not None else product.price_amount


def _sent_payload(link: PaymentLink, product: Product, existing_client: bool) -> dict:
    """What the prospect's e-mail says: never the secret (`paymentLinkId`: the delivery
    derives the link from it)."""
    return {
        "email": link.prospect_email,
        "name": link.prospect_name,
        "productName": product.name,
        "amount": link_amount(link, product),
        "currency": product.currency,
        "paymentLinkId": str(link.id),
        "existingClient": existing_client,
        "expiresAt": link.expires_at.isoformat(),
    }


def _check_hours(expires_in_hours: int | None) -> int:
    hours = DEFAULT_LINK_HOURS if expires_in_hours is None else expires_in_hours
    if not 1 <= hours <= MAX_LINK_HOURS:
        raise DomainError(
            PaymentErrorCode.INVALID_EXPIRY,
            f"A link lasts 1 to {MAX_LINK_HOURS} hours.",
            "expiresInHours",
        )
    return hours


async def create_payment_link(
    admin: Viewer | None,
    *,
    product_id: uuid.UUID,
    prospect_email: str,
    prospect_name: str,
    expires_in_hours: int | None = None,
    amount: int | None = None,
) -> tuple[PaymentLink, bool]:
    """The link, and whether its e-mail is an existing client's (then the e-mail says
    "log in to pay"). `admin` None: the system makes it (a renewal offered by the worker,
    app.services.document_expiry): no `created_by`, a SYSTEM event."""
    email = normalise_email(prospect_email, "prospectEmail")
    name = check_name(prospect_name, "prospectName")
    hours = _check_hours(expires_in_hours)
    product = await Product.filter(id=product_id).first()
    if product is None:
        raise NotFound("No such product.")
    if not product_on_sale(product):
        raise DomainError(
            PaymentErrorCode.PRODUCT_INACTIVE, "This product is not on sale.", "productId"
        )
    amount = check_link_amount(product, amount)
    existing = await is_existing_client(email)
    link_id = uuid.uuid4()
    async with in_transaction():
        link = await PaymentLink.create(
            id=link_id,
            token=token_digest(link_secret(link_id)),
            product_id=product.id,
            prospect_email=email,
            prospect_name=name,
            amount=amount,
            created_by_id=admin.agent.id if admin and admin.agent else None,
            expires_at=datetime.now(UTC) + timedelta(hours=hours),
        )
        await events.record(
            "payment_link",
            link.id,
            EventType.PAYMENT_LINK_CREATED,
            actor=admin,
            payload=_sent_payload(link, product, existing),
        )
    return link, existing


async def _locked_link(link_id: uuid.UUID) -> PaymentLink:
    link = await PaymentLink.filter(id=link_id).select_for_update().first()
    if link is None:
        raise NotFound("No such payment link.")
    return link


def _refuse_unless_valid(link: PaymentLink) -> None:
    state = link_state(link)
    if state == LinkState.USED:
        raise DomainError(PaymentErrorCode.LINK_USED, "This payment link was already used.")
    if state == LinkState.REVOKED:
        raise DomainError(PaymentErrorCode.LINK_REVOKED, "This payment link was withdrawn.")
    if state == LinkState.EXPIRED:
        raise DomainError(
            PaymentErrorCode.LINK_EXPIRED, "This payment link has expired; ask for a new one."
        )


async def revoke_payment_link(admin: Viewer, link_id: uuid.UUID) -> PaymentLink:
    """Withdraw a link not used yet: it can no longer be used. Revoking twice is a no-op."""
    async with in_transaction():
        link = await _locked_link(link_id)
        if link.revoked_at is not None:
            return link
        if link.used_at is not None:
            raise DomainError(PaymentErrorCode.LINK_USED, "This payment link was already used.")
        link.revoked_at = datetime.now(UTC)
        await link.save(update_fields=["revoked_at"])
        await events.record("payment_link", link.id, EventType.PAYMENT_LINK_REVOKED, actor=admin)
    return link


async def resend_payment_link(
    admin: Viewer, link_id: uuid.UUID, *, expires_in_hours: int | None = None
) -> tuple[PaymentLink, bool]:
    """E-mail a valid link again (the same link; a link made before secrets were derived
    gets a new one, the old stops working), its expiry moved when `expiresInHours` is
    given."""
    hours = None if expires_in_hours is None else _check_hours(expires_in_hours)
    async with in_transaction():
        link = await _locked_link(link_id)
        if hours is not None and link.used_at is None and link.revoked_at is None:
            link.expires_at = datetime.now(UTC) + timedelta(hours=hours)
        _refuse_unless_valid(link)
        link.token = token_digest(link_secret(link.id))
        await link.save(update_fields=["token", "expires_at"])
        product = await Product.get(id=link.product_id)
        existing = await is_existing_client(link.prospect_email)
        await events.record(
            "payment_link",
            link.id,
            EventType.PAYMENT_LINK_RESENT,
            actor=admin,
            payload=_sent_payload(link, product, existing),
        )
    return link, existing


async def link_by_token(token: str) -> PaymentLink:
    link = await PaymentLink.filter(token=token_digest(token)).select_related("product").first()
    if link is None:
        raise NotFound("No such payment link.")
    return link


def refuse_unless_usable(link: PaymentLink) -> None:
    """A link a prospect or client may pay with now: valid, for a product on sale."""
    _refuse_unless_valid(link)
    if not product_on_sale(link.product):
        raise DomainError(PaymentErrorCode.PRODUCT_INACTIVE, "This product is not on sale.")
