"""Documents requested on the fly and waived (issue 18, item 3): agents only.

`request_document` adds a PENDING document to a dossier's current (open) step: of a
document type, or ad hoc (a label, allowed extensions and a size limit, checked like a
document type's), with a note for the client and its own due date; DOCUMENT_REQUESTED.
`waive_document` marks a document of the current step WAIVED (who, why, when);
DOCUMENT_WAIVED. Both then `settle` the dossier: the step completes once every document
left (non-waived) is approved, through the same engine code as a review.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, Forbidden, NotFound
from app.models import Document, DocumentType, DocumentVersion, Dossier, DossierMember, StepInstance
from app.models.enums import DocumentStatus, DossierStatus, EventType
from app.services import events
from app.services.catalog import check_extensions, check_size
from app.services.codes import DocumentErrorCode as Code
from app.services.document_specs import spec_of
from app.services.validation import check_name, check_text
from app.services.workflow.machine import ACTIVE, lock_dossier
from app.services.workflow.steps import settle

NOTE_MAX = 2000
# Documents agents may add to one step on the fly, waived ones included (the lists of
# documents in the schema are bounded by the catalogue's counts plus this per step, in the
# node budget: app/schema/list_bounds.py).
MAX_REQUESTED_PER_STEP = 3


def _require_agent(viewer: Viewer) -> None:
    if viewer.agent is None:
        raise Forbidden("Only agents request or waive documents.")


def _check_open(dossier: Dossier, step_instance_id: uuid.UUID | None, field: str) -> None:
    if dossier.status not in ACTIVE:
        raise DomainError(
            Code.DOSSIER_NOT_ACTIVE,
            f"The dossier is {DossierStatus(dossier.status).value}: its documents stay as they "
            "are.",
            field,
        )
    if step_instance_id != dossier.current_step_instance_id:
        raise DomainError(
            Code.NOT_CURRENT_STEP, "This step is not the dossier's current step.", field
        )


async def request_document(
    viewer: Viewer,
    step_instance_id: uuid.UUID,
    *,
    document_type_id: uuid.UUID | None = None,
    label: str | None = None,
    allowed_extensions: Sequence[str] | None = None,
    max_file_size_mb: int | None = None,
    note: str | None = None,
    due_at: datetime | None = None,
    member_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> tuple[Document, Dossier]:
    """`member_id`: asked of that member of the dossier (they send it), not the dossier."""
    _require_agent(viewer)
    step = await StepInstance.filter(id=step_instance_id).first()
    if step is None:
        raise NotFound("No such step.")
    now = now or datetime.now(UTC)
    ad_hoc = label is not None or allowed_extensions is not None or max_file_size_mb is not None
    if (document_type_id is None) == (not ad_hoc) or (
        ad_hoc and (label is None or allowed_extensions is None or max_file_size_mb is None)
    ):
        raise DomainError(
            Code.TYPE_OR_SPEC,
            "Ask for a document type, or for a label with allowed extensions and a size "
            "limit: one or the other.",
            "documentTypeId",
        )
    document_type: DocumentType | None = None
    spec: dict = {}
    if document_type_id is not None:
        document_type = await DocumentType.filter(id=document_type_id).first()
        if document_type is None:
            raise DomainError(
                Code.UNKNOWN_DOCUMENT_TYPE, "No such document type.", "documentTypeId"
            )
        if document_type.archived_at is not None:
            raise DomainError(
                Code.DOCUMENT_TYPE_ARCHIVED,
                "This document type is archived: it is no longer asked for.",
                "documentTypeId",
            )
    else:
        spec = {
            "label": check_name(label or "", "label"),
            "allowed_extensions": check_extensions(allowed_extensions or ()),
            "max_file_size_mb": check_size(int(max_file_size_mb or 0)),
        }
    if note is not None:
        note = check_text(note, "note", max_length=NOTE_MAX, required=False) or None
    if due_at is not None and due_at <= now:
        raise DomainError(Code.INVALID_DUE_DATE, "The due date must be in the future.", "dueAt")

    async with in_transaction():
        dossier = await lock_dossier(step.dossier_id)
        _check_open(dossier, step.id, "stepInstanceId")
        if (
            await Document.filter(step_instance_id=step.id, requested_by_id__isnull=False).count()
            >= MAX_REQUESTED_PER_STEP
        ):
            raise DomainError(
                Code.TOO_MANY_REQUESTS,
                f"At most {MAX_REQUESTED_PER_STEP} documents can be requested in a step.",
                "stepInstanceId",
            )
        if (
            member_id is not None
            and not await DossierMember.filter(
                id=member_id, dossier_id=dossier.id, removed_at=None
            ).exists()
        ):
            raise DomainError(Code.UNKNOWN_MEMBER, "No such member of this dossier.", "memberId")
        if (
            document_type is not None
            and await Document.filter(
                step_instance_id=step.id, document_type_id=document_type.id, member_id=member_id
            )
            .exclude(status=DocumentStatus.WAIVED)
            .exists()
        ):
            raise DomainError(
                Code.ALREADY_REQUESTED,
                f"This step already asks for a {document_type.label}.",
                "documentTypeId",
            )
        document = await Document.create(
            dossier_id=dossier.id,
            document_type_id=document_type.id if document_type else None,
            step_instance_id=step.id,
            status=DocumentStatus.PENDING,
            requested_by_id=viewer.actor_id,
            member_id=member_id,
            note=note,
            due_at=due_at,
            **spec,
        )
        described = spec_of(document, document_type)
        await events.record(
            "dossier",
            dossier.id,
            EventType.DOCUMENT_REQUESTED,
            actor=viewer,
            payload={
                "dossierId": str(dossier.id),
                "documentId": str(document.id),
                "stepInstanceId": str(step.id),
                "documentTypeId": str(document_type.id) if document_type else None,
                "document": described.label,
                "note": note,
                "memberId": str(member_id) if member_id else None,
                "dueAt": due_at.isoformat() if due_at else None,
            },
        )
        await settle(dossier, actor=viewer, reason=f"Document requested: {described.label}.")
    return document, dossier


async def waive_document(
    viewer: Viewer, document_id: uuid.UUID, reason: str, *, now: datetime | None = None
) -> tuple[Document, Dossier]:
    _require_agent(viewer)
    document = await Document.filter(id=document_id).first()
    if document is None:
        raise NotFound("No such document.")
    reason = check_text(reason or "", "reason", max_length=NOTE_MAX)
    async with in_transaction():
        dossier = await lock_dossier(document.dossier_id)
        document = await Document.filter(id=document.id).select_for_update().get()
        _check_open(dossier, document.step_instance_id, "documentId")
        if document.status in (DocumentStatus.APPROVED, DocumentStatus.WAIVED):
            raise DomainError(
                Code.NOT_WAIVABLE,
                f"This document is {DocumentStatus(document.status).value}: nothing to waive.",
                "documentId",
            )
        if document.status == DocumentStatus.UPLOADED:  # its version leaves the review queue
            await DocumentVersion.filter(
                document_id=document.id, awaiting_review_since__isnull=False
            ).update(awaiting_review_since=None)
        document.status = DocumentStatus.WAIVED
        document.waived_by_id = viewer.actor_id
        document.waived_reason = reason
        document.waived_at = now or datetime.now(UTC)
        await document.save(
            update_fields=["status", "waived_by_id", "waived_reason", "waived_at", "updated_at"]
        )
        document_type = (
            await DocumentType.filter(id=document.document_type_id).first()
            if document.document_type_id
            else None
        )
        await events.record(
            "dossier",
            dossier.id,
            EventType.DOCUMENT_WAIVED,
            actor=viewer,
            payload={
                "dossierId": str(dossier.id),
                "documentId": str(document.id),
                "stepInstanceId": str(document.step_instance_id),
                "document": spec_of(document, document_type).label,
                "reason": reason,
            },
        )
        await settle(dossier, actor=viewer, reason=f"Document waived: {reason}")
    return document, dossier
