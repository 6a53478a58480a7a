"""Passwords (argon2id), JWTs and turning a token into a viewer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise import connections
from tortoise.models import Model

from app.db import aliased_columns, hydrate
from app.errors import Unauthenticated
from app.models import Agent, Credential, Profile
from app.models.enums import ActorType, Locale
from app.settings import get_settings

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


def hash_password(password: str) -> str:
    return _hasher()[0].hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()
    try:
        return hasher.verify(password_hash or dummy, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher()[0].check_needs_rehash(password_hash)


@dataclass(frozen=True)
class Viewer:
    credential_id: uuid.UUID
    email: str
    profile: Profile | None = None
    agent: Agent | None = None

    @property
    def kind(self) -> Literal["profile", "agent"]:
        return "agent" if self.agent else "profile"

    @property
    def is_agent(self) -> bool:
        return self.agent is not None

    @property
    def is_admin(self) -> bool:
        return self.agent is not None and self.agent.is_admin

    @property
    def is_client(self) -> bool:
        return self.profile is not None

    @property
    def actor_type(self) -> ActorType:
        return ActorType.AGENT if self.agent else ActorType.USER

    @property
    def account(self) -> Agent | Profile:
        """The agent, else the profile: a viewer is always one of the two."""
        if self.agent is not None:
            return self.agent
        if self.profile is None:  # pragma: no cover - never built without one
            raise AssertionError("a viewer with neither a profile nor an agent")
        return self.profile

    @property
    def actor_id(self) -> uuid.UUID:
        return self.account.id

    @property
    def locale(self) -> Locale:
        owner = self.agent or self.profile
        return Locale(owner.locale) if owner else Locale.FR


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


def _decode(token: str) -> dict:
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


# Every authenticated request reads its viewer: the statement is written once per SQL
# dialect rather than built by the query builder each time (0.86 -> ~0.2 ms of CPU).
_VIEWER_JOINS: tuple[tuple[str, type[Model]], ...] = (
    ("c", Credential),
    ("p", Profile),
    ("a", Agent),
)


@lru_cache(maxsize=4)
def _viewer_sql(dialect: str) -> str:
    columns = ", ".join(
        column for alias, model in _VIEWER_JOINS for column in aliased_columns(alias, model)
    )
    mark = "$1" if dialect == "postgres" else "?"
    return (
        f'SELECT {columns} FROM "{Credential._meta.db_table}" AS "c" '
        f'LEFT JOIN "{Profile._meta.db_table}" AS "p" ON "p"."id" = "c"."profile_id" '
        f'LEFT JOIN "{Agent._meta.db_table}" AS "a" ON "a"."id" = "c"."agent_id" '
        f'WHERE "c"."id" = {mark}'
    )


async def viewer_from_token(token: str) -> Viewer:
    """One query: the credential joined with its profile or agent."""
    claims = _decode(token)
    try:
        credential_id = uuid.UUID(claims["sub"])
    except (ValueError, TypeError) as exc:
        raise Unauthenticated("Invalid authentication token.") from exc
    connection = connections.get("default")
    key = Credential._meta.fields_map["id"].to_db_value(credential_id, Credential)
    rows = await connection.execute_query_dict(_viewer_sql(connection.capabilities.dialect), [key])
    credential = hydrate(Credential, "c", rows[0]) if rows else None
    if credential is None:
        raise Unauthenticated("Invalid authentication token.")
    if int(credential.password_changed_at.timestamp()) > int(claims["pwd"]):
        raise Unauthenticated("Your password changed; log in again.")
    agent = hydrate(Agent, "a", rows[0])
    profile = hydrate(Profile, "p", rows[0])
    if agent is not None and not agent.active:
        raise Unauthenticated("This account is deactivated.")
    if agent is None and profile is None:
        raise Unauthenticated("Invalid authentication token.")
    return Viewer(credential_id=credential.id, email=credential.email, profile=profile, agent=agent)
