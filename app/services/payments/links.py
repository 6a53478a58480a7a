"""Payment links: an admin creates one for a prospect; the prospect registers with it
(once, before it expires: `link_state`)."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import PaymentLink, Product
from app.models.enums import EventType
from app.services import events
from app.services.payments.errors import PaymentErrorCode
from app.services.validation import check_name, normalise_email
from app.settings import get_settings

DEFAULT_LINK_HOURS = 7 * 24
MAX_LINK_HOURS = 90 * 24


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


async def create_payment_link(
    admin: Viewer,
    *,
    product_id: uuid.UUID,
    prospect_email: str,
    prospect_name: str,
    expires_in_hours: int | None = None,
) -> PaymentLink:
    email = normalise_email(prospect_email, "prospectEmail")
    name = check_name(prospect_name, "prospectName")
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
