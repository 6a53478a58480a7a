"""Which document types a step asks for (`step_document_types`): attach, detach, and the
compatibility column `document_types.required_step_id` (the first step a type was
attached to, still attached) kept in step. See app.services.catalog.
"""

from __future__ import annotations

import uuid

from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import DocumentType, Step, StepDocumentType
from app.models.enums import EventType
from app.services import events
from app.services.catalogue_bounds import forget_catalogue_bounds
from app.services.codes import CatalogErrorCode as Code

MAX_DOCUMENT_TYPES_PER_STEP = 50
MAX_POSITION = 10_000


def check_position(position: int, field: str = "position") -> int:
    if not 0 <= position <= MAX_POSITION:
        raise DomainError(
            Code.INVALID_POSITION, f"The position must be 0 to {MAX_POSITION}.", field
        )
    return position


async def step_to_attach(step_id: str | None, field: str) -> Step | None:
    """The step a document type is to be attached to: it exists and is not archived."""
    if step_id is None:
        return None
    step = await Step.filter(id=step_id).first()
    if step is None:
        raise DomainError(Code.UNKNOWN_STEP, "No such step.", field)
    if step.archived_at is not None:
        raise DomainError(
            Code.STEP_ARCHIVED, "This step is archived: it asks for no new document.", field
        )
    return step


async def move_required_step(document_type: DocumentType, step: Step | None) -> uuid.UUID | None:
    """`requiredStepId` set on a (locked) document type: attach it to `step` (if it is not
    already), detach it from the step it named before; the step it names now."""
    old = document_type.required_step_id
    if step is not None and old == step.id:
        return old
    if step is not None:
        if document_type.archived_at is not None:
            raise DomainError(
                Code.DOCUMENT_TYPE_ARCHIVED,
                "This document type is archived: no step can ask for it.",
                "requiredStepId",
            )
        await _link(step, document_type, position=None)
    if old is not None:
        await StepDocumentType.filter(step_id=old, document_type_id=document_type.id).delete()
    return step.id if step is not None else await _first_step(document_type)


async def _first_step(document_type: DocumentType) -> uuid.UUID | None:
    """The step the type was attached to first, of those that still ask for it."""
    link = (
        await StepDocumentType.filter(document_type_id=document_type.id)
        .order_by("created_at", "id")
        .first()
    )
    return link.step_id if link is not None else None


async def _link(step: Step, document_type: DocumentType, *, position: int | None) -> bool:
    """Attach (or move to `position`; None: where it is, 0 if new); False when it was
    already so."""
    link = await StepDocumentType.filter(step_id=step.id, document_type_id=document_type.id).first()
    if link is not None:
        if position is None or link.position == position:
            return False
        link.position = position
        await link.save()
        return True
    if await StepDocumentType.filter(step_id=step.id).count() >= MAX_DOCUMENT_TYPES_PER_STEP:
        raise DomainError(
            Code.TOO_MANY_DOCUMENT_TYPES,
            f"A step asks for at most {MAX_DOCUMENT_TYPES_PER_STEP} document types.",
            "stepId",
        )
    await StepDocumentType.create(
        step_id=step.id, document_type_id=document_type.id, position=position or 0
    )
    return True


async def _locked_pair(
    step_id: uuid.UUID, document_type_id: uuid.UUID
) -> tuple[Step, DocumentType]:
    """The step and the document type (locked: its `required_step_id` may change)."""
    document_type = await DocumentType.filter(id=document_type_id).select_for_update().first()
    if document_type is None:
        raise NotFound("No such document type.")
    step = await Step.filter(id=step_id).first()
    if step is None:
        raise NotFound("No such step.")
    return step, document_type


async def attach_document_type(
    actor: Viewer, step_id: uuid.UUID, document_type_id: uuid.UUID, *, position: int = 0
) -> tuple[Step, DocumentType]:
    """The step asks for the document type from now on: each dossier gets a document of it
    when that step starts (also the dossiers already open, whose step has not started).
    Attaching it again moves it to `position`, or changes nothing."""
    check_position(position)
    async with in_transaction():
        step, document_type = await _locked_pair(step_id, document_type_id)
        if step.archived_at is not None:
            raise DomainError(
                Code.STEP_ARCHIVED, "This step is archived: it asks for no new document.", "stepId"
            )
        if document_type.archived_at is not None:
            raise DomainError(
                Code.DOCUMENT_TYPE_ARCHIVED,
                "This document type is archived: no step can ask for it.",
                "documentTypeId",
            )
        if await _link(step, document_type, position=position):
            if document_type.required_step_id is None:
                document_type.required_step_id = step.id
                await document_type.save()
            await events.record(
                "document_type",
                document_type.id,
                EventType.DOCUMENT_TYPE_ATTACHED,
                actor=actor,
                payload={"stepId": str(step.id), "position": position},
            )
    forget_catalogue_bounds()
    return step, document_type


async def detach_document_type(
    actor: Viewer, step_id: uuid.UUID, document_type_id: uuid.UUID
) -> tuple[Step, DocumentType]:
    """The step no longer asks for the document type. The documents dossiers already have
    stay (with their versions and reviews); detaching it again changes nothing."""
    async with in_transaction():
        step, document_type = await _locked_pair(step_id, document_type_id)
        deleted = await StepDocumentType.filter(
            step_id=step.id, document_type_id=document_type.id
        ).delete()
        if deleted:
            if document_type.required_step_id == step.id:
                document_type.required_step_id = await _first_step(document_type)
                await document_type.save()
            await events.record(
                "document_type",
                document_type.id,
                EventType.DOCUMENT_TYPE_DETACHED,
                actor=actor,
                payload={"stepId": str(step.id)},
            )
    forget_catalogue_bounds()
    return step, document_type
