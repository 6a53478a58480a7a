from __future__ import annotations

from typing import Any

import strawberry

from app.context import Info
from app.dataloaders import pages
from app.errors import BadUserInput, DomainError, NotFound
from app.models import Document, Dossier
from app.providers.storage import Storage
from app.schema.common import Connection, dossier_id_of, paginate, parse_id, row_as, user_errors
from app.schema.documents import (
    DocumentErrorCode,
    DocumentRequestPayload,
    DocumentReviewType,
    DocumentUserError,
    DownloadUrlType,
    RequestDocumentInput,
    ReviewDocumentInput,
    ReviewDocumentPayload,
    ReviewQueueItemType,
    SetDocumentExpiryInput,
    SetDocumentExpiryPayload,
    SharedFileType,
    ShareFileInput,
    ShareFilePayload,
    UploadDocumentInput,
    UploadDocumentPayload,
    WaiveDocumentInput,
)
from app.schema.dossiers import DossierType
from app.schema.steps import DocumentType, DocumentVersionType
from app.services import document_expiry, document_requests, documents, downloads, shared_files
from app.services.codes import DocumentErrorCode as Code


def _errors(error: DomainError) -> list[DocumentUserError]:
    return user_errors(error, DocumentUserError, DocumentErrorCode)


def _storage(info: Info) -> Storage:
    return info.context.request.app.state.storage


async def _fresh_dossier(document: Document) -> Dossier:
    return await Dossier.get(id=document.dossier_id)


