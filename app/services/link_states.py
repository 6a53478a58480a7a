"""What the links of e-mails and notifications point at, read without consuming
anything: the state of a password-reset or invitation token and of a payment link (for
the plain pages that answer them when no front end is configured, app.http.link_pages)."""

from __future__ import annotations

from enum import StrEnum

from app import clock
from app.models import AccountToken, PaymentLink
from app.models.enums import AccountTokenPurpose
from app.security import secret_hash
from app.services.payments.links import LinkState, link_state, token_digest


class TokenState(StrEnum):
    VALID = "VALID"
    USED = "USED"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    UNKNOWN = "UNKNOWN"  # no such token (mistyped, or replaced by a newer one)


async def account_token_state(purpose: AccountTokenPurpose, token: str) -> TokenState:
    """A reset or invitation token's state, as resetPassword / acceptInvitation would find
    it (one lookup by its hash, an index; nothing written)."""
    if not token:
        return TokenState.UNKNOWN
    row = await AccountToken.filter(token_hash=secret_hash(token), purpose=purpose).first()
    if row is None:
        return TokenState.UNKNOWN
    if row.used_at is not None:
        return TokenState.USED
    if row.expires_at <= clock.now():
        return TokenState.EXPIRED
    return TokenState.VALID


async def payment_link_state(token: str) -> tuple[TokenState, PaymentLink | None]:
    """A payment link's state and row (its product fetched), as registration would find it."""
    if not token:
        return TokenState.UNKNOWN, None
    link = await PaymentLink.filter(token=token_digest(token)).select_related("product").first()
    if link is None:
        return TokenState.UNKNOWN, None
    state = link_state(link)  # the clock registration itself reads
    return {
        LinkState.VALID: TokenState.VALID,
        LinkState.USED: TokenState.USED,
        LinkState.EXPIRED: TokenState.EXPIRED,
        LinkState.REVOKED: TokenState.REVOKED,
    }[state], link
