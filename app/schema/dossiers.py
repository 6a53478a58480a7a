"""The Dossier type (a client's file) and the dossier list's filter.

Above the modules of what a dossier contains and does (steps, documents, messages,
workflow, chasing): they name the Dossier type lazily, this module imports them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from app.context import Info
from app.dataloaders.pages import or_load
from app.schema.catalog import ProductType
from app.schema.chasing import DossierProgressType, dossier_progress
from app.schema.common import Connection, first_page_by, list_page, paginate
from app.schema.documents import SharedFileType
from app.schema.enums import DossierKind, DossierStatus
from app.schema.identity import AgentType, ProfileType
from app.schema.members import DossierMemberType
from app.schema.messages import MessageType, dossier_messages, dossier_unread_count
from app.schema.notes import DossierNoteType
from app.schema.steps import DocumentType, DossierStatusChangeType, StepInstanceType
from app.schema.workflow import TimelineEntry, timeline_entries
from app.services.desk.notes import dossier_notes
from app.services.shared_files import dossier_shared_files


@strawberry.type(name="Dossier", description="A client's file, running its product's steps.")
class DossierType:
    reference: str = strawberry.field(
        description="The case number, e.g. PV-2026-000123: accepted wherever a dossier id is."
    )
    type: DossierKind
    status: DossierStatus
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    ended_at: datetime | None = strawberry.field(
        description="When it ended (COMPLETED or CANCELLED): its uploaded files are deleted "
        "DOCUMENT_RETENTION_DAYS later."
    )
    files_purged_at: datetime | None = strawberry.field(
        description="When its uploaded files were deleted under the retention rule."
    )

    if TYPE_CHECKING:  # the root value is the Dossier row: columns read below
        id: uuid.UUID
        user_id: uuid.UUID
        product_id: uuid.UUID
        current_step_instance_id: uuid.UUID | None
        owner_id: uuid.UUID | None
    else:
        id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    @strawberry.field
    def product(self, info: Info) -> ProductType:
        return or_load(self, "product", lambda: info.context.loaders.product.load(self.product_id))

    @strawberry.field(description="The client who owns the dossier.")
    def client(self, info: Info) -> ProfileType:
        return or_load(self, "client", lambda: info.context.loaders.profile.load(self.user_id))

    @strawberry.field(description="Every step of the dossier, in order.")
    async def steps(self, info: Info) -> list[StepInstanceType]:
        return await info.context.loaders.step_instances_by_dossier.load(self.id)

    @strawberry.field(description="The step the dossier is at; null before the first or when done.")
    def current_step(self, info: Info) -> StepInstanceType | None:
        if self.current_step_instance_id is None:
            return None
        return or_load(
            self,
            "current_step",
            lambda: info.context.loaders.step_instance.load(self.current_step_instance_id),
        )

    @strawberry.field(description="The people of the dossier besides its client.")
    async def members(self, info: Info) -> list[DossierMemberType]:
        return await info.context.loaders.members_by_dossier.load(self.id)

    @strawberry.field(description="Every document of the dossier, all steps together.")
    async def documents(self, info: Info) -> list[DocumentType]:
        return await info.context.loaders.documents_by_dossier.load(self.id)

    @strawberry.field(
        description="Steps done, documents approved, the current step's due date, and the "
        "documents the client must send next."
    )
    async def progress(self, info: Info) -> DossierProgressType:
        return await dossier_progress(info, self)

    @strawberry.field(description="The latest `last` status changes, oldest first.")
    async def status_history(self, info: Info, last: int = 50) -> list[DossierStatusChangeType]:
        return await info.context.loaders.status_history_by_dossier.load((self.id, list_page(last)))

    @strawberry.field(
        description="The chat, oldest first: `first`/`after` from the start, "
        "`last`/`before` from the latest."
    )
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[MessageType]:
        return await dossier_messages(
            info, self.id, first=first, after=after, last=last, before=before
        )

    @strawberry.field(
        description="Files the firm shared with the dossier (shareFile), oldest first."
    )
    async def shared_files(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[SharedFileType]:
        if after is not None:  # a later page: one dossier's, read on its own
            return await paginate(
                dossier_shared_files(self.id), first=first, after=after, last=None, before=None
            )
        # The first page, batched over the dossiers of a list (one statement for all).
        loaders = info.context.loaders
        return await first_page_by(
            loaders.shared_file_pages, loaders.shared_file_counts, self.id, first
        )

    @strawberry.field(
        description="Agents only (FORBIDDEN for clients): internal notes, newest first."
    )
    async def notes(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[DossierNoteType]:
        viewer = await info.context.require_agent()
        if after is not None:  # a later page: one dossier's, read on its own
            return await paginate(
                dossier_notes(viewer, self.id),
                first=first,
                after=after,
                last=None,
                before=None,
                order=("-created_at", "-id"),
            )
        # The first page, batched over the dossiers of a list (one statement for all).
        loaders = info.context.loaders
        return await first_page_by(loaders.note_pages, loaders.note_counts, self.id, first)

    @strawberry.field(description="Agents only (FORBIDDEN for clients): its tags, by name.")
    async def tags(self, info: Info) -> list[str]:
        await info.context.require_agent()
        return [t.name for t in await info.context.loaders.tags_by_dossier.load(self.id)]

    @strawberry.field(
        description="Agents only (FORBIDDEN for clients): the agent responsible, if any."
    )
    async def owner(self, info: Info) -> AgentType | None:
        await info.context.require_agent()
        if self.owner_id is None:
            return None
        return await info.context.loaders.agent.load(self.owner_id)

    @strawberry.field(description="Messages from the other side you have not read yet.")
    def unread_message_count(self, info: Info) -> int:
        return or_load(self, "unread_message_count", lambda: dossier_unread_count(info, self.id))

    @strawberry.field(
        description="Status changes, steps, uploads, reviews and messages in time order: "
        "the latest `last` entries (before `before`, to page back), oldest first."
    )
    async def timeline(
        self, info: Info, last: int = 50, before: datetime | None = None
    ) -> list[TimelineEntry]:
        return await timeline_entries(info, self.id, last, before)


@strawberry.input
class DossierFilter:
    status: list[DossierStatus] | None = None
    reference: str | None = strawberry.field(
        default=None, description="The dossier of this case number (case-insensitive)."
    )
    product_id: strawberry.ID | None = None
    client_id: strawberry.ID | None = strawberry.field(default=None, description="Agents only.")
    assigned_to_me: bool = strawberry.field(
        default=False, description="Agents only: dossiers with a step assigned to me."
    )
    tag: str | None = strawberry.field(default=None, description="Agents only: with this tag.")
    owner_id: strawberry.ID | None = strawberry.field(
        default=None, description="Agents only: owned by this agent."
    )
    owned_by_me: bool = strawberry.field(default=False, description="Agents only: mine.")
