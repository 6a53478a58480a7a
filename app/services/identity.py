"""Accounts: login, agents, own profile, passwords, the first admin."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import Agent, Credential, Profile
from app.models.enums import AgentRole, EventType, Locale
from app.security import (
    hash_password,
    issue_token,
    needs_rehash,
    password_stamp,
    verify_password,
)
from app.services import attempts, events, search, two_factor
from app.services.sessions import Origin, Tokens, revoke_all, start_session
from app.services.two_factor import Challenge
from app.services.validation import check_name, check_password, normalise_email, normalise_phone

INVALID_CREDENTIALS = DomainError("INVALID_CREDENTIALS", "Wrong email or password.")


LoginResult = Tokens | Challenge


async def login(email: str, password: str, origin: Origin | None = None) -> LoginResult:
    """Tokens of a new session, or (an account with two-factor) the challenge its code
    answers (`two_factor.complete_login`)."""
    try:
        email = normalise_email(email)
    except DomainError:
        raise INVALID_CREDENTIALS from None
    counted = attempts.keys(email, origin)
    await attempts.check("login", counted)
    credential = await Credential.filter(email=email).select_related("agent").first()
    if not await verify_password(credential.password_hash if credential else None, password):
        await attempts.failed(
            "login", counted, credential=credential, origin=origin, reason="wrong-password"
        )
        raise INVALID_CREDENTIALS
    assert credential is not None
    agent = credential.agent if credential.agent_id is not None else None  # select_related
    if agent is not None and not agent.active:
        raise DomainError("ACCOUNT_DISABLED", "This account is deactivated.")
    await attempts.succeeded("login", counted)
    if needs_rehash(credential.password_hash):
        credential.password_hash = await hash_password(password)
        await credential.save(update_fields=["password_hash", "updated_at"])
    if two_factor.applies_to(credential, agent):
        return await two_factor.challenge(credential)
    return await start_session(credential, origin)


async def _email_free(email: str) -> None:
    if await Credential.filter(email=email).exists():
        raise DomainError("EMAIL_TAKEN", "An account with this email already exists.", "email")


async def create_agent(
    actor: Viewer | None,
    *,
    email: str,
    name: str,
    password: str,
    role: AgentRole = AgentRole.AGENT,
    locale: Locale = Locale.FR,
) -> Agent:
    email = normalise_email(email)
    name = check_name(name, "name")
    check_password(password, email=email, name=name)
    await _email_free(email)
    password_hash = await hash_password(password)
    try:
        async with in_transaction():
            agent = await Agent.create(email=email, name=name, role=role, locale=locale)
            await Credential.create(
                email=email,
                password_hash=password_hash,
                password_changed_at=datetime.now(UTC),
                agent=agent,
            )
            await events.record(
                "agent",
                agent.id,
                EventType.AGENT_CREATED,
                actor=actor,
                payload={"email": email, "role": role.value},
            )
    except IntegrityError:  # a concurrent creation with the same email won
        raise DomainError(
            "EMAIL_TAKEN", "An account with this email already exists.", "email"
        ) from None
    return agent


async def update_agent(
    actor: Viewer,
    agent_id: uuid.UUID,
    *,
    name: str | None = None,
    role: AgentRole | None = None,
    active: bool | None = None,
    locale: Locale | None = None,
) -> Agent:
    async with in_transaction():
        agent = await Agent.filter(id=agent_id).select_for_update().first()
        if agent is None:
            raise NotFound("No such agent.")
        is_self = actor.agent is not None and actor.agent.id == agent.id
        if is_self and (active is False or (role is not None and role != AgentRole.ADMIN)):
            raise DomainError(
                "CANNOT_MODIFY_SELF",
                "You cannot deactivate or demote yourself; ask another administrator.",
                "active" if active is False else "role",
            )
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = check_name(name, "name")
        if role is not None:
            changes["role"] = role
        if active is not None:
            changes["active"] = active
        if locale is not None:
            changes["locale"] = locale
        for key, value in changes.items():
            setattr(agent, key, value)
        if changes:
            await agent.save()
            await events.record(
                "agent",
                agent.id,
                EventType.AGENT_UPDATED,
                actor=actor,
                payload={k: str(v) for k, v in changes.items()},
            )
    return agent


async def update_my_profile(
    viewer: Viewer,
    *,
    full_name: str | None = None,
    phone: str | None = None,
    locale: Locale | None = None,
) -> Profile | Agent:
    changes: dict[str, object] = {}
    if full_name is not None:
        changes["name" if viewer.is_agent else "full_name"] = check_name(full_name, "fullName")
    if phone is not None:
        if viewer.is_agent:
            raise DomainError("NOT_APPLICABLE", "Agents have no phone number here.", "phone")
        # an empty phone removes it; anything else must be a real number, stored as E.164
        changes["phone"] = normalise_phone(phone, "phone") if phone.strip() else None
    if locale is not None:
        changes["locale"] = locale
    owner: Profile | Agent = viewer.account
    async with in_transaction():
        owner = await type(owner).filter(id=owner.id).select_for_update().get()
        for key, value in changes.items():
            setattr(owner, key, value)
        if changes:
            await owner.save()
            if not viewer.is_agent:
                await search.index_clients([owner.id])
            kind = "agent" if viewer.is_agent else "profile"
            event = EventType.AGENT_UPDATED if viewer.is_agent else EventType.PROFILE_UPDATED
            await events.record(
                kind, owner.id, event, actor=viewer, payload={k: str(v) for k, v in changes.items()}
            )
    return owner


async def change_password(viewer: Viewer, current: str, new: str) -> tuple[str, datetime]:
    """Returns a new access token for the viewer's session; every other session ends."""
    owner = viewer.agent or viewer.profile
    name = owner.name if isinstance(owner, Agent) else owner.full_name if owner else None
    async with in_transaction():
        credential = await Credential.filter(id=viewer.credential_id).select_for_update().get()
        check_password(new, "newPassword", email=credential.email, name=name)
        if not await verify_password(credential.password_hash, current):
            raise DomainError(
                "INVALID_CREDENTIALS", "The current password is wrong.", "currentPassword"
            )
        if current == new:
            raise DomainError(
                "SAME_PASSWORD", "Choose a password different from the current one.", "newPassword"
            )
        credential.password_hash = await hash_password(new)
        credential.password_changed_at = password_stamp(credential.password_changed_at)
        await credential.save()
        owner_kind = "agent" if viewer.is_agent else "profile"
        await events.record(owner_kind, viewer.actor_id, EventType.PASSWORD_CHANGED, actor=viewer)
        await revoke_all(credential, "password-changed", actor=viewer, keep=viewer.session_id)
    assert viewer.session_id is not None
    return issue_token(credential, viewer.session_id)


async def ensure_admin(
    email: str, password: str, name: str = "Administrator"
) -> tuple[Agent, bool]:
    """Create the admin, or make the existing account with that email an active admin.

    Returns the agent and whether it was created.
    """
    email = normalise_email(email)
    credential = await Credential.filter(email=email).select_related("agent").first()
    if credential is None:
        return await create_agent(
            None, email=email, name=name, password=password, role=AgentRole.ADMIN
        ), True
    agent = credential.agent if credential.agent_id is not None else None  # select_related
    if agent is None:
        raise DomainError("EMAIL_TAKEN", "This email belongs to a client account.", "email")
    agent.role, agent.active = AgentRole.ADMIN, True
    await agent.save()
    return agent, False
