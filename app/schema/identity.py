"""Profiles (clients), agents, the viewer and the account mutations' shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types.info import Info as StrawberryInfo

from app import models as m
from app.context import Info
from app.errors import Unauthenticated
from app.schema.common import UserError, row_as
from app.schema.enums import AgentRole, Locale, UserStatus
from app.schema.messages import my_unread_count
from app.services.codes import IdentityErrorCode

# Marks the class itself as a GraphQL enum (see app.schema.enums).
strawberry.enum(IdentityErrorCode, name="IdentityErrorCode")


@strawberry.type(name="Profile", description="A client (or a prospect who has registered).")
class ProfileType:
    full_name: str
    phone: str | None
    status: UserStatus
    locale: Locale
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None = strawberry.field(
        description="When this client's personal data was erased (eraseClient); null if never."
    )

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    @strawberry.field
    async def email(self, info: Info) -> str:
        viewer = await info.context.viewer()
        if viewer is not None and viewer.profile is not None and viewer.profile.id == self.id:
            return viewer.email
        credential = await info.context.loaders.credential_by_profile.load(self.id)
        return credential.email if credential else ""

    @strawberry.field(
        description="Unread chat messages across your dossiers (null unless this is you)."
    )
    async def unread_message_count(self, info: Info) -> int | None:
        return await my_unread_count(info, self)

    @strawberry.field(
        description="The e-mail address that bounced for good (a DSN with a 5.x.x status): "
        "e-mail is not used while it is still the login address. Agents and the client "
        "themself only; null otherwise, or if none bounced."
    )
    async def email_bounce(self, info: Info) -> EmailBounce | None:
        row = row_as(m.Profile, self)
        if row.email_bounced_at is None or not await _staff_or_self(info, row):
            return None
        return EmailBounce(
            address=row.email_bounced_address or "",
            bounced_at=row.email_bounced_at,
            reason=row.email_bounce_reason,
        )

    @classmethod
    def is_type_of(cls, obj: Any, _info: StrawberryInfo) -> bool:
        return isinstance(obj, m.Profile)


@strawberry.type(description="A hard bounce of a client's e-mail address.")
class EmailBounce:
    address: str
    bounced_at: datetime
    reason: str | None = strawberry.field(description="The DSN's status and diagnostic.")


async def _staff_or_self(info: Info, profile: m.Profile) -> bool:
    viewer = await info.context.viewer()
    if viewer is None:
        return False
    return viewer.is_agent or (viewer.profile is not None and viewer.profile.id == profile.id)


@strawberry.type(name="Agent", description="A member of the firm's staff.")
class AgentType:
    email: str
    name: str
    active: bool
    role: AgentRole
    locale: Locale
    created_at: datetime

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    @strawberry.field(
        description="Unread client messages across all dossiers (null unless this is you)."
    )
    async def unread_message_count(self, info: Info) -> int | None:
        return await my_unread_count(info, self)

    @classmethod
    def is_type_of(cls, obj: Any, _info: StrawberryInfo) -> bool:
        return isinstance(obj, m.Agent)


Viewer = Annotated[
    ProfileType | AgentType,
    strawberry.union("Viewer", description="Whoever is logged in: a client or an agent."),
]


@strawberry.type
class IdentityUserError(UserError):
    code: IdentityErrorCode
    retry_after: int | None = strawberry.field(
        default=None, description="RATE_LIMITED: seconds until another attempt is allowed."
    )


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.type(name="Session", description="One login of yours: a device or app.")
class SessionType:
    created_at: datetime
    last_used_at: datetime = strawberry.field(
        description="The login or the last refresh (access tokens are not counted)."
    )
    expires_at: datetime = strawberry.field(
        description="When it ends unless refreshed before (and at the latest SESSION_MAX_DAYS "
        "after the login)."
    )
    ip_address: str | None
    user_agent: str | None

    id: strawberry.ID

    @strawberry.field(description="The session of the token this request carries.")
    async def current(self, info: Info) -> bool:
        if info.context.opened_session_id == self.id:
            return True  # the login (refresh) answering now
        try:
            viewer = await info.context.viewer()
        except Unauthenticated:
            return False
        return viewer is not None and viewer.session_id == self.id


@strawberry.type
class TwoFactorChallenge:
    token: str = strawberry.field(
        description="Send it with a code to completeTwoFactorLogin (valid a few minutes)."
    )
    expires_at: datetime
    enrolment_uri: str | None = strawberry.field(
        default=None,
        description="Set when your role requires two-factor and you have not enrolled: add "
        "this otpauth:// URI to an authenticator app, then answer with its code.",
    )


@strawberry.type
class LoginPayload:
    token: str | None = strawberry.field(
        default=None, description="The access token (Authorization: Bearer …)."
    )
    expires_at: datetime | None = None
    refresh_token: str | None = strawberry.field(
        default=None,
        description="Trade it for new tokens with refreshSession before refreshExpiresAt; "
        "each one works once (a second use ends the session).",
    )
    refresh_expires_at: datetime | None = None
    session: SessionType | None = None
    viewer: Viewer | None = None
    two_factor: TwoFactorChallenge | None = strawberry.field(
        default=None, description="Set instead of the tokens when a second factor is due."
    )
    recovery_codes: list[str] | None = strawberry.field(
        default=None,
        description="Set once, when this login enrolled two-factor: keep them safe.",
    )
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.input
class RefreshSessionInput:
    refresh_token: str


@strawberry.input
class CompleteTwoFactorLoginInput:
    challenge: str
    code: str = strawberry.field(description="The app's 6 digits, or a recovery code.")


@strawberry.type
class DonePayload:
    ok: bool = False
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.type
class LogoutEverywherePayload:
    ended: int = strawberry.field(default=0, description="Sessions ended, this one included.")
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.input
class RequestPasswordResetInput:
    email: str


@strawberry.input
class ResetPasswordInput:
    new_password: str
    token: str | None = strawberry.field(default=None, description="From the e-mail's link.")
    email: str | None = strawberry.field(default=None, description="With `code`, instead.")
    code: str | None = strawberry.field(default=None, description="The e-mail's 8 digits.")


@strawberry.input
class InviteClientInput:
    email: str
    full_name: str
    locale: Locale = Locale.FR


@strawberry.type
class ProfilePayload:
    profile: ProfileType | None = None
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.input
class ResendInvitationInput:
    account_id: strawberry.ID = strawberry.field(description="An agent's or a client's id.")


@strawberry.input
class AcceptInvitationInput:
    token: str
    password: str


@strawberry.type
class TwoFactorEnrolmentPayload:
    otpauth_uri: str | None = strawberry.field(
        default=None, description="Shown once: add it to an authenticator app."
    )
    secret: str | None = strawberry.field(
        default=None, description="The same secret, for apps that cannot scan a QR code."
    )
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.input
class ConfirmTwoFactorInput:
    code: str


@strawberry.type
class RecoveryCodesPayload:
    recovery_codes: list[str] | None = strawberry.field(
        default=None, description="Shown once; each works once in place of a code."
    )
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.input
class DisableTwoFactorInput:
    password: str
    code: str


@strawberry.input
class CreateAgentInput:
    email: str
    name: str
    password: str | None = strawberry.field(
        default=None,
        description="Omit it to invite: the agent gets an e-mail to choose a password.",
    )
    role: AgentRole = AgentRole.AGENT
    locale: Locale = Locale.FR


@strawberry.input
class UpdateAgentInput:
    id: strawberry.ID
    name: strawberry.Maybe[str]
    role: strawberry.Maybe[AgentRole]
    active: strawberry.Maybe[bool]
    locale: strawberry.Maybe[Locale]


@strawberry.type
class AgentPayload:
    agent: AgentType | None = None
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateMyProfileInput:
    full_name: strawberry.Maybe[str]
    phone: strawberry.Maybe[str | None]
    locale: strawberry.Maybe[Locale]


@strawberry.type
class UpdateMyProfilePayload:
    viewer: Viewer | None = None
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.type
class ChangePasswordPayload:
    token: str | None = strawberry.field(
        default=None, description="A new token: tokens issued before the change stop working."
    )
    expires_at: datetime | None = None
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)
