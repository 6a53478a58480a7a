"""Uploads, reviews, the review queue and download links."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.file_uploads import Upload

from app.context import Info
from app.dataloaders.pages import or_load
from app.models import SharedFile
from app.schema.common import UserError, row_as
from app.schema.enums import ReviewStatus
from app.schema.identity import AgentType
from app.schema.steps import DocumentType, DocumentVersionType, StepInstanceType
from app.services import shared_files
from app.services.codes import DocumentErrorCode

if TYPE_CHECKING:
    from app.schema.dossiers import DossierType

# Marks the class itself as a GraphQL enum (see app.schema.enums).
strawberry.enum(DocumentErrorCode, name="DocumentErrorCode")


@strawberry.type
class DocumentUserError(UserError):
    code: DocumentErrorCode


@strawberry.type(name="DocumentReview", description="An agent's decision on a document version.")
class DocumentReviewType:
    status: ReviewStatus
    reason: str | None = strawberry.field(description="Why, as the client reads it.")
    reviewed_at: datetime

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the DocumentReview row: columns read below
        document_version_id: uuid.UUID
        reviewer_id: uuid.UUID | None

    @strawberry.field(description="Internal notes: agents only (null for clients).")
    async def notes(self, info: Info) -> str | None:
        viewer = await info.context.viewer()
        return self.notes if viewer is not None and viewer.is_agent else None

    @strawberry.field
    async def reviewer(self, info: Info) -> AgentType | None:
        if self.reviewer_id is None:
            return None
        return await info.context.loaders.agent.load(self.reviewer_id)

    @strawberry.field
    async def version(self, info: Info) -> DocumentVersionType:
        return await info.context.loaders.document_version.load(self.document_version_id)


@strawberry.input
class UploadDocumentInput:
    document_id: strawberry.ID
    file: Upload = strawberry.field(
        description="The file, sent as a part of a multipart request (GraphQL multipart "
        "request spec) with an 'Apollo-Require-Preflight' header."
    )
    expires_on: date | None = strawberry.field(
        default=None,
        description="The day the document stops being valid (required by some types before "
        "approval; at least the type's minimum validity ahead).",
    )


@strawberry.type
class UploadDocumentPayload:
    document: DocumentType | None = None
    version: DocumentVersionType | None = None
    dossier: Annotated[DossierType, strawberry.lazy("app.schema.dossiers")] | None = None
    user_errors: list[DocumentUserError] = strawberry.field(default_factory=list)


@strawberry.input
class ReviewDocumentInput:
    version_id: strawberry.ID
    decision: ReviewStatus
    reason: str | None = strawberry.field(
        default=None, description="Required for CHANGES_REQUESTED and REJECTED; the client sees it."
    )
    notes: str | None = strawberry.field(default=None, description="Internal, agents only.")
    expires_on: date | None = strawberry.field(
        default=None,
        description="With APPROVED: the version's expiry date (replaces the one given at "
        "upload); required when the type requires one and none was given.",
    )


@strawberry.type
class ReviewDocumentPayload:
    review: DocumentReviewType | None = None
    document: DocumentType | None = None
    dossier: Annotated[DossierType, strawberry.lazy("app.schema.dossiers")] | None = None
    user_errors: list[DocumentUserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetDocumentExpiryInput:
    version_id: strawberry.ID
    expires_on: date


@strawberry.type
class SetDocumentExpiryPayload:
    version: DocumentVersionType | None = None
    document: DocumentType | None = None
    user_errors: list[DocumentUserError] = strawberry.field(default_factory=list)


@strawberry.type(name="DownloadUrl", description="A signed link to one file, valid for minutes.")
class DownloadUrlType:
    url: str
    expires_at: datetime


@strawberry.type(
    name="ReviewQueueItem", description="A document version waiting for an agent's review."
)
class ReviewQueueItemType:
    """Resolved over a DocumentVersion row."""

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the DocumentVersion row: columns read below
        document_id: uuid.UUID
        uploaded_at: datetime

    @strawberry.field(description="The version to review (the document's current one).")
    def version(self) -> DocumentVersionType:
        return row_as(DocumentVersionType, self)

    @strawberry.field
    def document(self, info: Info) -> DocumentType:
        return or_load(
            self,
            "document",
            lambda: info.context.loaders.document.load(self.document_id),
        )

    @strawberry.field
    def dossier(self, info: Info) -> Annotated[DossierType, strawberry.lazy("app.schema.dossiers")]:
        async def load() -> DossierType:
            document = await info.context.loaders.document.load(self.document_id)
            return await info.context.loaders.dossier.load(document.dossier_id)

        return or_load(self, "dossier", load)

    @strawberry.field(description="The step the document belongs to (its assignee, if any).")
    def step_instance(self, info: Info) -> StepInstanceType | None:
        async def load() -> StepInstanceType | None:
            document = await info.context.loaders.document.load(self.document_id)
            if document.step_instance_id is None:
                return None
            return await info.context.loaders.step_instance.load(document.step_instance_id)

        return or_load(self, "step_instance", load)

    @strawberry.field(description="When the version was uploaded.")
    def waiting_since(self) -> datetime:
        return self.uploaded_at

    @strawberry.field(description="How long it has waited, in seconds.")
    def waiting_seconds(self) -> int:
        return max(0, int((datetime.now(UTC) - self.uploaded_at).total_seconds()))


# --- documents requested on the fly, waived; files the firm shares (issue 18) ----------


@strawberry.input
class RequestDocumentInput:
    step_instance_id: strawberry.ID = strawberry.field(
        description="An open step: the dossier's current one."
    )
    document_type_id: strawberry.ID | None = strawberry.field(
        default=None, description="A document type; or else the three ad-hoc fields below."
    )
    label: str | None = strawberry.field(default=None, description="Ad hoc: what to send.")
    allowed_extensions: list[str] | None = strawberry.field(
        default=None, description="Ad hoc: the extensions accepted (as for document types)."
    )
    max_file_size_mb: int | None = strawberry.field(
        default=None, description="Ad hoc: the size limit, 1 to 100 MB."
    )
    note: str | None = strawberry.field(default=None, description="For the client.")
    due_at: datetime | None = strawberry.field(
        default=None, description="Its own due date (else the step's)."
    )
    member_id: strawberry.ID | None = strawberry.field(
        default=None, description="Ask it of this member of the dossier (they send it)."
    )


@strawberry.input
class WaiveDocumentInput:
    document_id: strawberry.ID
    reason: str = strawberry.field(description="Required; the client sees it.")


@strawberry.type
class DocumentRequestPayload:
    document: DocumentType | None = None
    dossier: Annotated[DossierType, strawberry.lazy("app.schema.dossiers")] | None = None
    user_errors: list[DocumentUserError] = strawberry.field(default_factory=list)


@strawberry.type(name="SharedFile", description="A file the firm shared with the dossier.")
class SharedFileType:
    file_name: str
    mime_type: str
    file_size_bytes: int
    note: str | None
    created_at: datetime

    id: strawberry.ID

    if TYPE_CHECKING:  # the root value is the SharedFile row
        dossier_id: uuid.UUID
        shared_by_id: uuid.UUID | None

    @strawberry.field(description="The agent who shared it (null once that agent is gone).")
    async def shared_by(self, info: Info) -> AgentType | None:
        if self.shared_by_id is None:
            return None
        return await info.context.loaders.agent.load(self.shared_by_id)

    @strawberry.field(
        description="A signed link to download it, valid for five minutes at most (the "
        "dossier's client and agents: whoever sees the dossier)."
    )
    async def download_url(self, info: Info) -> DownloadUrlType:
        viewer = await info.context.require_viewer()  # read once per request
        signed = shared_files.download_url(row_as(SharedFile, self), viewer)
        return DownloadUrlType(url=signed.url, expires_at=signed.expires_at)


@strawberry.input
class ShareFileInput:
    dossier_id: strawberry.ID
    file: Upload = strawberry.field(
        description="The file, sent as a part of a multipart request (GraphQL multipart "
        "request spec) with an 'Apollo-Require-Preflight' header."
    )
    note: str | None = strawberry.field(default=None, description="For the client.")


@strawberry.type
class ShareFilePayload:
    shared_file: SharedFileType | None = None
    user_errors: list[DocumentUserError] = strawberry.field(default_factory=list)
