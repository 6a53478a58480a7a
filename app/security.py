"""Password hashing (argon2id) and access tokens (JWT): primitives, no database.

Services hash and verify passwords and issue tokens; `app.auth` decodes a request's token
and loads its viewer.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app import clock
from app.errors import Unauthenticated
from app.settings import get_settings

if TYPE_CHECKING:
    from app.models import Credential

JWT_ALGORITHM = "HS256"


@lru_cache
def _hasher() -> tuple[PasswordHasher, str]:
    """argon2id with the configured cost, and a hash to verify against when an email is
    unknown, so a wrong email costs as long as a wrong password."""
    settings = get_settings()
    hasher = PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
    )
    return hasher, hasher.hash("not-a-real-password-only-for-timing")


def hash_password_now(password: str) -> str:
    """Hash in this thread: for scripts (the demo seed), never on the event loop."""
    return _hasher()[0].hash(password)


UNUSABLE_PASSWORD = "!"  # an invited account that has not chosen its password yet


def usable(password_hash: str | None) -> bool:
    return bool(password_hash) and password_hash != UNUSABLE_PASSWORD


def verify_password_now(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()
    real = usable(password_hash)
    try:
        # an unknown account, or one without a password, costs a real verification too
        return hasher.verify((password_hash or dummy) if real else dummy, password) and real
    except (VerificationError, InvalidHashError):
        return False


@lru_cache
def _pool() -> ThreadPoolExecutor:
    """The bounded pool argon2 runs in (PASSWORD_HASH_WORKERS threads per process): a
    hash takes ~180 ms of CPU at the production cost, and on the event loop a flood of
    logins for unknown e-mails would freeze every request and live update."""
    workers = get_settings().password_hash_workers
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password-hash")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool(), hash_password_now, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; an unknown account (None) is verified against a
    dummy hash, so it costs what a known one costs."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), verify_password_now, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher()[0].check_needs_rehash(password_hash)


def password_stamp(previous: datetime) -> datetime:
    """The `password_changed_at` of a new password: now, truncated to the second (tokens
    carry whole seconds), and at least a second after `previous`, so that tokens of the
    old password fail even when issued in the same second as the change."""
    return max(
        clock.now().replace(microsecond=0),
        previous.replace(microsecond=0) + timedelta(seconds=1),
    )


def secret_hash(secret: str) -> str:
    """How refresh tokens, reset and invitation tokens and codes are kept: SHA-256 (they
    are long random secrets, or short codes that die after a few wrong tries, so a fast
    hash suffices; argon2 is for passwords people choose)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    credential: Credential,
    session_id: uuid.UUID,
    *,
    now: datetime | None = None,
    ttl: timedelta | None = None,
) -> tuple[str, datetime]:
    """An access token of one session (`app.services.sessions` opens sessions); `ttl`
    overrides ACCESS_TOKEN_TTL_MINUTES (the bench's long runs)."""
    settings = get_settings()
    now = now or clock.now()
    expires = now + (ttl or timedelta(minutes=settings.access_token_ttl_minutes))
    claims = {
        "typ": "access",
        "sub": str(credential.id),
        "sid": str(session_id),
        "kind": "agent" if credential.agent_id else "profile",
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        # tokens issued before the last password change stop working
        "pwd": int(credential.password_changed_at.timestamp()),
    }
    return jwt.encode(claims, settings.secret_key, algorithm=JWT_ALGORITHM), expires


def issue_challenge(credential: Credential, *, minutes: int = 5) -> tuple[str, datetime]:
    """A login's second half for a two-factor account: proves the password was right,
    opens nothing by itself (never accepted as an access token)."""
    now = clock.now()
    expires = now + timedelta(minutes=minutes)
    claims = {
        "typ": "two-factor",
        "sub": str(credential.id),
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "pwd": int(credential.password_changed_at.timestamp()),
    }
    return jwt.encode(claims, get_settings().secret_key, algorithm=JWT_ALGORITHM), expires


def _decode(token: str, typ: str, required: list[str]) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            get_settings().secret_key,
            algorithms=[JWT_ALGORITHM],
            # expiry is checked against app.clock below (tests move that clock)
            options={
                "require": ["typ", "sub", "exp", "iat", *required],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated("Invalid authentication token.") from exc
    if claims["typ"] != typ:
        raise Unauthenticated("Invalid authentication token.")
    if int(claims["exp"]) <= int(clock.now().timestamp()):
        raise Unauthenticated("Your session has expired; log in again.")
    return claims


def decode_token(token: str) -> dict[str, Any]:
    """The claims of a valid, unexpired access token; Unauthenticated otherwise."""
    return _decode(token, "access", ["sid", "pwd"])


def decode_challenge(token: str) -> dict[str, Any]:
    return _decode(token, "two-factor", ["pwd"])


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use 'Authorization: Bearer <token>'.")
    return token.strip()
