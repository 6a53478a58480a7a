from __future__ import annotations

import strawberry

from app.context import Info
from app.errors import DomainError
from app.schema.common import dossier_id_of, parse_id, row_as, user_errors
from app.schema.members import (
    AddDossierMemberInput,
    AddDossierMemberPayload,
    DossierMemberType,
    MemberUserError,
    RemoveDossierMemberInput,
    RemoveDossierMemberPayload,
)
from app.services import members
from app.services.codes import MemberErrorCode


def _errors(error: DomainError) -> list[MemberUserError]:
    return user_errors(error, MemberUserError, MemberErrorCode)


@strawberry.type
class MemberQuery:
    @strawberry.field(description="The roles a dossier member may have (the catalogue's).")
    async def member_roles(self, info: Info) -> list[str]:
        await info.context.require_viewer()
        return await members.member_roles()


@strawberry.type
class MemberMutation:
    @strawberry.mutation(
        description="Add a person to a dossier (its client or an agent): found by e-mail, or "
        "created and invited; asked for the running step's documents of their role."
    )
    async def add_dossier_member(
        self, info: Info, input: AddDossierMemberInput
    ) -> AddDossierMemberPayload:
        viewer = await info.context.require_viewer()
        try:
            member, invited = await members.add_member(
                viewer,
                await dossier_id_of(input.dossier_id),
                email=input.email,
                full_name=input.full_name,
                role=input.role,
            )
        except DomainError as error:
            return AddDossierMemberPayload(user_errors=_errors(error))
        return AddDossierMemberPayload(member=row_as(DossierMemberType, member), invited=invited)

    @strawberry.mutation(
        description="Remove a member (the dossier's client or an agent): their access and "
        "live subscriptions end; the documents they sent stay."
    )
    async def remove_dossier_member(
        self, info: Info, input: RemoveDossierMemberInput
    ) -> RemoveDossierMemberPayload:
        viewer = await info.context.require_viewer()
        try:
            member = await members.remove_member(viewer, parse_id(input.member_id, what="member"))
        except DomainError as error:
            return RemoveDossierMemberPayload(user_errors=_errors(error))
        return RemoveDossierMemberPayload(member=row_as(DossierMemberType, member))
