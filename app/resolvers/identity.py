from __future__ import annotations

import strawberry

from app import models as m
from app.context import Info
from app.errors import DomainError
from app.schema.common import Connection, paginate, parse_id, row_as, user_errors
from app.schema.identity import (
    AgentPayload,
    AgentType,
    ChangePasswordInput,
    ChangePasswordPayload,
    CreateAgentInput,
    IdentityErrorCode,
    IdentityUserError,
    LoginInput,
    LoginPayload,
    ProfileType,
    UpdateAgentInput,
    UpdateMyProfileInput,
    UpdateMyProfilePayload,
    Viewer,
)
from app.services import identity


def _errors(error: DomainError) -> list[IdentityUserError]:
    return user_errors(error, IdentityUserError, IdentityErrorCode)


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


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(description="Exchange an email and password for a token.")
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        try:
            session = await identity.login(input.email, input.password)
        except DomainError as error:
            return LoginPayload(user_errors=_errors(error))
        info.context.forget_viewer()
        credential = session.credential
        owner = await (
            m.Agent.get(id=credential.agent_id)
            if credential.agent_id
            else m.Profile.get(id=credential.profile_id)
        )
        return LoginPayload(
            token=session.token, expires_at=session.expires_at, viewer=_viewer(owner)
        )

    @strawberry.mutation(description="Create an agent or admin account (admins only).")
    async def create_agent(self, info: Info, input: CreateAgentInput) -> AgentPayload:
        admin = await info.context.require_admin()
        try:
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
            session = await identity.change_password(
                viewer, input.current_password, input.new_password
            )
        except DomainError as error:
            return ChangePasswordPayload(user_errors=_errors(error))
        return ChangePasswordPayload(token=session.token, expires_at=session.expires_at)
