"""Chasing: where a dossier stands, nudging the client for missing documents, escalating
overdue steps to agents.

Progress (`progress_of`, for a batch of dossiers in four queries): steps done / total,
documents approved / total (documents of steps not started yet counted from their types,
skipped steps left out), and the next actions — the documents of the current step the
client still has to send (PENDING, CHANGES_REQUESTED, or REJECTED, which the workflow
handles as a change request), with their types' rules and the last review's reason. A
dossier on hold, completed or cancelled has no next action: it takes no upload.

The worker jobs send what `app.services.deadlines` planned in `step_reminders`:
- `send_document_reminders`: for each dossier with a due DOCUMENTS slot, ONE
  DOCUMENT_REMINDER_SENT event listing everything missing in its current step (the
  notification rules turn it into a message on the client's channels). Several slots due
  together (a worker that was down, slots falling at the same time) make one message.
  Nothing is sent — the slot is SKIPPED — once nothing is missing, the step is done, or
  the dossier is on hold, completed or cancelled.
- `escalate_overdue_steps`: the ESCALATION slot of a step still overdue makes one
  STEP_OVERDUE event (the step's agent, or every active agent, is told).
- `plan_missing`: plans steps that started before their plan existed (older databases).

Never twice: a pass locks the dossiers it works on with `FOR UPDATE SKIP LOCKED` (another
worker takes other dossiers, or the next pass), re-reads their PENDING slots under that
lock, and moves each slot out of PENDING, with its event, in the same transaction; the
lock also orders a pass after any upload or review of the same dossier in flight.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.models import (
    Document,
    DocumentReview,
    DocumentType,
    Dossier,
    StepInstance,
    StepReminder,
)
from app.models.enums import (
    DocumentStatus,
    DossierStatus,
    EventType,
    ReminderKind,
    ReminderStatus,
)
from app.services import deadlines, events, outbox
from app.services.workflow.machine import ACTIVE
from app.settings import Settings, get_settings

logger = logging.getLogger("app.chasing")

# What the client still has to send (REJECTED works like a change request).
MISSING = (DocumentStatus.PENDING, DocumentStatus.CHANGES_REQUESTED, DocumentStatus.REJECTED)
REVIEWED = (DocumentStatus.CHANGES_REQUESTED, DocumentStatus.REJECTED)


# --- progress ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NextAction:
    """A document the client has to send, with what its type accepts."""

    document: Document
    document_type: DocumentType
    reason: str | None  # why the last version was sent back, if it was
    due_at: datetime | None

    @property
    def status(self) -> DocumentStatus:
        return DocumentStatus(self.document.status)


@dataclass(frozen=True)
class Progress:
    dossier: Dossier
    steps_done: int  # completed or skipped
    steps_total: int
    documents_approved: int
    documents_total: int
    current_step: StepInstance | None
    next_actions: list[NextAction] = field(default_factory=list)


async def _last_reasons(documents: Sequence[Document]) -> dict[uuid.UUID, str | None]:
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
        reasons[versions[review.document_version_id]] = review.reason  # type: ignore[attr-defined]
    return reasons


def _actions(
    dossier: Dossier,
    step: StepInstance | None,
    documents: Sequence[Document],
    types: dict[uuid.UUID, DocumentType],
    reasons: dict[uuid.UUID, str | None],
) -> list[NextAction]:
    if step is None or dossier.status not in ACTIVE:
        return []
    return [
        NextAction(
            document=d,
            document_type=types[d.document_type_id],  # type: ignore[attr-defined]
            reason=reasons.get(d.id),
            due_at=step.due_at,
        )
        for d in documents
        if d.step_instance_id == step.id and d.status in MISSING  # type: ignore[attr-defined]
    ]


async def progress_of(dossiers: Sequence[Dossier]) -> list[Progress]:
    """Each dossier's progress, in order: four queries for the whole batch."""
    if not dossiers:
        return []
    ids = list({d.id for d in dossiers})
    steps: dict[uuid.UUID, list[StepInstance]] = defaultdict(list)
    for step in await StepInstance.filter(dossier_id__in=ids).order_by("position"):
        steps[step.dossier_id].append(step)  # type: ignore[attr-defined]
    documents: dict[uuid.UUID, list[Document]] = defaultdict(list)
    all_documents = await Document.filter(dossier_id__in=ids).order_by("created_at", "id")
    for document in all_documents:
        documents[document.dossier_id].append(document)  # type: ignore[attr-defined]
    # Steps to come: their documents do not exist yet, their types say how many there will be.
    upcoming = {
        s.step_id  # type: ignore[attr-defined]
        for group in steps.values()
        for s in group
        if s.started_at is None and s.completed_at is None
    }
    type_ids = {d.document_type_id for d in all_documents}  # type: ignore[attr-defined]
    types: dict[uuid.UUID, DocumentType] = {}
    if type_ids or upcoming:
        query = Q(id__in=list(type_ids)) if type_ids else Q(required_step_id__in=list(upcoming))
        if type_ids and upcoming:
            query = query | Q(required_step_id__in=list(upcoming))
        types = {t.id: t for t in await DocumentType.filter(query)}
    types_per_step: dict[uuid.UUID, int] = defaultdict(int)
    for document_type in types.values():
        if document_type.required_step_id in upcoming:  # type: ignore[attr-defined]
            types_per_step[document_type.required_step_id] += 1  # type: ignore[attr-defined]
    active_current = {d.current_step_instance_id for d in dossiers if d.status in ACTIVE} - {None}
    reasons = await _last_reasons(
        [d for d in all_documents if d.step_instance_id in active_current]  # type: ignore[attr-defined]
    )

    out = []
    for dossier in dossiers:
        own_steps = steps.get(dossier.id, [])
        skipped = {s.id for s in own_steps if s.skipped_at is not None}
        counted = [
            d
            for d in documents.get(dossier.id, [])
            if d.step_instance_id is not None and d.step_instance_id not in skipped  # type: ignore[attr-defined]
        ]
        to_come = sum(
            types_per_step.get(s.step_id, 0)  # type: ignore[attr-defined]
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
                next_actions=_actions(
                    dossier, current, documents.get(dossier.id, []), types, reasons
                ),
            )
        )
    return out


