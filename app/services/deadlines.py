"""Due dates and the plan of a step's reminders and escalation.

A step that starts gets `due_at = started_at + estimated_duration_hours` (the estimate is
copied from `product_steps` when the dossier is created; none, no due date). Its documents
share that due date. When the step starts — and again when an agent moves its due date —
`plan_step` writes one `step_reminders` row per slot of the schedule:

- `DOCUMENTS` rows, from `settings.document_reminder_schedule`: "start+2d" (two days after
  the step started), "due-1d" (a day before its due date), "due" (at the due date). Slots
  relative to the due date exist only when the step has one, and carry it in their name
  ("due-24h@2030-01-31T12:00:00Z"), so a moved due date gets slots of its own while the
  ones already sent stay sent.
- one `ESCALATION` row at `due_at + overdue_escalation_hours`.

Slots that would fall at or before the step's start (or, when re-planning, before now) are
not planned: the client was just told of the step. The worker (`app.services.chasing`)
sends each row at most once.

The workflow calls this module (it imports no service at load time).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.domain.schedule import parse_schedule
from app.models import StepInstance, StepReminder
from app.models.enums import ACTIVE_DOSSIER_STATUSES, DossierStatus, ReminderKind, ReminderStatus
from app.settings import Settings, get_settings


def due_at_for(started_at: datetime, estimated_hours: int | None) -> datetime | None:
    if not estimated_hours:
        return None
    return started_at + timedelta(hours=estimated_hours)


def is_overdue(
    due_at: datetime | None,
    completed_at: datetime | None,
    dossier_status: DossierStatus | str | None,
    now: datetime | None = None,
) -> bool:
    """Past its due date, not completed, in a dossier whose workflow runs (a dossier on
    hold, completed or cancelled has nothing overdue)."""
    if due_at is None or completed_at is not None or dossier_status not in ACTIVE_DOSSIER_STATUSES:
        return False
    return due_at < (now or datetime.now(UTC))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def planned_slots(
    step: StepInstance, settings: Settings | None = None
) -> list[tuple[ReminderKind, str, datetime]]:
    """(kind, slot name, time) of every notice the step's schedule asks for."""
    settings = settings or get_settings()
    started = step.started_at
    if started is None:
        return []
    out: list[tuple[ReminderKind, str, datetime]] = []
    for slot in parse_schedule(settings.document_reminder_schedule):
        if slot.anchor == "start":
            out.append((ReminderKind.DOCUMENTS, slot.name, started + timedelta(hours=slot.hours)))
        elif step.due_at is not None:
            at = step.due_at + timedelta(hours=slot.hours)
            out.append((ReminderKind.DOCUMENTS, f"{slot.name}@{_stamp(step.due_at)}", at))
    if step.due_at is not None:
        margin = settings.overdue_escalation_hours
        out.append(
            (
                ReminderKind.ESCALATION,
                f"overdue+{margin}h@{_stamp(step.due_at)}",
                step.due_at + timedelta(hours=margin),
            )
        )
    return out


def first_plan(
    step: StepInstance, *, dossier_id: uuid.UUID, settings: Settings | None = None
) -> list[StepReminder]:
    """The reminder rows of a step that starts now (`step.started_at`, `step.due_at` set):
    every slot of its schedule after its start. Unsaved, for the caller's batch."""
    return [
        StepReminder(
            dossier_id=dossier_id,
            step_instance_id=step.id,
            kind=kind,
            slot=name,
            scheduled_for=at,
        )
        for kind, name, at in planned_slots(step, settings)
        if step.started_at is not None and at > step.started_at
    ]


async def plan_step(
    step: StepInstance,
    *,
    now: datetime | None = None,
    due_only: bool = False,
    backfill: bool = False,
    settings: Settings | None = None,
) -> list[StepReminder]:
    """Write the step's planned notices (in the caller's transaction, dossier locked), for
    a step whose plan changes after its start (a step that starts gets `first_plan`).

    `due_only`: a moved due date — the pending notices tied to the old one are dropped and
    those of the new one planned; start-relative slots stay as they are. `backfill`: a
    step that started before plans existed — an escalation already due is kept."""
    now = now or datetime.now(UTC)
    if due_only:
        await StepReminder.filter(
            step_instance_id=step.id, status=ReminderStatus.PENDING, slot__contains="@"
        ).delete()
    existing: set[str] = {
        str(slot)
        for slot in await StepReminder.filter(step_instance_id=step.id).values_list(
            "slot", flat=True
        )
    }
    rows = planned_rows(
        step, existing, now=now, due_only=due_only, backfill=backfill, settings=settings
    )
    if rows:
        await StepReminder.bulk_create(rows)
    return rows


def planned_rows(
    step: StepInstance,
    existing: set[str],
    *,
    now: datetime,
    due_only: bool = False,
    backfill: bool = False,
    settings: Settings | None = None,
) -> list[StepReminder]:
    """The notices `plan_step` writes for a step whose planned slots are `existing`
    (unsaved rows: the caller writes them, several steps' together if it likes)."""
    floor = max(now, step.started_at) if step.started_at else now
    return [
        StepReminder(
            dossier_id=step.dossier_id,
            step_instance_id=step.id,
            kind=kind,
            slot=name,
            scheduled_for=at,
        )
        for kind, name, at in planned_slots(step, settings)
        if name not in existing
        and (at > floor or (backfill and kind == ReminderKind.ESCALATION))
        and not (due_only and kind == ReminderKind.DOCUMENTS and "@" not in name)
    ]
