"""Password hashing (argon2id) and access tokens (JWT): primitives, no database.

Services hash and verify passwords and issue tokens; `app.auth` decodes a request's token
and loads its viewer.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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


def verify_password_now(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()
    try:
        return hasher.verify(password_hash or dummy, password) and bool(password_hash)
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


def issue_token(credential: Credential, *, now: datetime | None = None) -> tuple[str, datetime]:
    settings = get_settings()
    now = now or datetime.now(UTC)
    expires = now + timedelta(minutes=settings.access_token_ttl_minutes)
    claims = {
        "sub": str(credential.id),
        "kind": "agent" if credential.agent_id else "profile",
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        # tokens issued before the last password change stop working
        "pwd": int(credential.password_changed_at.timestamp()),
    }
    return jwt.encode(claims, settings.secret_key, algorithm=JWT_ALGORITHM), expires


def decode_token(token: str) -> dict[str, Any]:
    """The claims of a valid, unexpired token; Unauthenticated otherwise."""
    try:
        return jwt.decode(
            token,
            get_settings().secret_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat", "pwd"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("Your session has expired; log in again.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated("Invalid authentication token.") from exc


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use 'Authorization: Bearer <token>'.")
    return token.strip()
