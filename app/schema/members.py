"""The members of a dossier (issue 18): the people besides its client."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from app.context import Info
from app.schema.common import UserError, gid
from app.schema.identity import ProfileType
from app.services.codes import MemberErrorCode

strawberry.enum(MemberErrorCode, name="MemberErrorCode")


@strawberry.type(
    name="DossierMember",
    description="A person of the dossier besides its client: a co-applicant, a spouse, a "
    "child, an associate. They see the dossier, chat, and send their own documents.",
)
class DossierMemberType:
    role: str
    created_at: datetime = strawberry.field(description="When they were added.")
    removed_at: datetime | None

    if TYPE_CHECKING:  # the root value is the DossierMember row: columns read below
        profile_id: uuid.UUID
        dossier_id: uuid.UUID

    @strawberry.field
    def id(self) -> strawberry.ID:
        return gid(self.id)

    @strawberry.field(description="The member's client profile.")
    async def client(self, info: Info) -> ProfileType:
        return await info.context.loaders.profile.load(self.profile_id)


@strawberry.type
class MemberUserError(UserError):
    code: MemberErrorCode


@strawberry.input
class AddDossierMemberInput:
    dossier_id: strawberry.ID
    email: str
    full_name: str = strawberry.field(description="Used when they have no account yet.")
    role: str = strawberry.field(description="One of memberRoles, e.g. CO_APPLICANT.")


@strawberry.type
class AddDossierMemberPayload:
    member: DossierMemberType | None = None
    invited: bool | None = strawberry.field(
        default=None, description="A new account: they were e-mailed an invitation."
    )
    user_errors: list[MemberUserError] = strawberry.field(default_factory=list)


@strawberry.input
class RemoveDossierMemberInput:
    member_id: strawberry.ID


@strawberry.type
class RemoveDossierMemberPayload:
    member: DossierMemberType | None = None
    user_errors: list[MemberUserError] = strawberry.field(default_factory=list)
