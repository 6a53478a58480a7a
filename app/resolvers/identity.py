from __future__ import annotations

import strawberry
from tortoise.transactions import in_transaction

from app import clock
from app import models as m
from app.context import Info
from app.errors import DomainError, NotFound
from app.models import enums as m_enums
from app.schema.common import Connection, paginate, parse_id, row_as, user_errors
from app.schema.identity import (
    AcceptInvitationInput,
    AgentPayload,
    AgentType,
    ChangePasswordInput,
    ChangePasswordPayload,
    CompleteTwoFactorLoginInput,
    ConfirmTwoFactorInput,
    CreateAgentInput,
    DisableTwoFactorInput,
    DonePayload,
    IdentityErrorCode,
    IdentityUserError,
    InviteClientInput,
    LoginInput,
    LoginPayload,
    LogoutEverywherePayload,
    ProfilePayload,
    ProfileType,
    RecoveryCodesPayload,
    RefreshSessionInput,
    RequestPasswordResetInput,
    ResendInvitationInput,
    ResetPasswordInput,
    SessionType,
    TwoFactorChallenge,
    TwoFactorEnrolmentPayload,
    UpdateAgentInput,
    UpdateMyProfileInput,
    UpdateMyProfilePayload,
    Viewer,
)
from app.schema.notifications import EventType_
from app.services import attempts, identity, recovery, sessions, two_factor
from app.services.sessions import Tokens

ACCOUNT_EVENT_TYPES = [
    m_enums.EventType.LOGIN_SUCCEEDED,
    m_enums.EventType.LOGIN_FAILED,
    m_enums.EventType.SESSION_REVOKED,
    m_enums.EventType.PASSWORD_RESET_REQUESTED,
    m_enums.EventType.PASSWORD_RESET,
    m_enums.EventType.PASSWORD_CHANGED,
    m_enums.EventType.TWO_FACTOR_ENABLED,
    m_enums.EventType.TWO_FACTOR_DISABLED,
    m_enums.EventType.RECOVERY_CODE_USED,
    m_enums.EventType.INVITATION_SENT,
    m_enums.EventType.INVITATION_ACCEPTED,
]


def _errors(error: DomainError) -> list[IdentityUserError]:
    found = user_errors(error, IdentityUserError, IdentityErrorCode)
    if isinstance(error, attempts.RateLimited):
        for item in found:
            item.retry_after = error.retry_after
    return found


async def _logged_in(info: Info, tokens: Tokens, **extra: object) -> LoginPayload:
    info.context.forget_viewer()
    info.context.opened_session_id = tokens.session.id
    credential = tokens.credential
    owner = await (
        m.Agent.get(id=credential.agent_id)
        if credential.agent_id
        else m.Profile.get(id=credential.profile_id)
    )
    return LoginPayload(
        token=tokens.access_token,
        expires_at=tokens.expires_at,
        refresh_token=tokens.refresh_token,
        refresh_expires_at=tokens.refresh_expires_at,
        session=row_as(SessionType, tokens.session),
        viewer=_viewer(owner),
        **extra,  # type: ignore[arg-type]
    )


async def _login_answer(info: Info, result: identity.LoginResult) -> LoginPayload:
    if isinstance(result, two_factor.Challenge):
        return LoginPayload(
            two_factor=TwoFactorChallenge(
                token=result.token,
                expires_at=result.expires_at,
                enrolment_uri=result.enrolment_uri,
            )
        )
    return await _logged_in(info, result)


def _viewer(account: m.Agent | m.Profile) -> AgentType | ProfileType:
    """The account as the Viewer union (each member's is_type_of recognises its row)."""
    if isinstance(account, m.Agent):
        return row_as(AgentType, account)
    return row_as(ProfileType, account)


