"""Profiles (clients), agents, the viewer and the account mutations' shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types.info import Info as StrawberryInfo

from app import models as m
from app.context import Info
from app.schema.common import UserError
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

    @classmethod
    def is_type_of(cls, obj: Any, _info: StrawberryInfo) -> bool:
        return isinstance(obj, m.Profile)


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


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.type
class LoginPayload:
    token: str | None = None
    expires_at: datetime | None = None
    viewer: Viewer | None = None
    user_errors: list[IdentityUserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateAgentInput:
    email: str
    name: str
    password: str
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
