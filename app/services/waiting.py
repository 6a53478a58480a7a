"""Which versions wait in the review queue: exactly those whose `awaiting_review_since`
is set (partial index `idx_document_versions_awaiting`), so a page of the queue is a walk
of that index with its LIMIT and its count an index-only count, whatever the firm's age.

The overdue pages likewise walk only the open steps of running dossiers: `stopped_at` is
set on a dossier's open steps when it stops running and cleared when it runs again.

A version waits while it is the current version of an UPLOADED document, on a step that is
not done, of a running dossier. The documents service sets the column on upload and clears
it on review and on the next upload; the workflow calls `leave` when a dossier stops
running (on hold, cancelled, completed) or a step is skipped with documents still to
review, and `rejoin` when a dossier runs again (released from hold): its versions come
back with the time they were uploaded, so they keep their place in the queue.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tortoise.expressions import F, Subquery

from app.models import Document, DocumentVersion, StepInstance
from app.models.enums import ACTIVE_DOSSIER_STATUSES, DocumentStatus


async def leave(dossier_id: uuid.UUID, *, step_instance_id: uuid.UUID | None = None) -> None:
    """The dossier's (or only that step's) versions leave the queue; a whole dossier's
    open steps are marked stopped (they leave the overdue pages)."""
    documents = Document.filter(dossier_id=dossier_id)
    if step_instance_id is not None:
        documents = documents.filter(step_instance_id=step_instance_id)
    else:
        await StepInstance.filter(
            dossier_id=dossier_id, completed_at__isnull=True, stopped_at__isnull=True
        ).update(stopped_at=datetime.now(UTC))
    await DocumentVersion.filter(
        awaiting_review_since__isnull=False,
        document_id__in=Subquery(documents.values("id")),
    ).update(awaiting_review_since=None)


async def rejoin(dossier_id: uuid.UUID) -> None:
    """The running dossier's open steps run again, and its uploaded versions on them wait
    again."""
    await StepInstance.filter(dossier_id=dossier_id, stopped_at__isnull=False).update(
        stopped_at=None
    )
    current = Document.filter(
        dossier_id=dossier_id,
        status=DocumentStatus.UPLOADED,
        step_instance__completed_at__isnull=True,
        dossier__status__in=[s.value for s in ACTIVE_DOSSIER_STATUSES],
    ).values("current_version_id")
    await DocumentVersion.filter(
        awaiting_review_since__isnull=True, id__in=Subquery(current)
    ).update(awaiting_review_since=F("uploaded_at"))
