"""Progress: where a dossier stands and what is missing, as clients and agents see it (a
read model; the chasing worker, app.services.chasing, sends reminders from the same
reads).

`progress_of`, for a batch of dossiers in five queries: steps done / total, documents
approved / total (documents of steps not started yet counted from their types, skipped
steps left out), and the next actions — the documents of the current step the client
still has to send (PENDING, CHANGES_REQUESTED, or REJECTED, which the workflow handles as
a change request; those an agent requested on the fly too, WAIVED ones never), with their
types' rules (or a request's own) and the last review's reason. A dossier on
hold, completed or cancelled has no next action: it takes no upload.

`overdue_steps`: the agents' list of running dossiers whose current step is past its due
date.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from app.models import (
    Document,
    DocumentReview,
    DocumentType,
    Dossier,
    StepDocumentType,
    StepInstance,
)
from app.models.enums import DocumentStatus
from app.services.catalog import asked_for
from app.services.document_specs import DocumentSpec, spec_of
from app.services.workflow.machine import ACTIVE

# What the client still has to send (REJECTED works like a change request).
MISSING = (DocumentStatus.PENDING, DocumentStatus.CHANGES_REQUESTED, DocumentStatus.REJECTED)
REVIEWED = (DocumentStatus.CHANGES_REQUESTED, DocumentStatus.REJECTED)


@dataclass(frozen=True)
class NextAction:
    """A document the client has to send, with what its type accepts."""

    document: Document
    document_type: DocumentType | None  # None: requested on the fly without a type
    reason: str | None  # why the last version was sent back, if it was
    due_at: datetime | None

    @property
    def status(self) -> DocumentStatus:
        return DocumentStatus(self.document.status)

    @property
    def spec(self) -> DocumentSpec:
        """Its label and rules: its type's, or those of an ad-hoc request."""
        return spec_of(self.document, self.document_type)


@dataclass(frozen=True)
class Progress:
    dossier: Dossier
    steps_done: int  # completed or skipped
    steps_total: int
    documents_approved: int
    documents_total: int
    current_step: StepInstance | None
    next_actions: list[NextAction] = field(default_factory=list)


async def last_reasons(documents: Sequence[Document]) -> dict[uuid.UUID, str | None]:
    """The reason of the latest review of each (sent back) document's current version."""
    versions = {
        d.current_version_id: d.id
        for d in documents
        if d.status in REVIEWED and d.current_version_id is not None
    }
    if not versions:
        return {}
    reasons: dict[uuid.UUID, str | None] = {}
    rows = await DocumentReview.filter(document_version_id__in=list(versions)).order_by(
        "reviewed_at", "id"
    )
    for review in rows:  # the latest wins
        reasons[versions[review.document_version_id]] = review.reason
    return reasons


def next_actions_of(
    dossier: Dossier,
    step: StepInstance | None,
    documents: Sequence[Document],
    types: dict[uuid.UUID, DocumentType],
    reasons: dict[uuid.UUID, str | None],
) -> list[NextAction]:
    """What the client has to send for `step`, the dossier's current step (`documents`
    may hold others): nothing unless the dossier is running."""
    if step is None or dossier.status not in ACTIVE:
        return []
    return [
        NextAction(
            document=d,
            document_type=types[d.document_type_id] if d.document_type_id else None,
            reason=reasons.get(d.id),
            due_at=d.due_at or step.due_at,  # a requested document's own due date
        )
        for d in documents
        if d.step_instance_id == step.id and d.status in MISSING
    ]


async def progress_of(dossiers: Sequence[Dossier]) -> list[Progress]:
    """Each dossier's progress, in order: five queries for the whole batch."""
    if not dossiers:
        return []
    ids = list({d.id for d in dossiers})
    steps: dict[uuid.UUID, list[StepInstance]] = defaultdict(list)
    for step in await StepInstance.filter(dossier_id__in=ids).order_by("position"):
        steps[step.dossier_id].append(step)
    documents: dict[uuid.UUID, list[Document]] = defaultdict(list)
    all_documents = await Document.filter(dossier_id__in=ids).order_by("created_at", "id")
    for document in all_documents:
        documents[document.dossier_id].append(document)
    # Steps to come: their documents do not exist yet, their types say how many there will be.
    upcoming = {
        s.step_id
        for group in steps.values()
        for s in group
        if s.started_at is None and s.completed_at is None
    }
    type_ids = {d.document_type_id for d in all_documents if d.document_type_id}
    types: dict[uuid.UUID, DocumentType] = {}
    if type_ids:
        types = {t.id: t for t in await DocumentType.filter(id__in=list(type_ids))}
    # When each upcoming step's document types were archived (None: they are not).
    archived_per_step: dict[uuid.UUID, list[datetime | None]] = defaultdict(list)
    if upcoming:
        for link in await StepDocumentType.filter(step_id__in=list(upcoming)).values(
            "step_id", archived_at="document_type__archived_at"
        ):
            archived_per_step[link["step_id"]].append(link["archived_at"])
    active_current = {d.current_step_instance_id for d in dossiers if d.status in ACTIVE} - {None}
    reasons = await last_reasons([d for d in all_documents if d.step_instance_id in active_current])

    out = []
    for dossier in dossiers:
        own_steps = steps.get(dossier.id, [])
        skipped = {s.id for s in own_steps if s.skipped_at is not None}
        counted = [
            d
            for d in documents.get(dossier.id, [])
            if d.step_instance_id is not None
            and d.step_instance_id not in skipped
            and d.status != DocumentStatus.WAIVED  # no longer needed
        ]
        to_come = sum(
            sum(
                1
                for at in archived_per_step.get(s.step_id, ())
                if asked_for(at, dossier.created_at)
            )
            for s in own_steps
            if s.started_at is None and s.completed_at is None
        )
        current = next((s for s in own_steps if s.id == dossier.current_step_instance_id), None)
        out.append(
            Progress(
                dossier=dossier,
                steps_done=sum(1 for s in own_steps if s.completed_at is not None),
                steps_total=len(own_steps),
                documents_approved=sum(1 for d in counted if d.status == DocumentStatus.APPROVED),
                documents_total=len(counted) + to_come,
                current_step=current,
                next_actions=next_actions_of(
                    dossier, current, documents.get(dossier.id, []), types, reasons
                ),
            )
        )
    return out


def overdue_steps(*, now: datetime | None = None, agent_id: uuid.UUID | None = None) -> QuerySet:
    """Current steps of running dossiers past their due date (page them by due date:
    the most overdue first); `agent_id` keeps the steps assigned to that agent."""
    now = now or datetime.now(UTC)
    current = Dossier.filter(status__in=list(ACTIVE)).values("current_step_instance_id")
    # stopped_at IS NULL: the open steps of running dossiers (idx_step_instances_running_due),
    # not those of the dossiers cancelled or completed over the years
    queryset = StepInstance.filter(
        due_at__lt=now,
        completed_at__isnull=True,
        stopped_at__isnull=True,
        id__in=Subquery(current),
    )
    if agent_id is not None:
        queryset = queryset.filter(assigned_to_id=agent_id)
    return queryset
