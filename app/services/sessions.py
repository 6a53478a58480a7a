"""Sessions: one per login, each with a rotating refresh token (issue 15).

`login` (app.services.identity) opens a session and hands out a short access token (JWT,
ACCESS_TOKEN_TTL_MINUTES) and an opaque refresh token `<session id>.<secret>`, of which
only the SHA-256 is kept. `refresh` swaps a refresh token for a new pair; the one
presented dies. Presenting a dead one again means two parties hold the session's token
(a stolen copy used first, or second): the whole session is revoked (OAuth 2.0 Security
BCP, refresh token rotation with reuse detection). Two refreshes racing with the same
token from one app look the same and end the session too: an app refreshes once at a time.

Every access token names its session and `app.auth` reads the session with the
credential in the request's one query, so revoking (`logout`, `revokeSession`, a
password change or reset) stops HTTP access at once, and running subscriptions at their
next re-check (SUBSCRIPTION_RECHECK_SECONDS).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from app import clock
from app.domain.viewer import Viewer
from app.errors import DomainError
from app.models import AccountSession, AccountToken, Credential
from app.models.enums import EventType
from app.security import issue_token, secret_hash
from app.services import events
from app.services.codes import IdentityErrorCode as Code
from app.settings import get_settings

MAX_USER_AGENT = 512


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as the session list shows it."""

    ip_address: str | None = None
    user_agent: str | None = None


@dataclass
class Tokens:
    access_token: str
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    session: AccountSession
    credential: Credential


def owner_of(credential: Credential) -> tuple[str, uuid.UUID]:
    """The account a credential belongs to, as events name it (entity type and id)."""
    if credential.agent_id is not None:
        return "agent", credential.agent_id
    assert credential.profile_id is not None
    return "profile", credential.profile_id


def _new_secret(session_id: uuid.UUID) -> str:
    return f"{session_id.hex}.{secrets.token_urlsafe(32)}"


def _session_id_of(refresh_token: str) -> uuid.UUID | None:
    head, dot, secret = refresh_token.partition(".")
    if not dot or not secret or len(refresh_token) > 200:
        return None
    try:
        return uuid.UUID(hex=head)
    except ValueError:
        return None


def _tokens(credential: Credential, session: AccountSession, refresh_token: str) -> Tokens:
    access, expires = issue_token(credential, session.id)
    return Tokens(access, expires, refresh_token, session.expires_at, session, credential)


async def open_session(credential: Credential, origin: Origin | None = None) -> Tokens:
    """A new session for `credential` (its password, and code when required, checked)."""
    settings = get_settings()
    origin = origin or Origin()
    now = clock.now()
    session_id = uuid.uuid4()
    refresh_token = _new_secret(session_id)
    ends = now + timedelta(days=settings.session_max_days)
    session = await AccountSession.create(
        id=session_id,
        credential_id=credential.id,
        refresh_token_hash=secret_hash(refresh_token),
        last_used_at=now,
        expires_at=min(ends, now + timedelta(days=settings.refresh_token_ttl_days)),
        ends_at=ends,
        ip_address=origin.ip_address,
        user_agent=(origin.user_agent or "")[:MAX_USER_AGENT] or None,
    )
    return _tokens(credential, session, refresh_token)


INVALID_REFRESH = DomainError(
    Code.INVALID_REFRESH_TOKEN, "This refresh token is not valid; log in again.", "refreshToken"
)


async def refresh(refresh_token: str, origin: Origin | None = None) -> Tokens:
    """A new access token and refresh token for the session `refresh_token` belongs to."""
    settings = get_settings()
    origin = origin or Origin()
    session_id = _session_id_of(refresh_token)
    if session_id is None:
        raise INVALID_REFRESH
    now = clock.now()
    reused = False
    async with in_transaction():
        session = await AccountSession.filter(id=session_id).select_for_update().first()
        if session is None:
            raise INVALID_REFRESH
        if session.revoked_at is not None:
            raise DomainError(
                Code.SESSION_ENDED, "This session has ended; log in again.", "refreshToken"
            )
        if not secrets.compare_digest(session.refresh_token_hash, secret_hash(refresh_token)):
            # An old token of a live session: someone else holds (or held) this session.
            await _revoke(session, "refresh-token-reused", now, actor=None)
            reused = True
        elif min(session.expires_at, session.ends_at) <= now:
            raise DomainError(
                Code.SESSION_ENDED, "This session has expired; log in again.", "refreshToken"
            )
        else:
            credential = (
                await Credential.filter(id=session.credential_id).select_related("agent").get()
            )
            agent = credential.agent if credential.agent_id is not None else None
            if agent is not None and not agent.active:
                raise DomainError(Code.ACCOUNT_DISABLED, "This account is deactivated.")
            new_token = _new_secret(session.id)
            session.refresh_token_hash = secret_hash(new_token)
            session.last_used_at = now
            session.expires_at = min(
                session.ends_at, now + timedelta(days=settings.refresh_token_ttl_days)
            )
            if origin.ip_address:
                session.ip_address = origin.ip_address
            if origin.user_agent:
                session.user_agent = origin.user_agent[:MAX_USER_AGENT]
            await session.save(
                update_fields=[
                    "refresh_token_hash",
                    "last_used_at",
                    "expires_at",
                    "ip_address",
                    "user_agent",
                    "updated_at",
                ]
            )
    if reused:  # committed: the session stays revoked
        raise DomainError(
            Code.REFRESH_TOKEN_REUSED,
            "This refresh token was already used: the session is ended for safety; log in again.",
            "refreshToken",
        )
    return _tokens(credential, session, new_token)