# --- overdue steps ----------------------------------------------------------------------


def overdue_steps(*, now: datetime | None = None, agent_id: uuid.UUID | None = None) -> QuerySet:
    """Current steps of running dossiers past their due date (page them by due date:
    the most overdue first); `agent_id` keeps the steps assigned to that agent."""
    now = now or datetime.now(UTC)
    current = Dossier.filter(status__in=list(ACTIVE)).values("current_step_instance_id")
    queryset = StepInstance.filter(
        due_at__lt=now, completed_at__isnull=True, id__in=Subquery(current)
    )
    if agent_id is not None:
        queryset = queryset.filter(assigned_to_id=agent_id)
    return queryset


# --- the worker jobs --------------------------------------------------------------------


@dataclass
class PassReport:
    dossiers: int = 0  # dossiers locked and worked on
    sent: int = 0  # events recorded (one per dossier at most)
    skipped: int = 0  # slots closed without a message


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _close(rows: Sequence[StepReminder], reason: str, now: datetime) -> int:
    if rows:
        await StepReminder.filter(id__in=[r.id for r in rows]).update(
            status=ReminderStatus.SKIPPED, processed_at=now, skip_reason=reason
        )
    return len(rows)


async def _missing(
    dossiers: Sequence[Dossier],
) -> dict[uuid.UUID, list[NextAction]]:
    """What each (running) dossier's current step still waits for from the client."""
    current = {d.current_step_instance_id: d for d in dossiers if d.current_step_instance_id}
    if not current:
        return {}
    steps = {s.id: s for s in await StepInstance.filter(id__in=list(current))}
    documents = list(
        await Document.filter(step_instance_id__in=list(current), status__in=list(MISSING))
        .order_by("created_at", "id")
        .select_for_update()
    )
    types = {
        t.id: t
        for t in await DocumentType.filter(
            id__in=list({d.document_type_id for d in documents})  # type: ignore[attr-defined]
        )
    }
    reasons = await _last_reasons(documents)
    return {
        dossier.id: _actions(dossier, steps.get(step_id), documents, types, reasons)
        for step_id, dossier in current.items()
    }


