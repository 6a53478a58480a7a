"""What agents do to dossiers and their steps: hold, release or cancel a dossier;
complete, skip, assign a step or move its due date.

Releasing a hold restores the status the dossier had before it (kept in
`dossiers.metadata.statusBeforeHold`). While a dossier is on hold, completed or cancelled,
`completeStep` and `skipStep` are refused; assignments and due dates may still change while
it is on hold.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import Agent, Document, Dossier, StepInstance
from app.models.enums import DocumentStatus, DossierStatus, EventType
from app.services import deadlines, events
from app.services.codes import WorkflowErrorCode as Code
from app.services.validation import check_text
from app.services.workflow.machine import (
    ACTIVE,
    CANCEL,
    HOLD,
    RELEASE,
    TRANSITIONS,
    can_move,
    derived_status,
    illegal,
    lock_dossier,
    transition,
)
from app.services.workflow.steps import current_step, finish_step, step_payload

S = DossierStatus
D = DocumentStatus

HOLD_KEY = "statusBeforeHold"
REASON_MAX = 2000


class StatusAction(StrEnum):
    HOLD = "HOLD"
    RELEASE = "RELEASE"
    CANCEL = "CANCEL"


def _reason(value: str | None, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise DomainError(Code.REQUIRED, "Give a reason.", "reason")
        return None
    cleaned = check_text(value, "reason", max_length=REASON_MAX, required=required)
    return cleaned or None


def _require_active(dossier: Dossier) -> None:
    if dossier.status not in ACTIVE:
        raise DomainError(
            Code.DOSSIER_NOT_ACTIVE,
            f"The dossier is {DossierStatus(dossier.status).value}: its workflow is stopped.",
            "dossierId",
        )


def _require_pending(step: StepInstance) -> None:
    if step.completed_at is not None:
        raise DomainError(
            Code.STEP_ALREADY_COMPLETED,
            "This step is already completed or skipped.",
            "stepInstanceId",
        )


def _require_open(dossier: Dossier, step: StepInstance) -> None:
    """A step still to do in a dossier that is neither completed nor cancelled (on hold
    is fine: assignments and due dates may change while it waits)."""
    if dossier.status in (S.COMPLETED, S.CANCELLED):
        raise DomainError(
            Code.DOSSIER_NOT_ACTIVE,
            f"The dossier is {DossierStatus(dossier.status).value}.",
            "stepInstanceId",
        )
    _require_pending(step)


async def _status_after_hold(dossier: Dossier) -> DossierStatus:
    saved = (dossier.metadata or {}).get(HOLD_KEY)
    if saved in {s.value for s in TRANSITIONS[S.ON_HOLD]} and saved != S.CANCELLED:
        return DossierStatus(saved)
    step = await current_step(dossier)
    if step is None:
        return S.CREATED
    return derived_status([D(d.status) for d in await Document.filter(step_instance_id=step.id)])


async def change_status(
    viewer: Viewer,
    dossier_id: uuid.UUID,
    action: StatusAction,
    reason: str | None,
    *,
    now: datetime | None = None,
) -> Dossier:
    """An agent puts a dossier on hold, releases it, or cancels it (reason required)."""
    cleaned = _reason(reason, required=True)
    async with in_transaction():
        dossier = await lock_dossier(dossier_id)
        old = DossierStatus(dossier.status)
        metadata = dict(dossier.metadata or {})
        if action == StatusAction.HOLD:
            target, cause = S.ON_HOLD, HOLD
            metadata[HOLD_KEY] = old.value
        elif action == StatusAction.RELEASE:
            if old != S.ON_HOLD:
                raise DomainError(
                    Code.ILLEGAL_TRANSITION,
                    f"The dossier is {old.value}, not ON_HOLD: there is no hold to release.",
                    "action",
                )
            target, cause = await _status_after_hold(dossier), RELEASE
            metadata.pop(HOLD_KEY, None)
        else:
            target, cause = S.CANCELLED, CANCEL
            metadata.pop(HOLD_KEY, None)
        if not can_move(old, target, cause):
            raise illegal(old, target)
        dossier.metadata = metadata
        await transition(
            dossier,
            target,
            actor=viewer,
            reason=cleaned,
            cause=cause,
            metadata={"action": action.value},
            now=now,
        )
    return dossier


async def _locked_step(step_instance_id: uuid.UUID) -> tuple[Dossier, StepInstance]:
    """Lock the step's dossier first (the one lock order everyone follows), then the step."""
    step = await StepInstance.filter(id=step_instance_id).first()
    if step is None:
        raise NotFound("No such step.")
    dossier = await lock_dossier(step.dossier_id)
    step = await StepInstance.filter(id=step_instance_id).select_for_update().get()
    return dossier, step


