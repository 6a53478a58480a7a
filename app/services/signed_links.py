"""Signed, expiring links: `<path>?expires=…&signature=…`.

The signature is an HMAC-SHA256 of `<subject>.<expires>` under a key derived from SECRET_KEY
for one purpose, so a link signed for one use (a document download, a CSV export, a data
export archive) never opens another. The subject is what the link grants (an id, or an id and
the viewer it was issued to); the route that serves the link rebuilds it from the request and
calls `verify`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from app.settings import get_settings


class LinkRefused(Exception):
    """A link whose signature does not match, or that has expired (the message says which)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _key(purpose: str) -> bytes:
    return hmac.new(get_settings().secret_key.encode(), purpose.encode(), hashlib.sha256).digest()


def mac(purpose: str, subject: str) -> str:
    """The HMAC-SHA256 of `subject` under the purpose's key (hex): a token that only we can
    make, for what is not a link (the per-delivery bounce address, app.services.bounces)."""
    return hmac.new(_key(purpose), subject.encode(), hashlib.sha256).hexdigest()


def signature(purpose: str, subject: str, expires: int) -> str:
    message = f"{subject}.{expires}".encode()
    return hmac.new(_key(purpose), message, hashlib.sha256).hexdigest()


def sign(
    purpose: str, path: str, subject: str, *, ttl: timedelta, now: datetime | None = None
) -> tuple[str, datetime]:
    """`path?expires=…&signature=…` (path may carry a query already) and when it expires."""
    now = now or datetime.now(UTC)
    expires = int((now + ttl).timestamp())
    joiner = "&" if "?" in path else "?"
    query = f"expires={expires}&signature={signature(purpose, subject, expires)}"
    return f"{path}{joiner}{query}", datetime.fromtimestamp(expires, UTC)


def verify(
    purpose: str,
    subject: str,
    expires: str | None,
    given: str | None,
    *,
    now: datetime | None = None,
) -> datetime:
    """When a valid link expires, or LinkRefused (a forged or altered link, an expired one)."""
    try:
        expires_at = int(expires or "")
    except ValueError:
        raise LinkRefused("Invalid link.") from None
    if not given or not hmac.compare_digest(signature(purpose, subject, expires_at), given):
        raise LinkRefused("Invalid link.")
    now = now or datetime.now(UTC)
    if expires_at < now.timestamp():
        raise LinkRefused("This link has expired: ask for a new one.")
    return datetime.fromtimestamp(expires_at, UTC)
