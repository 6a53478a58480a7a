"""The secrets of a password reset or an invitation (`AccountToken`), derived from the
row's id with SECRET_KEY (HMAC-SHA256): the link's token and the 8-digit code. The
database keeps only their SHA-256 (app.services.recovery); the delivery worker derives
them when it writes the e-mail (`secrets_for`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from app.models.enums import AccountTokenPurpose
from app.settings import get_settings

PATHS = {
    AccountTokenPurpose.PASSWORD_RESET: "/reset-password",
    AccountTokenPurpose.INVITATION: "/accept-invitation",
}


def _derive(token_id: uuid.UUID, purpose: str, what: str) -> bytes:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"{what}:{purpose}:{token_id}".encode(), hashlib.sha256).digest()


def link_token(token_id: uuid.UUID, purpose: str) -> str:
    mac = base64.urlsafe_b64encode(_derive(token_id, purpose, "link")).rstrip(b"=").decode()
    return f"{token_id.hex}.{mac}"


def code_of(token_id: uuid.UUID, purpose: str) -> str:
    number = int.from_bytes(_derive(token_id, purpose, "code")[:8], "big") % 10**8
    return f"{number:08d}"


def secrets_for(token_id: str, purpose: str) -> tuple[str, str]:
    """The link and the code of an account token, for the e-mail that carries them."""
    row_id = uuid.UUID(token_id)
    token = link_token(row_id, purpose)
    url = f"{get_settings().public_app_url.rstrip('/')}{PATHS[AccountTokenPurpose(purpose)]}"
    return f"{url}?token={token}", code_of(row_id, purpose)