async def complete_step(
    viewer: Viewer, step_instance_id: uuid.UUID, *, now: datetime | None = None
) -> tuple[Dossier, StepInstance]:
    """An agent completes the current step: one with no document, or all approved."""
    async with in_transaction():
        dossier, step = await _locked_step(step_instance_id)
        if step.completed_at is not None:
            raise DomainError(
                Code.STEP_ALREADY_COMPLETED, "This step is already completed.", "stepInstanceId"
            )
        _require_active(dossier)
        if dossier.current_step_instance_id != step.id:
            raise DomainError(
                Code.NOT_CURRENT_STEP,
                "Only the dossier's current step can be completed.",
                "stepInstanceId",
            )
        documents = await Document.filter(step_instance_id=step.id).select_for_update()
        waiting = [d for d in documents if d.status not in (D.APPROVED, D.WAIVED)]
        if waiting:
            raise DomainError(
                Code.DOCUMENTS_NOT_APPROVED,
                f"{len(waiting)} document(s) of this step are not approved yet.",
                "stepInstanceId",
            )
        await finish_step(dossier, step, actor=viewer, now=now)
    return dossier, step


async def skip_step(
    viewer: Viewer,
    step_instance_id: uuid.UUID,
    reason: str | None = None,
    *,
    now: datetime | None = None,
) -> tuple[Dossier, StepInstance]:
    """An agent skips an optional step: the current one (the next starts) or a later one."""
    cleaned = _reason(reason, required=False)
    async with in_transaction():
        dossier, step = await _locked_step(step_instance_id)
        _require_pending(step)
        if step.is_required:
            raise DomainError(
                Code.STEP_REQUIRED, "This step is required: it cannot be skipped.", "stepInstanceId"
            )
        _require_active(dossier)
        await finish_step(dossier, step, actor=viewer, skipped=True, reason=cleaned, now=now)
    return dossier, step


async def assign_step(
    viewer: Viewer, step_instance_id: uuid.UUID, agent_id: uuid.UUID | None
) -> tuple[Dossier, StepInstance]:
    """An agent assigns a step to an active agent (or unassigns it with None)."""
    async with in_transaction():
        dossier, step = await _locked_step(step_instance_id)
        _require_open(dossier, step)
        agent = await Agent.filter(id=agent_id).first() if agent_id is not None else None
        if agent_id is not None and agent is None:
            raise DomainError(Code.UNKNOWN_AGENT, "No such agent.", "agentId")
        if agent is not None and not agent.active:
            raise DomainError(Code.AGENT_INACTIVE, "This agent is deactivated.", "agentId")
        previous = step.assigned_to_id
        if previous == agent_id:
            return dossier, step
        step.assigned_to_id = agent_id
        await step.save(update_fields=["assigned_to_id"])
        await events.record(
            "dossier",
            dossier.id,
            EventType.STEP_ASSIGNED,
            actor=viewer,
            payload=step_payload(
                dossier,
                step,
                agentId=str(agent_id) if agent_id else None,
                previousAgentId=str(previous) if previous else None,
            ),
        )
    return dossier, step


async def move_due_date(
    viewer: Viewer,
    step_instance_id: uuid.UUID,
    due_at: datetime,
    reason: str | None,
    *,
    now: datetime | None = None,
) -> tuple[Dossier, StepInstance]:
    """An agent moves the due date of a dossier's current step (reason required). The
    reminders and escalation tied to the old due date are re-planned on the new one."""
    cleaned = _reason(reason, required=True)
    now = now or datetime.now(UTC)
    if due_at.tzinfo is None:
        raise DomainError(Code.INVALID_DUE_DATE, "Give the due date with its time zone.", "dueAt")
    if due_at <= now:
        raise DomainError(Code.INVALID_DUE_DATE, "The due date must be in the future.", "dueAt")
    async with in_transaction():
        dossier, step = await _locked_step(step_instance_id)
        _require_open(dossier, step)
        if dossier.current_step_instance_id != step.id or step.started_at is None:
            raise DomainError(
                Code.NOT_CURRENT_STEP,
                "Only the dossier's current step has a due date to move.",
                "stepInstanceId",
            )
        previous = step.due_at
        step.due_at = due_at
        await step.save(update_fields=["due_at"])
        await deadlines.plan_step(step, now=now, due_only=True)
        await events.record(
            "dossier",
            dossier.id,
            EventType.STEP_DUE_DATE_CHANGED,
            actor=viewer,
            payload=step_payload(
                dossier,
                step,
                previousDueAt=previous.isoformat() if previous else None,
                dueAt=due_at.isoformat(),
                reason=cleaned,
            ),
        )
    return dossier, step