def _stopped_reason(status: DossierStatus) -> str:
    return "ON_HOLD" if status == DossierStatus.ON_HOLD else "DOSSIER_" + status.value


async def _pass(
    kind: ReminderKind, now: datetime | None, limit: int | None, settings: Settings | None
) -> PassReport:
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    limit = limit or settings.chasing_batch_size
    report = PassReport()
    async with outbox.collecting(), in_transaction():
        due = StepReminder.filter(kind=kind, status=ReminderStatus.PENDING, scheduled_for__lte=now)
        wanted = (
            await due.order_by("scheduled_for", "id")
            .limit(limit)
            .values_list("dossier_id", flat=True)
        )
        if not wanted:
            return report
        # The lock everyone takes first; a dossier another worker (or a request) holds is
        # left for the next pass.
        dossiers = list(
            await Dossier.filter(id__in=list(set(wanted))).select_for_update(skip_locked=True)
        )
        if not dossiers:
            return report
        report.dossiers = len(dossiers)
        rows: dict[uuid.UUID, list[StepReminder]] = defaultdict(list)
        # Re-read under the lock: what a worker that held it before us closed stays closed.
        for row in await due.filter(dossier_id__in=[d.id for d in dossiers]).order_by(
            "scheduled_for", "id"
        ):
            rows[row.dossier_id].append(row)  # type: ignore[attr-defined]
        steps = {
            s.id: s
            for s in await StepInstance.filter(
                id__in=list({r.step_instance_id for g in rows.values() for r in g})  # type: ignore[attr-defined]
            )
        }
        running = [d for d in dossiers if d.status in ACTIVE and rows.get(d.id)]
        missing = await _missing(running) if kind == ReminderKind.DOCUMENTS else {}

        for dossier in dossiers:
            mine = rows.get(dossier.id, [])
            if not mine:
                continue
            status = DossierStatus(dossier.status)
            if status not in ACTIVE:
                report.skipped += await _close(mine, _stopped_reason(status), now)
                continue
            live = [
                r
                for r in mine
                if r.step_instance_id == dossier.current_step_instance_id  # type: ignore[attr-defined]
                and steps[r.step_instance_id].completed_at is None  # type: ignore[attr-defined]
            ]
            report.skipped += await _close([r for r in mine if r not in live], "STEP_DONE", now)
            if not live:
                continue
            step = steps[live[0].step_instance_id]  # type: ignore[attr-defined]
            chosen, covered = live[-1], live[:-1]  # the latest slot speaks for those before
            if kind == ReminderKind.DOCUMENTS:
                actions = missing.get(dossier.id) or []
                if not actions:
                    report.skipped += await _close(live, "NOTHING_MISSING", now)
                    continue
                event = await _record_reminder(dossier, step, chosen, actions, now)
            else:
                if not deadlines.is_overdue(step.due_at, step.completed_at, status, now):
                    report.skipped += await _close(live, "NOT_OVERDUE", now)
                    continue
                event = await _record_escalation(dossier, step, chosen, now)
            report.skipped += await _close(covered, "COVERED", now)
            await StepReminder.filter(id=chosen.id).update(
                status=ReminderStatus.SENT, processed_at=now, event_id=event.id
            )
            report.sent += 1
    if report.sent or report.skipped:
        logger.info(
            "%s: %d sent, %d slot(s) skipped, %d dossier(s)",
            kind.value,
            report.sent,
            report.skipped,
            report.dossiers,
        )
    return report


