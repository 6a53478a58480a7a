"""Password resets and invitations: single-use secrets sent by e-mail (issue 15).

A reset or invitation is an `AccountToken` row. Its link token and (for resets) its
8-digit code are derived from the row's id with SECRET_KEY (HMAC-SHA256): the database
keeps only their SHA-256, and the delivery worker derives them again when it writes the
e-mail (`secrets_for`), so no table, event or notification ever holds them. A leaked
database dump opens no account; rotating SECRET_KEY voids every outstanding link.

- `request_password_reset(email)` answers the same, in the same time (a floor of
  RESET_ANSWER_SECONDS), whether or not the address has an account; every request counts
  against the "reset" throttle of the address and the e-mail.
- `reset_password(token | email+code, newPassword)`: the password policy, then the new
  password; the token dies, every session of the account ends, an event is recorded and
  the account is told by e-mail. A code dies after 5 wrong tries.
- Invitations: an account created without a password (agents by an admin, clients the
  firm adds) gets a link to choose one (`accept_invitation`, which logs in);
  `resend_invitation` voids the previous link.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock
from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import AccountToken, Agent, Credential, Profile
from app.models.enums import AccountTokenPurpose, AgentRole, EventType, Locale, UserStatus
from app.security import UNUSABLE_PASSWORD, hash_password, password_stamp, secret_hash, usable
from app.services import attempts, events, search, throttle
from app.services.account_links import code_of, link_token
from app.services.codes import IdentityErrorCode as Code
from app.services.sessions import Origin, origin_payload, owner_of, revoke_all
from app.services.validation import check_name, check_password, normalise_email
from app.settings import get_settings

RESET_ANSWER_SECONDS = 0.35  # every reset request answers after at least this long
MAX_CODE_TRIES = 5


def _owner_name(agent: Agent | None, profile: Profile | None) -> str:
    if agent is not None:
        return agent.name
    return profile.full_name if profile is not None else ""


def _locale(agent: Agent | None, profile: Profile | None) -> str:
    owner = agent or profile
    return str(Locale(owner.locale).value) if owner is not None else Locale.FR.value


async def _owner(credential: Credential) -> tuple[Agent | None, Profile | None]:
    if credential.agent_id is not None:
        return await Agent.get(id=credential.agent_id), None
    return None, await Profile.get(id=credential.profile_id)


async def _issue(
    credential: Credential,
    purpose: AccountTokenPurpose,
    *,
    lifetime: timedelta,
    actor: Viewer | None,
    event: EventType,
    extra: Mapping[str, object] | None = None,
) -> AccountToken:
    """A new token (voiding the account's unused ones of the same purpose) and the event
    whose e-mail carries it; inside the caller's transaction."""
    now = clock.now()
    await AccountToken.filter(
        credential_id=credential.id, purpose=purpose, used_at=None, expires_at__gt=now
    ).update(expires_at=now)
    token_id = uuid.uuid4()
    token = await AccountToken.create(
        id=token_id,
        credential_id=credential.id,
        purpose=purpose,
        token_hash=secret_hash(link_token(token_id, purpose)),
        code_hash=secret_hash(code_of(token_id, purpose))
        if purpose == AccountTokenPurpose.PASSWORD_RESET
        else None,
        expires_at=now + lifetime,
        created_by_id=actor.agent.id if actor is not None and actor.agent else None,
    )
    agent, profile = await _owner(credential)
    kind, owner_id = owner_of(credential)
    await events.record(
        kind,
        owner_id,
        event,
        actor=actor,
        payload={
            "email": credential.email,
            "name": _owner_name(agent, profile),
            "locale": _locale(agent, profile),
            "accountTokenId": str(token_id),
            "purpose": purpose.value,
            "expiresAt": token.expires_at.isoformat(),
            **(extra or {}),
        },
    )
    return token


# --- password reset ------------------------------------------------------------------------


async def request_password_reset(email: str, origin: Origin | None = None) -> None:
    started = time.monotonic()
    try:
        email = normalise_email(email)
        counted = attempts.keys(email, origin)
        await attempts.check("reset", counted)
        await throttle.failed("reset", counted)  # every request counts, known or not
        credential = await Credential.filter(email=email).first()
        if credential is not None:
            async with in_transaction():
                await _issue(
                    credential,
                    AccountTokenPurpose.PASSWORD_RESET,
                    lifetime=timedelta(minutes=get_settings().password_reset_minutes),
                    actor=None,
                    event=EventType.PASSWORD_RESET_REQUESTED,
                    extra=origin_payload(origin),
                )
    finally:  # the same time whatever happened (a refusal included)
        await asyncio.sleep(max(0.0, RESET_ANSWER_SECONDS - (time.monotonic() - started)))


INVALID_TOKEN = DomainError(Code.INVALID_TOKEN, "This link is not valid.", "token")


async def _find(purpose: AccountTokenPurpose, token: str, origin: Origin | None) -> AccountToken:
    """The row of a link's token. Wrong tokens count against the address ("token"
    throttle): a link cannot be guessed, but nobody gets to try millions."""
    address = [f"address:{origin.ip_address}"] if origin and origin.ip_address else []
    await attempts.check("token", address)
    row = (
        await AccountToken.filter(token_hash=secret_hash(token), purpose=purpose)
        .select_for_update()
        .first()
    )
    if row is None:
        await throttle.failed("token", address)
        raise INVALID_TOKEN
    return row


def _usable(row: AccountToken, what: str) -> None:
    if row.used_at is not None:
        raise DomainError(Code.TOKEN_USED, f"This {what} was already used.", "token")
    if row.expires_at <= clock.now():
        raise DomainError(
            Code.TOKEN_EXPIRED, f"This {what} has expired; ask for a new one.", "token"
        )


async def reset_password(
    new_password: str,
    *,
    token: str | None = None,
    email: str | None = None,
    code: str | None = None,
    origin: Origin | None = None,
) -> None:
    """Set a new password with a reset link's token, or the e-mail and its code."""
    purpose = AccountTokenPurpose.PASSWORD_RESET
    if token is None:
        if not email or not code:
            raise DomainError(Code.REQUIRED, "Give the link's token, or the e-mail and code.")
        email = normalise_email(email)
        counted = attempts.keys(email, origin)
        await attempts.check("reset-code", counted)
    wrong_code = False
    async with in_transaction():
        if token is not None:
            row = await _find(purpose, token, origin)
        else:
            credential = await Credential.filter(email=email).first()
            row = None
            if credential is not None:
                row = (
                    await AccountToken.filter(
                        credential_id=credential.id, purpose=purpose, used_at=None
                    )
                    .order_by("-created_at")
                    .select_for_update()
                    .first()
                )
            if row is None or row.code_hash is None or row.expires_at <= clock.now():
                wrong_code = True
            elif not secrets.compare_digest(row.code_hash, secret_hash((code or "").strip())):
                row.failed_attempts += 1
                if row.failed_attempts >= MAX_CODE_TRIES:
                    row.expires_at = clock.now()  # too many guesses: this code is dead
                await row.save(update_fields=["failed_attempts", "expires_at"])
                wrong_code = True
        if not wrong_code:
            assert row is not None
            _usable(row, "link")
            credential = await Credential.filter(id=row.credential_id).select_for_update().get()
            agent, profile = await _owner(credential)
            check_password(
                new_password,
                "newPassword",
                email=credential.email,
                name=_owner_name(agent, profile),
            )
            credential.password_hash = await hash_password(new_password)
            credential.password_changed_at = password_stamp(credential.password_changed_at)
            await credential.save(
                update_fields=["password_hash", "password_changed_at", "updated_at"]
            )
            row.used_at = clock.now()
            await row.save(update_fields=["used_at"])
            await revoke_all(credential, "password-reset", actor=None)
            kind, owner_id = owner_of(credential)
            await events.record(
                kind,
                owner_id,
                EventType.PASSWORD_RESET,
                payload={
                    "email": credential.email,
                    "name": _owner_name(agent, profile),
                    "locale": _locale(agent, profile),
                    **origin_payload(origin),
                },
            )
    if wrong_code:
        assert email is not None
        await throttle.failed("reset-code", attempts.keys(email, origin))
        raise DomainError(Code.INVALID_CODE, "This code is not valid (or has expired).", "code")


# --- invitations ---------------------------------------------------------------------------


def _invitation_lifetime() -> timedelta:
    return timedelta(days=get_settings().invitation_days)


EMAIL_TAKEN = DomainError(Code.EMAIL_TAKEN, "An account with this email already exists.", "email")


async def _invite(
    actor: Viewer,
    owner: Agent | Profile,
    email: str,
    *,
    created: EventType,
    extra: dict[str, object] | None = None,
) -> None:
    """The invited account's credential (no usable password yet), its creation event and
    the invitation; inside the caller's transaction, right after `owner` is created."""
    is_agent = isinstance(owner, Agent)
    kind = "agent" if is_agent else "profile"
    credential = await Credential.create(
        email=email,
        password_hash=UNUSABLE_PASSWORD,
        password_changed_at=clock.now(),
        agent_id=owner.id if is_agent else None,
        profile_id=None if is_agent else owner.id,
    )
    await events.record(
        kind,
        owner.id,
        created,
        actor=actor,
        payload={"email": email, "invited": True, **(extra or {})},
    )
    await _issue(
        credential,
        AccountTokenPurpose.INVITATION,
        lifetime=_invitation_lifetime(),
        actor=actor,
        event=EventType.INVITATION_SENT,
        extra=extra,
    )


async def invite_agent(
    admin: Viewer, *, email: str, name: str, role: AgentRole, locale: Locale
) -> Agent:
    email = normalise_email(email)
    name = check_name(name, "name")
    try:
        async with in_transaction():
            agent = await Agent.create(email=email, name=name, role=role, locale=locale)
            await _invite(
                admin, agent, email, created=EventType.AGENT_CREATED, extra={"role": role.value}
            )
    except IntegrityError:  # a concurrent account with the same e-mail won
        raise EMAIL_TAKEN from None
    return agent


async def invite_client(
    actor: Viewer, *, email: str, full_name: str, locale: Locale = Locale.FR
) -> Profile:
    """A client the firm adds without a payment link (the lifecycle's `openDossier`)."""
    email = normalise_email(email)
    full_name = check_name(full_name, "fullName")
    try:
        async with in_transaction():
            profile = await Profile.create(
                full_name=full_name, status=UserStatus.ACTIVE, locale=locale
            )
            await _invite(actor, profile, email, created=EventType.PROFILE_CREATED)
            await search.index_clients([profile.id])
    except IntegrityError:
        raise EMAIL_TAKEN from None
    return profile


async def client_by_email(email: str, field: str = "email") -> Profile | None:
    """The client whose account `email` is, None when there is none; a staff account's
    e-mail is refused (STAFF_EMAIL): a dossier, a payment or a membership is a client's."""
    credential = await Credential.filter(email=email).only("id", "profile_id").first()
    if credential is None:
        return None
    if credential.profile_id is None:
        raise DomainError(
            "STAFF_EMAIL", "This e-mail belongs to a staff account, not a client.", field
        )
    return await Profile.get(id=credential.profile_id)


async def client_for(
    actor: Viewer, *, email: str, full_name: str, field: str = "email"
) -> tuple[Profile, bool]:
    """The client of `email` (`client_by_email`), or a new one invited to choose a
    password (`invite_client`); and whether it was invited."""
    profile = await client_by_email(email, field)
    if profile is not None:
        return profile, False
    return await invite_client(actor, email=email, full_name=full_name), True


async def resend_invitation(
    actor: Viewer, *, agent_id: uuid.UUID | None = None, profile_id: uuid.UUID | None = None
) -> Credential:
    async with in_transaction():
        query = (
            Credential.filter(agent_id=agent_id)
            if agent_id
            else Credential.filter(profile_id=profile_id)
        )
        credential = await query.select_for_update().first()
        if credential is None:
            raise NotFound("No such account.")
        if profile_id and await Profile.filter(id=profile_id, erased_at__isnull=False).exists():
            raise DomainError(
                Code.ACCOUNT_ERASED, "This client was erased: there is no account to invite."
            )
        if usable(credential.password_hash):
            raise DomainError(
                Code.ALREADY_ACCEPTED, "This account already has its password; nothing to resend."
            )
        await _issue(
            credential,
            AccountTokenPurpose.INVITATION,
            lifetime=_invitation_lifetime(),
            actor=actor,
            event=EventType.INVITATION_SENT,
            extra={"resent": True},
        )
    return credential


async def accept_invitation(token: str, password: str, origin: Origin | None = None) -> Credential:
    """Choose the password of an invited account; the caller then logs it in."""
    async with in_transaction():
        row = await _find(AccountTokenPurpose.INVITATION, token, origin)
        _usable(row, "invitation")
        credential = await Credential.filter(id=row.credential_id).select_for_update().get()
        if usable(credential.password_hash):
            raise DomainError(
                Code.ALREADY_ACCEPTED, "This invitation was already accepted.", "token"
            )
        agent, profile = await _owner(credential)
        if agent is not None and not agent.active:
            raise DomainError(Code.ACCOUNT_DISABLED, "This account is deactivated.")
        check_password(
            password,
            "password",
            email=credential.email,
            name=_owner_name(agent, profile),
        )
        credential.password_hash = await hash_password(password)
        credential.password_changed_at = password_stamp(credential.password_changed_at)
        await credential.save(update_fields=["password_hash", "password_changed_at", "updated_at"])
        row.used_at = clock.now()
        await row.save(update_fields=["used_at"])
        kind, owner_id = owner_of(credential)
        await events.record(
            kind, owner_id, EventType.INVITATION_ACCEPTED, payload=origin_payload(origin)
        )
    return credential