async def _revoke(
    session: AccountSession, reason: str, now: datetime, *, actor: Viewer | None
) -> None:
    session.revoked_at, session.revoked_reason = now, reason
    session.expires_at = min(session.expires_at, now)
    await session.save(update_fields=["revoked_at", "revoked_reason", "expires_at", "updated_at"])
    credential = await Credential.get(id=session.credential_id)
    kind, owner_id = owner_of(credential)
    await events.record(
        kind,
        owner_id,
        EventType.SESSION_REVOKED,
        actor=actor,
        payload={"sessionId": str(session.id), "reason": reason},
    )


async def revoke(viewer: Viewer, session_id: uuid.UUID, reason: str = "revoked") -> bool:
    """End one of the viewer's own sessions; False when it is not theirs or already over."""
    async with in_transaction():
        session = (
            await AccountSession.filter(
                id=session_id, credential_id=viewer.credential_id, revoked_at=None
            )
            .select_for_update()
            .first()
        )
        if session is None:
            return False
        await _revoke(session, reason, clock.now(), actor=viewer)
    return True


async def revoke_all(
    credential: Credential,
    reason: str,
    *,
    actor: Viewer | None,
    keep: uuid.UUID | None = None,
) -> int:
    """End every live session of the account (but `keep`); call inside the change's
    transaction. One event for the lot."""
    now = clock.now()
    query = AccountSession.filter(credential_id=credential.id, revoked_at=None)
    if keep is not None:
        query = query.exclude(id=keep)
    ended = await query.update(
        revoked_at=now, revoked_reason=reason, expires_at=now, updated_at=now
    )
    if ended:
        kind, owner_id = owner_of(credential)
        await events.record(
            kind,
            owner_id,
            EventType.SESSION_REVOKED,
            actor=actor,
            payload={"sessions": ended, "reason": reason},
        )
    return ended


def origin_payload(origin: Origin | None) -> dict[str, str]:
    """The origin as an event payload records it (the account audit trail)."""
    if origin is None:
        return {}
    return {
        key: value
        for key, value in (("ipAddress", origin.ip_address), ("userAgent", origin.user_agent))
        if value
    }


async def start_session(
    credential: Credential, origin: Origin | None, *, method: str = "password"
) -> Tokens:
    """Open the session of a login that passed every check, with its audit event."""
    async with in_transaction():
        tokens = await open_session(credential, origin)
        kind, owner_id = owner_of(credential)
        await events.record(
            kind,
            owner_id,
            EventType.LOGIN_SUCCEEDED,
            payload={
                "sessionId": str(tokens.session.id),
                "method": method,
                **origin_payload(origin),
            },
        )
    return tokens


ENDED_KEPT_DAYS = 30  # an ended session or a spent token is kept this long, then deleted
PURGE_BATCH = 1000


async def purge_ended(now: datetime | None = None, *, batch: int = PURGE_BATCH) -> int:
    """The worker's housekeeping: delete sessions and account tokens over for
    ENDED_KEPT_DAYS (the audit trail is in the events), `batch` rows a statement through
    their expiry indexes. Returns how many went."""
    horizon = (now or clock.now()) - timedelta(days=ENDED_KEPT_DAYS)
    gone = 0
    for model in (AccountSession, AccountToken):
        while True:
            ids = (
                await model.filter(expires_at__lt=horizon).limit(batch).values_list("id", flat=True)
            )
            if not ids:
                break
            gone += await model.filter(id__in=list(ids)).delete()
            if len(ids) < batch:
                break
    return gone
