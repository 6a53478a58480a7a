"""What a dossier contains: step instances, documents, their versions, the status history.

The Dossier type itself is in app.schema.dossiers, above this module and the ones that
return these types (documents, workflow, chasing)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.context import Info
from app.dataloaders.pages import or_load
from app.schema.catalog import DocumentTypeType, StepType
from app.schema.common import gid, list_page
from app.schema.enums import ActorType, DocumentStatus, DossierStatus
from app.schema.identity import AgentType
from app.schema.members import DossierMemberType
from app.services.deadlines import is_overdue

if TYPE_CHECKING:
    from app.schema.documents import DocumentReviewType


def _overdue(
    due_at: datetime | None, completed_at: datetime | None, status: DossierStatus | None
) -> bool:
    return is_overdue(due_at, completed_at, status)


@strawberry.type(name="DocumentVersion", description="One uploaded file of a document.")
class DocumentVersionType:
    version_number: int
    file_name: str
    file_size_bytes: int
    mime_type: str
    uploaded_by_type: ActorType
    uploaded_at: datetime
    expires_on: date | None = strawberry.field(
        description="The day this document stops being valid, when known."
    )
    purged_at: datetime | None = strawberry.field(
        description="When its file was deleted from storage (retention after the dossier "
        "ended, or erasure): the version is still listed, its download answers 410 Gone."
    )

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the DocumentVersion row: columns read below
        document_id: uuid.UUID

    @strawberry.field
    def uploaded_by_id(self) -> strawberry.ID | None:
        return gid(self.uploaded_by_id) if self.uploaded_by_id else None

    @strawberry.field
    async def document(self, info: Info) -> DocumentType:
        return await info.context.loaders.document.load(self.document_id)

    @strawberry.field(description="Agents' latest `last` decisions on this version, oldest first.")
    async def reviews(
        self, info: Info, last: int = 20
    ) -> list[Annotated[DocumentReviewType, strawberry.lazy("app.schema.documents")]]:
        return await info.context.loaders.reviews_by_version.load((self.id, list_page(last)))


@strawberry.type(name="Document", description="A document a dossier needs, and its state.")
class DocumentType:
    status: DocumentStatus
    created_at: datetime
    updated_at: datetime
    expires_on: date | None = strawberry.field(
        description="When its approved version expires (null while none is approved)."
    )

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the Document row: columns read below
        dossier_id: uuid.UUID
        document_type_id: uuid.UUID | None
        step_instance_id: uuid.UUID | None
        current_version_id: uuid.UUID | None
        member_id: uuid.UUID | None

    @strawberry.field(description="The member it is asked of; null: the dossier's own.")
    async def member(self, info: Info) -> DossierMemberType | None:
        if self.member_id is None:
            return None
        return await info.context.loaders.member.load(self.member_id)

    if TYPE_CHECKING:  # columns of a document requested on the fly, or waived
        label: str | None
        allowed_extensions: list[str] | None
        max_file_size_mb: int | None
        requested_by_id: uuid.UUID | None
        waived_at: datetime | None
        due_at: datetime | None

    note: str | None = strawberry.field(
        description="The agent's note, for a document requested on the fly."
    )
    waived_reason: str | None = strawberry.field(description="Why it was waived (WAIVED).")

    @strawberry.field(description="Null for a document an agent requested without a type.")
    def document_type(self, info: Info) -> DocumentTypeType | None:
        if self.document_type_id is None:
            return None
        return or_load(
            self,
            "document_type",
            lambda: info.context.loaders.document_type.load(self.document_type_id),
        )

    @strawberry.field(
        name="label", description="What the document is: its type's label, or the requested one."
    )
    async def display_label(self, info: Info) -> str:
        if self.document_type_id is None:
            return self.label or "Document"
        document_type = await info.context.loaders.document_type.load(self.document_type_id)
        return document_type.label

    @strawberry.field(
        name="allowedExtensions",
        description="The extensions it accepts (its type's, or the requested ones).",
    )
    async def accepted_extensions(self, info: Info) -> list[str]:
        if self.document_type_id is None:
            return list(self.allowed_extensions or [])
        document_type = await info.context.loaders.document_type.load(self.document_type_id)
        return list(document_type.allowed_extensions)

    @strawberry.field(name="maxFileSizeMb", description="Its size limit, in MB.")
    async def size_limit_mb(self, info: Info) -> int:
        if self.document_type_id is None:
            return int(self.max_file_size_mb or 1)
        document_type = await info.context.loaders.document_type.load(self.document_type_id)
        return int(document_type.max_file_size_mb)

    @strawberry.field(description="Added to its step by an agent (requestDocument).")
    def requested(self) -> bool:
        return self.requested_by_id is not None

    @strawberry.field(name="waivedAt", description="When it was waived (WAIVED).")
    def waived_on(self) -> datetime | None:
        return self.waived_at

    @strawberry.field(description="The latest upload, if any.")
    def current_version(self, info: Info) -> DocumentVersionType | None:
        if self.current_version_id is None:
            return None
        return or_load(
            self,
            "current_version",
            lambda: info.context.loaders.document_version.load(self.current_version_id),
        )

    @strawberry.field(description="The latest `last` uploads, oldest first.")
    async def versions(self, info: Info, last: int = 20) -> list[DocumentVersionType]:
        return await info.context.loaders.versions_by_document.load((self.id, list_page(last)))

    @strawberry.field(
        name="dueAt",
        description="Its step's due date (the documents of a step share it), or the one "
        "an agent gave the document when requesting it.",
    )
    async def due_date(self, info: Info) -> datetime | None:
        if self.due_at is not None:
            return self.due_at
        if self.step_instance_id is None:
            return None
        step = await info.context.loaders.step_instance.load(self.step_instance_id)
        return step.due_at if step else None

    @strawberry.field(
        description="Past its step's due date and still to be sent by the client (PENDING, "
        "CHANGES_REQUESTED or REJECTED), in a running dossier."
    )
    async def is_overdue(self, info: Info) -> bool:
        if self.step_instance_id is None or self.status not in (
            DocumentStatus.PENDING,
            DocumentStatus.CHANGES_REQUESTED,
            DocumentStatus.REJECTED,
        ):
            return False
        step = await info.context.loaders.step_instance.load(self.step_instance_id)
        if step is None or step.due_at is None:
            return False
        dossier = await info.context.loaders.dossier.load(self.dossier_id)
        return _overdue(step.due_at, step.completed_at, dossier.status if dossier else None)


@strawberry.type(name="StepInstance", description="A product step as it runs in one dossier.")
class StepInstanceType:
    position: int
    is_required: bool
    started_at: datetime | None
    completed_at: datetime | None
    skipped_at: datetime | None = strawberry.field(description="Set (with completedAt) if skipped.")
    due_at: datetime | None = strawberry.field(
        description="Set when the step starts (startedAt + estimatedDurationHours); agents "
        "may move it (moveStepDueDate)."
    )
    estimated_duration_hours: int | None = strawberry.field(
        description="Copied from the product's step when the dossier was created."
    )
    created_at: datetime

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the StepInstance row: columns read below
        dossier_id: uuid.UUID
        step_id: uuid.UUID
        assigned_to_id: uuid.UUID | None

    @strawberry.field
    def step(self, info: Info) -> StepType:
        return or_load(self, "step", lambda: info.context.loaders.step.load(self.step_id))

    @strawberry.field(description="The agent in charge, if one is assigned.")
    def assigned_to(self, info: Info) -> AgentType | None:
        if self.assigned_to_id is None:
            return None
        return or_load(
            self, "assigned_to", lambda: info.context.loaders.agent.load(self.assigned_to_id)
        )

    @strawberry.field(description="Documents this step asks for.")
    def documents(self, info: Info) -> list[DocumentType]:
        return or_load(
            self,
            "documents",
            lambda: info.context.loaders.documents_by_step_instance.load(self.id),
        )

    @strawberry.field(
        description="Past its due date and not completed, in a running dossier (one on "
        "hold, completed or cancelled has nothing overdue)."
    )
    async def is_overdue(self, info: Info) -> bool:
        if self.due_at is None or self.completed_at is not None:
            return False
        dossier = await info.context.loaders.dossier.load(self.dossier_id)
        return _overdue(self.due_at, self.completed_at, dossier.status if dossier else None)


@strawberry.type(name="DossierStatusChange", description="One entry of a dossier's status history.")
class DossierStatusChangeType:
    old_status: DossierStatus | None
    new_status: DossierStatus
    changed_by_type: ActorType
    reason: str | None
    created_at: datetime

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    @strawberry.field
    def changed_by_id(self) -> strawberry.ID | None:
        return gid(self.changed_by_id) if self.changed_by_id else None
