"""The workflow's mutations' shapes and the dossier timeline."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import strawberry

from app.context import Info
from app.models import SharedFile
from app.schema.common import UserError, gid, page_size, row_as
from app.schema.documents import DocumentReviewType, SharedFileType
from app.schema.enums import ActorType, DossierStatus, RefundReason
from app.schema.identity import AgentType, Viewer
from app.schema.steps import DocumentType, DocumentVersionType, StepInstanceType
from app.services.codes import WorkflowErrorCode
from app.services.workflow.actions import StatusAction as DossierStatusAction
from app.services.workflow.timeline import TimelineItem
from app.services.workflow.timeline import TimelineKind as TimelineEntryKind

if TYPE_CHECKING:
    from app.schema.dossiers import DossierType

# Marks the classes themselves as GraphQL enums (see app.schema.enums).
strawberry.enum(WorkflowErrorCode, name="WorkflowErrorCode")
strawberry.enum(
    DossierStatusAction,
    name="DossierStatusAction",
    description="What an agent does to a dossier's status: HOLD it, RELEASE the hold "
    "(back to the status it had before), or CANCEL it.",
)
strawberry.enum(
    TimelineEntryKind, name="TimelineEntryKind", description="What a timeline entry is."
)


@strawberry.type
class WorkflowUserError(UserError):
    code: WorkflowErrorCode


@strawberry.input
class ChangeDossierStatusInput:
    dossier_id: strawberry.ID
    action: DossierStatusAction
    reason: str = strawberry.field(description="Required; kept in the status history.")


@strawberry.type
class ChangeDossierStatusPayload:
    dossier: Annotated[DossierType, strawberry.lazy("app.schema.dossiers")] | None = None
    user_errors: list[WorkflowUserError] = strawberry.field(default_factory=list)


@strawberry.input
class CompleteStepInput:
    step_instance_id: strawberry.ID


@strawberry.input
class SkipStepInput:
    step_instance_id: strawberry.ID
    reason: str | None = None


@strawberry.input
class AssignStepInput:
    step_instance_id: strawberry.ID
    agent_id: strawberry.ID | None = strawberry.field(
        default=None, description="An active agent; null to unassign."
    )


@strawberry.type
class StepInstancePayload:
    step_instance: StepInstanceType | None = None
    dossier: Annotated[DossierType, strawberry.lazy("app.schema.dossiers")] | None = None
    user_errors: list[WorkflowUserError] = strawberry.field(default_factory=list)


# --- the timeline ---------------------------------------------------------------------


@strawberry.interface(
    name="TimelineEntry", description="Something that happened to a dossier, in time order."
)
class TimelineEntry:
    kind: TimelineEntryKind
    at: datetime
    actor_type: ActorType
    _item: strawberry.Private[Any]

    @strawberry.field
    def actor_id(self) -> strawberry.ID | None:
        actor_id = self._item.actor_id
        return gid(actor_id) if actor_id else None

    @strawberry.field(description="The client or agent who did it; null for the system.")
    async def actor(self, info: Info) -> Viewer | None:
        actor_id = self._item.actor_id
        if actor_id is None:
            return None
        if self.actor_type == ActorType.AGENT:
            return await info.context.loaders.agent.load(actor_id)
        if self.actor_type == ActorType.USER:
            return await info.context.loaders.profile.load(actor_id)
        return None


@strawberry.type(name="StatusChangeEntry", description="The dossier's status changed.")
class StatusChangeEntry(TimelineEntry):
    old_status: DossierStatus | None
    new_status: DossierStatus
    reason: str | None


@strawberry.type(
    name="StepEntry", description="A step started, was completed, skipped or assigned."
)
class StepEntry(TimelineEntry):
    reason: str | None

    @strawberry.field
    async def step_instance(self, info: Info) -> StepInstanceType | None:
        raw = (self._item.row.payload or {}).get("stepInstanceId")
        return await info.context.loaders.step_instance.load(uuid.UUID(raw)) if raw else None

    @strawberry.field(description="For STEP_ASSIGNED: the agent now in charge (null: nobody).")
    async def assigned_to(self, info: Info) -> AgentType | None:
        raw = (self._item.row.payload or {}).get("agentId")
        return await info.context.loaders.agent.load(uuid.UUID(raw)) if raw else None


async def _payload_step(info: Info, item: Any) -> StepInstanceType | None:
    raw = (item.row.payload or {}).get("stepInstanceId")
    return await info.context.loaders.step_instance.load(uuid.UUID(raw)) if raw else None


def _payload_time(item: Any, key: str) -> datetime | None:
    raw = (item.row.payload or {}).get(key)
    return datetime.fromisoformat(raw) if raw else None


@strawberry.type(
    name="DueDateChangeEntry", description="An agent moved the due date of the current step."
)
class DueDateChangeEntry(TimelineEntry):
    reason: str | None

    @strawberry.field
    async def step_instance(self, info: Info) -> StepInstanceType | None:
        return await _payload_step(info, self._item)

    @strawberry.field
    def previous_due_at(self) -> datetime | None:
        return _payload_time(self._item, "previousDueAt")

    @strawberry.field
    def due_at(self) -> datetime | None:
        return _payload_time(self._item, "dueAt")


@strawberry.type(
    name="DocumentReminderEntry",
    description="The client was reminded of the documents still missing in the current step.",
)
class DocumentReminderEntry(TimelineEntry):
    @strawberry.field
    async def step_instance(self, info: Info) -> StepInstanceType | None:
        return await _payload_step(info, self._item)

    @strawberry.field(description="The step's due date when the reminder went out.")
    def due_at(self) -> datetime | None:
        return _payload_time(self._item, "dueAt")

    @strawberry.field(description="The documents the reminder listed.")
    async def documents(self, info: Info) -> list[DocumentType]:
        ids = [
            uuid.UUID(row["documentId"])
            for row in (self._item.row.payload or {}).get("missing", [])
            if isinstance(row, dict) and row.get("documentId")
        ]
        return [d for d in await info.context.loaders.document.load_many(ids) if d is not None]


@strawberry.type(name="DocumentUploadEntry", description="A file was uploaded for a document.")
class DocumentUploadEntry(TimelineEntry):
    @strawberry.field
    def version(self) -> DocumentVersionType:
        return self._item.row

    @strawberry.field
    async def document(self, info: Info) -> DocumentType:
        return await info.context.loaders.document.load(self._item.row.document_id)


@strawberry.type(name="DocumentReviewEntry", description="An agent reviewed a document version.")
class DocumentReviewEntry(TimelineEntry):
    @strawberry.field
    def review(self) -> DocumentReviewType:
        return self._item.row

    @strawberry.field
    async def document(self, info: Info) -> DocumentType:
        version = self._item.row.document_version
        return await info.context.loaders.document.load(version.document_id)


@strawberry.type(name="MessageEntry", description="A message was sent in the dossier's chat.")
class MessageEntry(TimelineEntry):
    @strawberry.field
    def message_id(self) -> strawberry.ID:
        return gid(self._item.row.id)

    @strawberry.field
    def content(self) -> str:
        return self._item.row.content


@strawberry.type(
    name="RefundEntry",
    description="Money went back to the client: part of the order that opened the dossier "
    "(ORDER_PARTIALLY_REFUNDED), or the rest of it (ORDER_REFUNDED).",
)
class RefundEntry(TimelineEntry):
    @strawberry.field(description="What this refund gave back (smallest currency unit).")
    def amount(self) -> int | None:
        return _payload_int(self._item, "amount")

    @strawberry.field(description="What the order has had refunded, this refund included.")
    def refunded_amount(self) -> int | None:
        return _payload_int(self._item, "refundedAmount")

    @strawberry.field
    def currency(self) -> str | None:
        return (self._item.row.payload or {}).get("currency")

    @strawberry.field(description="Why (named so as not to clash with the entries' text `reason`).")
    def refund_reason(self) -> RefundReason | None:
        raw = (self._item.row.payload or {}).get("reason")
        return RefundReason(str(raw)) if raw in RefundReason.__members__ else None

    @strawberry.field(description="The admin's note (agents only).")
    async def note(self, info: Info) -> str | None:
        viewer = await info.context.viewer()
        if viewer is None or not viewer.is_agent:
            return None
        return (self._item.row.payload or {}).get("note")


async def _payload_document(info: Info, item: Any) -> DocumentType | None:
    raw = (item.row.payload or {}).get("documentId")
    return await info.context.loaders.document.load(uuid.UUID(raw)) if raw else None


@strawberry.type(
    name="DocumentRequestEntry",
    description="An agent asked the client for a document (DOCUMENT_REQUESTED) or waived "
    "one (DOCUMENT_WAIVED: `reason` says why).",
)
class DocumentRequestEntry(TimelineEntry):
    reason: str | None

    @strawberry.field
    async def document(self, info: Info) -> DocumentType | None:
        return await _payload_document(info, self._item)

    @strawberry.field(description="The agent's note to the client (DOCUMENT_REQUESTED).")
    def note(self) -> str | None:
        return (self._item.row.payload or {}).get("note")


@strawberry.type(name="FileSharedEntry", description="An agent shared a file with the dossier.")
class FileSharedEntry(TimelineEntry):
    @strawberry.field
    async def shared_file(self) -> SharedFileType | None:
        raw = (self._item.row.payload or {}).get("sharedFileId")
        shared = await SharedFile.filter(id=uuid.UUID(raw)).first() if raw else None
        return row_as(SharedFileType, shared) if shared else None

    @strawberry.field
    def file_name(self) -> str | None:
        return (self._item.row.payload or {}).get("fileName")


def _payload_int(item: Any, key: str) -> int | None:
    raw = (item.row.payload or {}).get(key)
    return int(raw) if isinstance(raw, int) else None


class _Common(TypedDict):
    """What every timeline entry is built with."""

    kind: TimelineEntryKind
    at: datetime
    actor_type: ActorType
    _item: TimelineItem


def _entry(item: TimelineItem) -> TimelineEntry:
    common: _Common = {
        "kind": item.kind,
        "at": item.at,
        "actor_type": item.actor_type,
        "_item": item,
    }
    kind = TimelineEntryKind
    if item.kind == kind.STATUS_CHANGED:
        row = item.row
        return StatusChangeEntry(
            **common, old_status=row.old_status, new_status=row.new_status, reason=row.reason
        )
    if item.kind == kind.DOCUMENT_UPLOADED:
        return DocumentUploadEntry(**common)
    if item.kind == kind.DOCUMENT_REVIEWED:
        return DocumentReviewEntry(**common)
    if item.kind == kind.MESSAGE_SENT:
        return MessageEntry(**common)
    if item.kind == kind.DUE_DATE_CHANGED:
        return DueDateChangeEntry(**common, reason=(item.row.payload or {}).get("reason"))
    if item.kind == kind.DOCUMENT_REMINDER_SENT:
        return DocumentReminderEntry(**common)
    if item.kind in (kind.ORDER_REFUNDED, kind.ORDER_PARTIALLY_REFUNDED):
        return RefundEntry(**common)
    if item.kind in (kind.DOCUMENT_REQUESTED, kind.DOCUMENT_WAIVED):
        return DocumentRequestEntry(**common, reason=(item.row.payload or {}).get("reason"))
    if item.kind == kind.FILE_SHARED:
        return FileSharedEntry(**common)
    return StepEntry(**common, reason=(item.row.payload or {}).get("reason"))


async def timeline_entries(
    info: Info, dossier_id: uuid.UUID, last: int, before: datetime | None
) -> list[TimelineEntry]:
    page_size(None, last)  # `last` within 0..MAX_PAGE_SIZE
    items = await info.context.loaders.timeline.load((dossier_id, last, before))
    return [_entry(item) for item in items]


# Implementations of the interface: handed to the Schema (nothing else names them).
TIMELINE_TYPES = (
    StatusChangeEntry,
    StepEntry,
    DocumentUploadEntry,
    DocumentReviewEntry,
    MessageEntry,
    DueDateChangeEntry,
    DocumentReminderEntry,
    RefundEntry,
    DocumentRequestEntry,
    FileSharedEntry,
)
