"""Chasing: nudging the client for missing documents and escalating overdue steps to
agents — the worker jobs. What clients and agents see of what is missing (progress, next
actions, overdue steps) is the read model in app.services.progress.

The jobs send what `app.services.deadlines` planned in `step_reminders`:
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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from app.db import Writes
from app.models import Document, DocumentType, Dossier, StepInstance, StepReminder
from app.models.enums import DossierStatus, EventType, ReminderKind, ReminderStatus
from app.services import deadlines, events, outbox
from app.services.progress import MISSING, NextAction, last_reasons, next_actions_of
from app.services.workflow.machine import ACTIVE
from app.settings import Settings, get_settings

logger = logging.getLogger("app.chasing")


@dataclass
class PassReport:
    dossiers: int = 0  # dossiers locked and worked on
    sent: int = 0  # events recorded (one per dossier at most)
    skipped: int = 0  # slots closed without a message


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _close(writes: Writes, rows: Sequence[StepReminder], reason: str, now: datetime) -> int:
    for row in rows:
        writes.update(
            StepReminder,
            {"id": row.id},
            status=ReminderStatus.SKIPPED,
            processed_at=now,
            skip_reason=reason,
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
            id__in=list({d.document_type_id for d in documents if d.document_type_id})
        )
    }
    reasons = await last_reasons(documents)
    return {
        dossier.id: next_actions_of(dossier, steps.get(step_id), documents, types, reasons)
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
            rows[row.dossier_id].append(row)
        steps = {
            s.id: s
            for s in await StepInstance.filter(
                id__in=list({r.step_instance_id for g in rows.values() for r in g})
            )
        }
        running = [d for d in dossiers if d.status in ACTIVE and rows.get(d.id)]
        # What the pass decides is written at the end in ONE statement (PostgreSQL): the
        # slots it closes, the events it records, the slots it marks sent.
        writes = Writes()
        missing = await _missing(running) if kind == ReminderKind.DOCUMENTS else {}

        for dossier in dossiers:
            mine = rows.get(dossier.id, [])
            if not mine:
                continue
            status = DossierStatus(dossier.status)
            if status not in ACTIVE:
                report.skipped += _close(writes, mine, _stopped_reason(status), now)
                continue
            live = [
                r
                for r in mine
                if r.step_instance_id == dossier.current_step_instance_id
                and steps[r.step_instance_id].completed_at is None
            ]
            report.skipped += _close(writes, [r for r in mine if r not in live], "STEP_DONE", now)
            if not live:
                continue
            step = steps[live[0].step_instance_id]
            chosen, covered = live[-1], live[:-1]  # the latest slot speaks for those before
            if kind == ReminderKind.DOCUMENTS:
                actions = missing.get(dossier.id) or []
                if not actions:
                    report.skipped += _close(writes, live, "NOTHING_MISSING", now)
                    continue
                event = _record_reminder(writes, dossier, step, chosen, actions, now)
            else:
                if not deadlines.is_overdue(step.due_at, step.completed_at, status, now):
                    report.skipped += _close(writes, live, "NOT_OVERDUE", now)
                    continue
                event = _record_escalation(writes, dossier, step, chosen, now)
            report.skipped += _close(writes, covered, "COVERED", now)
            writes.update(
                StepReminder,
                {"id": chosen.id},
                status=ReminderStatus.SENT,
                processed_at=now,
                event_id=event.id,
            )
            report.sent += 1
        await writes.run()
    if report.sent or report.skipped:
        logger.info(
            "%s: %d sent, %d slot(s) skipped, %d dossier(s)",
            kind.value,
            report.sent,
            report.skipped,
            report.dossiers,
        )
    return report


def _record_reminder(
    writes: Writes,
    dossier: Dossier,
    step: StepInstance,
    slot: StepReminder,
    actions: Sequence[NextAction],
    now: datetime,
) -> Any:
    return events.add(
        writes,
        "dossier",
        dossier.id,
        EventType.DOCUMENT_REMINDER_SENT,
        payload={
            "dossierId": str(dossier.id),
            "stepInstanceId": str(step.id),
            "stepId": str(step.step_id),
            "position": step.position,
            "reminderId": str(slot.id),
            "slot": slot.slot,
            "scheduledFor": _iso(slot.scheduled_for),
            "dueAt": _iso(step.due_at),
            "overdue": step.due_at is not None and step.due_at < now,
            "missing": [
                {
                    "documentId": str(a.document.id),
                    "documentTypeId": str(a.document_type.id) if a.document_type else None,
                    "code": a.spec.code,
                    "label": a.spec.label,
                    "status": a.status.value,
                    "reason": a.reason,
                }
                for a in actions
            ],
        },
    )


def _record_escalation(
    writes: Writes, dossier: Dossier, step: StepInstance, slot: StepReminder, now: datetime
) -> Any:
    late = now - step.due_at if step.due_at else None
    return events.add(
        writes,
        "dossier",
        dossier.id,
        EventType.STEP_OVERDUE,
        payload={
            "dossierId": str(dossier.id),
            "stepInstanceId": str(step.id),
            "stepId": str(step.step_id),
            "position": step.position,
            "escalationId": str(slot.id),
            "slot": slot.slot,
            "dueAt": _iso(step.due_at),
            "overdueHours": int(late.total_seconds() // 3600) if late else 0,
            "assignedToId": str(step.assigned_to_id) if step.assigned_to_id else None,
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
    # No reminder yet: a LEFT JOIN … IS NULL, which PostgreSQL runs as an anti-join
    # through the reminders' (step_instance_id, slot) index (a NOT IN would hash the whole
    # table on every pass).
    candidates = StepInstance.filter(
        started_at__isnull=False,
        completed_at__isnull=True,
        id__in=Subquery(current),
        reminders__id__isnull=True,
    )
    if not any(slot.anchor == "start" for slot in schedule):
        candidates = candidates.filter(due_at__isnull=False)  # else nothing to plan
    planned = 0
    async with in_transaction():
        wanted = await candidates.limit(limit).values_list("dossier_id", flat=True)
        if not wanted:
            return 0
        locked = await Dossier.filter(id__in=list(set(wanted))).select_for_update(skip_locked=True)
        # Re-read under the locks, all at once: the current steps, and which of them got
        # a plan meanwhile (a request or another worker); then one INSERT for every plan.
        current_ids = [d.current_step_instance_id for d in locked if d.current_step_instance_id]
        steps = await StepInstance.filter(
            id__in=current_ids, started_at__isnull=False, completed_at__isnull=True
        )
        planned_meanwhile = set(
            await StepReminder.filter(step_instance_id__in=[s.id for s in steps]).values_list(
                "step_instance_id", flat=True
            )
        )
        rows: list[StepReminder] = []
        for step in steps:
            if step.id in planned_meanwhile:
                continue
            rows += deadlines.planned_rows(step, set(), now=now, backfill=True, settings=settings)
            planned += 1
        if rows:
            await StepReminder.bulk_create(rows)
    return planned