@strawberry.type
class DocumentQuery:
    @strawberry.field(
        description="Agents: document versions waiting for review, oldest first; "
        "`mine` keeps those of steps assigned to me."
    )
    async def review_queue(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        mine: bool = False,
    ) -> Connection[ReviewQueueItemType]:
        viewer = await info.context.require_agent()
        joined = pages.review_queue_page(info)  # the page with its context, one statement
        return await paginate(
            documents.review_queue(viewer, mine=mine),
            first=first,
            after=after,
            last=last,
            before=before,
            order=("uploaded_at", "id"),
            fetch=joined.fetch if joined is not None else None,
        )

    @strawberry.field(
        description="Agents: documents whose approved version expires within `within` days "
        "(or has expired), soonest first."
    )
    async def expiring_documents(
        self,
        info: Info,
        within: int,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[DocumentType]:
        viewer = await info.context.require_agent()
        try:
            queryset = document_expiry.expiring_documents(viewer, within)
        except DomainError as error:
            raise BadUserInput(error.message) from None
        return await paginate(
            queryset,
            first=first,
            after=after,
            last=None,
            before=None,
            order=("expires_on", "id"),
        )

    @strawberry.field(
        description="A signed link to download one file, valid for five minutes at most: "
        "for the dossier's client and agents."
    )
    async def document_download_url(self, info: Info, version_id: strawberry.ID) -> DownloadUrlType:
        viewer = await info.context.require_viewer()
        signed = await downloads.download_url(viewer, parse_id(version_id, what="document version"))
        return DownloadUrlType(url=signed.url, expires_at=signed.expires_at)


async def _request_payload(document: Any) -> DocumentRequestPayload:
    """A requested or waived document, with its dossier as the change left it."""
    return DocumentRequestPayload(
        document=row_as(DocumentType, document),
        dossier=row_as(DossierType, await _fresh_dossier(document)),
    )


NO_FILE = DomainError(Code.FILE_REQUIRED, "Send the file as a multipart upload.", "file")


def _uploaded(file: Any) -> documents.UploadedFile | None:
    """The multipart request's file part, or None when the variable holds no file."""
    if not (hasattr(file, "read") and hasattr(file, "filename")):
        return None
    return documents.UploadedFile(file_name=file.filename, read=file.read)


@strawberry.type
class DocumentMutation:
    @strawberry.mutation(
        description="Upload a new version of a document of the dossier's current step "
        "(multipart request; the dossier's client or an agent)."
    )
    async def upload_document(
        self, info: Info, input: UploadDocumentInput
    ) -> UploadDocumentPayload:
        viewer = await info.context.require_viewer()
        document_id = parse_id(input.document_id, what="document")
        file = input.file
        upload = _uploaded(file)
        if upload is None:
            return UploadDocumentPayload(user_errors=_errors(NO_FILE))
        try:
            document, version = await documents.upload_document(
                viewer,
                document_id,
                upload,
                storage=_storage(info),
                expires_on=input.expires_on,
            )
        except DomainError as error:
            return UploadDocumentPayload(user_errors=_errors(error))
        finally:
            if hasattr(file, "close"):
                await file.close()
        return UploadDocumentPayload(
            document=row_as(DocumentType, document),
            version=row_as(DocumentVersionType, version),
            dossier=row_as(DossierType, await _fresh_dossier(document)),
        )

    @strawberry.mutation(
        description="Agents: approve a document's current version, request changes or "
        "reject it (a reason is required for the last two)."
    )
    async def review_document(
        self, info: Info, input: ReviewDocumentInput
    ) -> ReviewDocumentPayload:
        viewer = await info.context.require_agent()
        try:
            review, document, dossier = await documents.review_document(
                viewer,
                parse_id(input.version_id, what="document version"),
                input.decision,
                input.reason,
                input.notes,
                expires_on=input.expires_on,
            )
        except DomainError as error:
            return ReviewDocumentPayload(user_errors=_errors(error))
        return ReviewDocumentPayload(
            review=row_as(DocumentReviewType, review),
            document=row_as(DocumentType, document),
            dossier=row_as(DossierType, dossier),
        )

    @strawberry.mutation(
        description="Agents: set or correct a document version's expiry date; for the "
        "current approved version its reminders start again from the new date."
    )
    async def set_document_expiry(
        self, info: Info, input: SetDocumentExpiryInput
    ) -> SetDocumentExpiryPayload:
        viewer = await info.context.require_agent()
        try:
            version, document = await document_expiry.set_document_expiry(
                viewer, parse_id(input.version_id, what="document version"), input.expires_on
            )
        except DomainError as error:
            return SetDocumentExpiryPayload(user_errors=_errors(error))
        return SetDocumentExpiryPayload(
            version=row_as(DocumentVersionType, version),
            document=row_as(DocumentType, document),
        )

    @strawberry.mutation(
        description="Agents: ask the client for one more document in the dossier's current "
        "step, of a document type or ad hoc (a label, allowed extensions, a size limit)."
    )
    async def request_document(
        self, info: Info, input: RequestDocumentInput
    ) -> DocumentRequestPayload:
        viewer = await info.context.require_agent()
        step_instance_id = parse_id(input.step_instance_id, what="step")
        try:
            member_id = (
                parse_id(input.member_id, what="member") if input.member_id is not None else None
            )
        except NotFound:  # a malformed member id: as a member not of this dossier
            return DocumentRequestPayload(
                user_errors=_errors(
                    DomainError(Code.UNKNOWN_MEMBER, "No such member of this dossier.", "memberId")
                )
            )
        try:
            document_type_id = (
                parse_id(input.document_type_id, what="document type")
                if input.document_type_id is not None
                else None
            )
        except NotFound:  # a malformed type id: the input's fault, said in the payload
            return DocumentRequestPayload(
                user_errors=_errors(
                    DomainError(
                        Code.UNKNOWN_DOCUMENT_TYPE, "No such document type.", "documentTypeId"
                    )
                )
            )
        try:
            document, _dossier = await document_requests.request_document(
                viewer,
                step_instance_id,
                document_type_id=document_type_id,
                label=input.label,
                allowed_extensions=input.allowed_extensions,
                max_file_size_mb=input.max_file_size_mb,
                note=input.note,
                due_at=input.due_at,
                member_id=member_id,
            )
        except DomainError as error:
            return DocumentRequestPayload(user_errors=_errors(error))
        return await _request_payload(document)

    @strawberry.mutation(
        description="Agents: the client need not send this document (WAIVED, with the "
        "reason); the step completes once the others are approved."
    )
    async def waive_document(self, info: Info, input: WaiveDocumentInput) -> DocumentRequestPayload:
        viewer = await info.context.require_agent()
        try:
            document, _dossier = await document_requests.waive_document(
                viewer, parse_id(input.document_id, what="document"), input.reason
            )
        except DomainError as error:
            return DocumentRequestPayload(user_errors=_errors(error))
        return await _request_payload(document)

    @strawberry.mutation(
        description="Agents: share a file with the dossier (multipart request, as "
        "uploadDocument); the client is told and can download it."
    )
    async def share_file(self, info: Info, input: ShareFileInput) -> ShareFilePayload:
        viewer = await info.context.require_agent()
        dossier_id = await dossier_id_of(input.dossier_id)
        file = input.file
        upload = _uploaded(file)
        if upload is None:
            return ShareFilePayload(user_errors=_errors(NO_FILE))
        try:
            shared, _dossier = await shared_files.share_file(
                viewer,
                dossier_id,
                upload,
                note=input.note,
                storage=_storage(info),
            )
        except DomainError as error:
            return ShareFilePayload(user_errors=_errors(error))
        finally:
            if hasattr(file, "close"):
                await file.close()
        return ShareFilePayload(shared_file=row_as(SharedFileType, shared))
