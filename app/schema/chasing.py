"""Progress, next actions, overdue steps and moving a due date: the shapes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.context import Info
from app.schema.catalog import DocumentTypeType
from app.schema.common import gid, row_as
from app.schema.enums import DocumentStatus
from app.schema.identity import AgentType
from app.schema.steps import DocumentType, StepInstanceType
from app.services import deadlines
from app.services.progress import NextAction, Progress

if TYPE_CHECKING:
    from app.schema.dossiers import DossierType


def _now() -> datetime:
    return datetime.now(UTC)


@strawberry.type(
    name="NextAction",
    description="A document the client has to send now, with what its type accepts.",
)
class NextActionType:
    _action: strawberry.Private[NextAction]

    @strawberry.field
    def document(self) -> DocumentType:
        return row_as(DocumentType, self._action.document)

    @strawberry.field(description="Null for a document requested without a type.")
    def document_type(self) -> DocumentTypeType | None:
        document_type = self._action.document_type
        return row_as(DocumentTypeType, document_type) if document_type else None

    @strawberry.field(description="The document type's label (or the requested one's).")
    def label(self) -> str:
        return self._action.spec.label

    @strawberry.field(description="The agent's note, for a document requested on the fly.")
    def note(self) -> str | None:
        return self._action.document.note

    @strawberry.field(description="PENDING (never sent), CHANGES_REQUESTED or REJECTED.")
    def status(self) -> DocumentStatus:
        return self._action.status

    @strawberry.field(description="File extensions the document type accepts.")
    def allowed_extensions(self) -> list[str]:
        return list(self._action.spec.allowed_extensions)

    @strawberry.field
    def max_file_size_mb(self) -> int:
        return self._action.spec.max_file_size_mb

    @strawberry.field(description="Why the last version was sent back (null if never reviewed).")
    def reason(self) -> str | None:
        return self._action.reason

    @strawberry.field(
        description="The step's due date, shared by its documents (a requested document's own)."
    )
    def due_at(self) -> datetime | None:
        return self._action.due_at

    @strawberry.field
    def is_overdue(self) -> bool:
        # next actions exist only in running dossiers, for their current step
        return self._action.due_at is not None and self._action.due_at < _now()


@strawberry.type(
    name="DossierProgress",
    description="Where a dossier stands, and what the client must do next.",
)
class DossierProgressType:
    _progress: strawberry.Private[Progress]

    @strawberry.field(description="Steps completed or skipped.")
    def steps_done(self) -> int:
        return self._progress.steps_done

    @strawberry.field
    def steps_total(self) -> int:
        return self._progress.steps_total

    @strawberry.field
    def documents_approved(self) -> int:
        return self._progress.documents_approved

    @strawberry.field(
        description="Documents the dossier asks for, those of steps to come included "
        "(skipped steps left out)."
    )
    def documents_total(self) -> int:
        return self._progress.documents_total

    @strawberry.field
    def current_step(self) -> StepInstanceType | None:
        step = self._progress.current_step
        return row_as(StepInstanceType, step) if step is not None else None

    @strawberry.field(description="The current step's due date.")
    def due_at(self) -> datetime | None:
        step = self._progress.current_step
        return step.due_at if step else None

    @strawberry.field(description="The current step is past its due date.")
    def is_overdue(self) -> bool:
        step = self._progress.current_step
        if step is None:
            return False
        return deadlines.is_overdue(
            step.due_at, step.completed_at, self._progress.dossier.status, _now()
        )

    @strawberry.field(
        description="The documents of the current step the client still has to send "
        "(empty while the dossier is on hold, completed or cancelled)."
    )
    def next_actions(self) -> list[NextActionType]:
        return [NextActionType(_action=a) for a in self._progress.next_actions]


async def dossier_progress(info: Info, dossier: object) -> DossierProgressType:
    return DossierProgressType(_progress=await info.context.loaders.progress.load(dossier))


@strawberry.type(name="OverdueDossier", description="A dossier whose current step is overdue.")
class OverdueDossierType:
    """Resolved over the overdue StepInstance row."""

    if TYPE_CHECKING:  # the root value is the StepInstance row: columns read below
        dossier_id: uuid.UUID
        assigned_to_id: uuid.UUID | None
        due_at: datetime  # set: the step is overdue

    @strawberry.field(description="The overdue step's id.")
    def id(self) -> strawberry.ID:
        return gid(self.id)

    @strawberry.field
    async def dossier(
        self, info: Info
    ) -> Annotated[DossierType, strawberry.lazy("app.schema.dossiers")]:
        return await info.context.loaders.dossier.load(self.dossier_id)

    @strawberry.field(description="The overdue step (the dossier's current one).")
    def step(self) -> StepInstanceType:
        return row_as(StepInstanceType, self)

    @strawberry.field(name="dueAt")  # the column of the same name is read from the row
    def resolve_due_at(self) -> datetime:
        return self.due_at

    @strawberry.field(description="How late the step is, in seconds.")
    def overdue_seconds(self) -> int:
        return max(0, int((_now() - self.due_at).total_seconds()))

    @strawberry.field(description="The agent in charge of the step, if one is assigned.")
    async def assigned_to(self, info: Info) -> AgentType | None:
        if self.assigned_to_id is None:
            return None
        return await info.context.loaders.agent.load(self.assigned_to_id)


@strawberry.input
class MoveStepDueDateInput:
    step_instance_id: strawberry.ID
    due_at: datetime = strawberry.field(description="The new due date, in the future.")
    reason: str = strawberry.field(
        description="Required; the client is told, the timeline keeps it."
    )