async def _record_reminder(
    dossier: Dossier,
    step: StepInstance,
    slot: StepReminder,
    actions: Sequence[NextAction],
    now: datetime,
) -> Any:
    return await events.record(
        "dossier",
        dossier.id,
        EventType.DOCUMENT_REMINDER_SENT,
        payload={
            "dossierId": str(dossier.id),
            "stepInstanceId": str(step.id),
            "stepId": str(step.step_id),  # type: ignore[attr-defined]
            "position": step.position,
            "reminderId": str(slot.id),
            "slot": slot.slot,
            "scheduledFor": _iso(slot.scheduled_for),
            "dueAt": _iso(step.due_at),
            "overdue": step.due_at is not None and step.due_at < now,
            "missing": [
                {
                    "documentId": str(a.document.id),
                    "documentTypeId": str(a.document_type.id),
                    "code": a.document_type.code,
                    "label": a.document_type.label,
                    "status": a.status.value,
                    "reason": a.reason,
                }
                for a in actions
            ],
        },
    )


async def _record_escalation(
    dossier: Dossier, step: StepInstance, slot: StepReminder, now: datetime
) -> Any:
    late = now - step.due_at if step.due_at else None
    return await events.record(
        "dossier",
        dossier.id,
        EventType.STEP_OVERDUE,
        payload={
            "dossierId": str(dossier.id),
            "stepInstanceId": str(step.id),
            "stepId": str(step.step_id),  # type: ignore[attr-defined]
            "position": step.position,
            "escalationId": str(slot.id),
            "slot": slot.slot,
            "dueAt": _iso(step.due_at),
            "overdueHours": int(late.total_seconds() // 3600) if late else 0,
            "assignedToId": str(step.assigned_to_id) if step.assigned_to_id else None,  # type: ignore[attr-defined]
        },
    )


async def send_document_reminders(
    *, now: datetime | None = None, limit: int | None = None, settings: Settings | None = None
) -> PassReport:
    """One pass: remind clients whose dossier has a reminder slot due."""
    return await _pass(ReminderKind.DOCUMENTS, now, limit, settings)


async def escalate_overdue_steps(
    *, now: datetime | None = None, limit: int | None = None, settings: Settings | None = None
) -> PassReport:
    """One pass: tell agents about steps overdue by the configured margin, once each."""
    return await _pass(ReminderKind.ESCALATION, now, limit, settings)


async def plan_missing(
    *, now: datetime | None = None, limit: int | None = None, settings: Settings | None = None
) -> int:
    """Plan the reminders of running steps that have none (they started before plans
    existed). Reminder slots already past are not planned (no burst of late reminders); an
    escalation already due is, so the agents still hear of an overdue step. Returns how
    many steps were planned."""
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    limit = limit or settings.chasing_batch_size
    schedule = deadlines.parse_schedule(settings.document_reminder_schedule)
    current = Dossier.filter(status__in=list(ACTIVE)).values("current_step_instance_id")
    candidates = StepInstance.filter(
        started_at__isnull=False,
        completed_at__isnull=True,
        id__in=Subquery(current),
    ).exclude(id__in=Subquery(StepReminder.all().values("step_instance_id")))
    if not any(slot.anchor == "start" for slot in schedule):
        candidates = candidates.filter(due_at__isnull=False)  # else nothing to plan
    planned = 0
    async with in_transaction():
        wanted = await candidates.limit(limit).values_list("dossier_id", flat=True)
        if not wanted:
            return 0
        for dossier in await Dossier.filter(id__in=list(set(wanted))).select_for_update(
            skip_locked=True
        ):
            step = await StepInstance.filter(id=dossier.current_step_instance_id).first()
            if step is None or await StepReminder.filter(step_instance_id=step.id).exists():
                continue
            await deadlines.plan_step(step, now=now, settings=settings, backfill=True)
            planned += 1
    return planned