def _value(maybe):  # strawberry.Maybe -> the value, or None when absent
    return maybe.value if maybe is not None else None


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The logged-in client or agent.")
    async def me(self, info: Info) -> Viewer:
        viewer = await info.context.require_viewer()
        return _viewer(viewer.account)

    @strawberry.field(description="Agents of the firm (admins only).")
    async def agents(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        include_inactive: bool = False,
    ) -> Connection[AgentType]:
        await info.context.require_admin()
        queryset = m.Agent.all() if include_inactive else m.Agent.filter(active=True)
        return await paginate(
            queryset, first=first, after=after, last=last, before=before, order=("email", "id")
        )

    @strawberry.field(description="Your sessions (logins still open), newest first.")
    async def my_sessions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[SessionType]:
        viewer = await info.context.require_viewer()
        queryset = m.AccountSession.filter(
            credential_id=viewer.credential_id, revoked_at=None, expires_at__gt=clock.now()
        )
        return await paginate(
            queryset,
            first=first,
            after=after,
            last=last,
            before=before,
            order=("-created_at", "-id"),
        )

    @strawberry.field(
        description="An account's security trail (logins, resets, sessions, two-factor, "
        "invitations), newest first (admins only)."
    )
    async def account_events(
        self,
        info: Info,
        account_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[EventType_]:
        await info.context.require_admin()
        owner_id = parse_id(account_id, what="account")
        if not (
            await m.Agent.filter(id=owner_id).exists()
            or await m.Profile.filter(id=owner_id).exists()
        ):
            raise NotFound("No such account.")
        queryset = m.Event.filter(
            entity_type__in=("agent", "profile"),
            entity_id=owner_id,
            event_type__in=ACCOUNT_EVENT_TYPES,
        )
        return await paginate(
            queryset,
            first=first,
            after=after,
            last=last,
            before=before,
            order=("-created_at", "-id"),
        )


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(
        description="Exchange an email and password for an access token and a refresh token "
        "(a new session), or a two-factor challenge when a code is due."
    )
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        try:
            result = await identity.login(input.email, input.password, info.context.origin())
        except DomainError as error:
            return LoginPayload(user_errors=_errors(error))
        return await _login_answer(info, result)

    @strawberry.mutation(description="The second half of a login: the challenge and a code.")
    async def complete_two_factor_login(
        self, info: Info, input: CompleteTwoFactorLoginInput
    ) -> LoginPayload:
        try:
            done = await two_factor.complete_login(
                input.challenge, input.code, info.context.origin()
            )
        except DomainError as error:
            return LoginPayload(user_errors=_errors(error))
        return await _logged_in(info, done.tokens, recovery_codes=done.recovery_codes)

    @strawberry.mutation(
        description="Trade a refresh token for a new access token and refresh token (the one "
        "sent dies; sending it again ends the session)."
    )
    async def refresh_session(self, info: Info, input: RefreshSessionInput) -> LoginPayload:
        try:
            tokens = await sessions.refresh(input.refresh_token, info.context.origin())
        except DomainError as error:
            return LoginPayload(user_errors=_errors(error))
        return await _logged_in(info, tokens)

    @strawberry.mutation(description="End this session (its access and refresh tokens).")
    async def logout(self, info: Info) -> DonePayload:
        viewer = await info.context.require_viewer()
        assert viewer.session_id is not None
        ended = await sessions.revoke(viewer, viewer.session_id, "logout")
        return DonePayload(ok=ended)

    @strawberry.mutation(description="End every session of your account, this one included.")
    async def logout_everywhere(self, info: Info) -> LogoutEverywherePayload:
        viewer = await info.context.require_viewer()
        credential = await m.Credential.get(id=viewer.credential_id)
        async with in_transaction():
            ended = await sessions.revoke_all(credential, "logout-everywhere", actor=viewer)
        return LogoutEverywherePayload(ended=ended)

    @strawberry.mutation(description="End one of your sessions (see mySessions).")
    async def revoke_session(self, info: Info, id: strawberry.ID) -> DonePayload:
        viewer = await info.context.require_viewer()
        if not await sessions.revoke(viewer, parse_id(id, what="session")):
            raise NotFound("No such session.")
        return DonePayload(ok=True)

    @strawberry.mutation(
        description="E-mail a link and a code to choose a new password. The answer is the "
        "same whether or not the address has an account."
    )
    async def request_password_reset(
        self, info: Info, input: RequestPasswordResetInput
    ) -> DonePayload:
        try:
            await recovery.request_password_reset(input.email, info.context.origin())
        except DomainError as error:
            return DonePayload(user_errors=_errors(error))
        return DonePayload(ok=True)

    @strawberry.mutation(
        description="Choose a new password with the e-mail's link (token) or its code; every "
        "session of the account ends. Then log in."
    )
    async def reset_password(self, info: Info, input: ResetPasswordInput) -> DonePayload:
        try:
            await recovery.reset_password(
                input.new_password,
                token=input.token,
                email=input.email,
                code=input.code,
                origin=info.context.origin(),
            )
        except DomainError as error:
            return DonePayload(user_errors=_errors(error))
        return DonePayload(ok=True)

    @strawberry.mutation(
        description="Add a client without a payment link: they get an e-mail to choose a "
        "password (agents only)."
    )
    async def invite_client(self, info: Info, input: InviteClientInput) -> ProfilePayload:
        agent = await info.context.require_agent()
        try:
            profile = await recovery.invite_client(
                agent, email=input.email, full_name=input.full_name, locale=input.locale
            )
        except DomainError as error:
            return ProfilePayload(user_errors=_errors(error))
        return ProfilePayload(profile=row_as(ProfileType, profile))

    @strawberry.mutation(
        description="Send an invited account a new link (the previous one stops working): "
        "admins for agents, agents for clients."
    )
    async def resend_invitation(self, info: Info, input: ResendInvitationInput) -> DonePayload:
        actor = await info.context.require_agent()
        account_id = parse_id(input.account_id, what="account")
        is_agent = await m.Agent.filter(id=account_id).exists()
        if is_agent and not actor.is_admin:  # agents are an admin's: hidden from others
            raise NotFound("No such account.")
        try:
            await recovery.resend_invitation(
                actor,
                agent_id=account_id if is_agent else None,
                profile_id=None if is_agent else account_id,
            )
        except DomainError as error:
            return DonePayload(user_errors=_errors(error))
        return DonePayload(ok=True)

    @strawberry.mutation(
        description="Choose your password with an invitation's token; you are logged in."
    )
    async def accept_invitation(self, info: Info, input: AcceptInvitationInput) -> LoginPayload:
        origin = info.context.origin()
        try:
            credential = await recovery.accept_invitation(input.token, input.password, origin)
            agent = (
                await m.Agent.filter(id=credential.agent_id).first()
                if credential.agent_id
                else None
            )
            if two_factor.applies_to(credential, agent):
                result: identity.LoginResult = await two_factor.challenge(credential)
            else:
                result = await sessions.start_session(credential, origin, method="invitation")
        except DomainError as error:
            return LoginPayload(user_errors=_errors(error))
        return await _login_answer(info, result)

    @strawberry.mutation(
        description="Start two-factor login: add the URI to an authenticator app, then "
        "confirm with a code (confirmTwoFactorEnrolment)."
    )
    async def begin_two_factor_enrolment(self, info: Info) -> TwoFactorEnrolmentPayload:
        viewer = await info.context.require_viewer()
        try:
            uri, secret = await two_factor.begin_enrolment(viewer)
        except DomainError as error:
            return TwoFactorEnrolmentPayload(user_errors=_errors(error))
        return TwoFactorEnrolmentPayload(otpauth_uri=uri, secret=secret)

    @strawberry.mutation(description="Turn two-factor on with a code; get recovery codes.")
    async def confirm_two_factor_enrolment(
        self, info: Info, input: ConfirmTwoFactorInput
    ) -> RecoveryCodesPayload:
        viewer = await info.context.require_viewer()
        try:
            codes = await two_factor.confirm_enrolment(viewer, input.code)
        except DomainError as error:
            return RecoveryCodesPayload(user_errors=_errors(error))
        return RecoveryCodesPayload(recovery_codes=codes)

    @strawberry.mutation(description="Turn two-factor off: your password and a code.")
    async def disable_two_factor(self, info: Info, input: DisableTwoFactorInput) -> DonePayload:
        viewer = await info.context.require_viewer()
        try:
            await two_factor.disable(viewer, input.password, input.code)
        except DomainError as error:
            return DonePayload(user_errors=_errors(error))
        return DonePayload(ok=True)

    @strawberry.mutation(description="Create an agent or admin account (admins only).")
    async def create_agent(self, info: Info, input: CreateAgentInput) -> AgentPayload:
        admin = await info.context.require_admin()
        try:
            if input.password is None:
                agent = await recovery.invite_agent(
                    admin, email=input.email, name=input.name, role=input.role, locale=input.locale
                )
            else:
                agent = await identity.create_agent(
                    admin,
                    email=input.email,
                    name=input.name,
                    password=input.password,
                    role=input.role,
                    locale=input.locale,
                )
        except DomainError as error:
            return AgentPayload(user_errors=_errors(error))
        return AgentPayload(agent=row_as(AgentType, agent))

    @strawberry.mutation(description="Rename, promote, demote, deactivate an agent (admins only).")
    async def update_agent(self, info: Info, input: UpdateAgentInput) -> AgentPayload:
        admin = await info.context.require_admin()
        try:
            agent = await identity.update_agent(
                admin,
                parse_id(input.id, what="agent"),
                name=_value(input.name),
                role=_value(input.role),
                active=_value(input.active),
                locale=_value(input.locale),
            )
        except DomainError as error:
            return AgentPayload(user_errors=_errors(error))
        return AgentPayload(agent=row_as(AgentType, agent))

    @strawberry.mutation(description="Change your own name, phone or language.")
    async def update_my_profile(
        self, info: Info, input: UpdateMyProfileInput
    ) -> UpdateMyProfilePayload:
        viewer = await info.context.require_viewer()
        try:
            owner = await identity.update_my_profile(
                viewer,
                full_name=_value(input.full_name),
                phone=(input.phone.value or "") if input.phone is not None else None,
                locale=_value(input.locale),
            )
        except DomainError as error:
            return UpdateMyProfilePayload(user_errors=_errors(error))
        return UpdateMyProfilePayload(viewer=_viewer(owner))

    @strawberry.mutation(description="Change your password; you get a new token.")
    async def change_password(
        self, info: Info, input: ChangePasswordInput
    ) -> ChangePasswordPayload:
        viewer = await info.context.require_viewer()
        try:
            token, expires_at = await identity.change_password(
                viewer, input.current_password, input.new_password
            )
        except DomainError as error:
            return ChangePasswordPayload(user_errors=_errors(error))
        return ChangePasswordPayload(token=token, expires_at=expires_at)
