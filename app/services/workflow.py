"""The dossier state machine and step engine (SPEC 2.2).

One table, `TRANSITIONS`, says which status may follow which, and what may cause the move:
the workflow itself (documents uploaded or reviewed, steps completed), or an agent's
hold / release / cancel. Every move goes through `transition`, which checks the table,
writes the `dossier_status_history` row and the event in the caller's transaction; the
caller holds the dossier row lock (`lock_dossier`, `select_for_update`).

How the workflow moves a dossier (`settle`, run after every document or step change):
- the documents of the current step decide its status: any `CHANGES_REQUESTED` or
  `REJECTED` -> `CHANGES_REQUESTED`; all `UPLOADED`/`APPROVED` -> `UNDER_REVIEW`;
  otherwise (something still `PENDING`, or a step with no document) -> `IN_PROGRESS`;
- all documents `APPROVED` -> the step is completed (`STEP_COMPLETED`), the next step in
  position order that is neither completed nor skipped starts (`STEP_STARTED`, its documents
  created `PENDING`) and the status follows that step; after the last step the dossier is
  `COMPLETED` with `completed_at` and no current step.
- A `REJECTED` document works like a change request for the workflow: the client has to
  upload a new version (the document accepts uploads again) and the dossier is
  `CHANGES_REQUESTED` until every document of the step is uploaded again. The difference
  is what it tells the client: the file is not the right document at all.
- `ON_HOLD`, `COMPLETED` and `CANCELLED` dossiers do not move on their own: uploads,
  reviews, `completeStep` and `skipStep` are refused while the dossier is in one of them.
  Releasing a hold restores the status the dossier had before it (kept in
  `dossiers.metadata.statusBeforeHold`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from app.db import Writes
from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import (
    Agent,
    Document,
    DocumentReview,
    DocumentType,
    DocumentVersion,
    Dossier,
    DossierStatusHistory,
    Event,
    Message,
    Order,
    Product,
    ProductStep,
    StepInstance,
    StepReminder,
)
from app.models.enums import ActorType, DocumentStatus, DossierStatus, EventType
from app.services import deadlines, events
from app.services.codes import WorkflowErrorCode as Code
from app.services.validation import check_text

S = DossierStatus
D = DocumentStatus


class Cause(StrEnum):
    """What may move a dossier from one status to another."""

    WORKFLOW = "WORKFLOW"  # documents and steps (automatic)
    HOLD = "HOLD"  # an agent puts it on hold
    RELEASE = "RELEASE"  # an agent takes it off hold
    CANCEL = "CANCEL"  # an agent (or a refund) cancels it


W, HOLD, RELEASE, CANCEL = Cause.WORKFLOW, Cause.HOLD, Cause.RELEASE, Cause.CANCEL

# from-status -> {to-status: the one cause that may make that move}
TRANSITIONS: dict[DossierStatus, dict[DossierStatus, Cause]] = {
    S.CREATED: {S.IN_PROGRESS: W, S.COMPLETED: W, S.ON_HOLD: HOLD, S.CANCELLED: CANCEL},
    S.IN_PROGRESS: {
        S.UNDER_REVIEW: W,
        S.CHANGES_REQUESTED: W,
        S.COMPLETED: W,
        S.ON_HOLD: HOLD,
        S.CANCELLED: CANCEL,
    },
    S.UNDER_REVIEW: {
        S.IN_PROGRESS: W,
        S.CHANGES_REQUESTED: W,
        S.COMPLETED: W,
        S.ON_HOLD: HOLD,
        S.CANCELLED: CANCEL,
    },
    S.CHANGES_REQUESTED: {
        S.UNDER_REVIEW: W,
        S.IN_PROGRESS: W,
        S.COMPLETED: W,
        S.ON_HOLD: HOLD,
        S.CANCELLED: CANCEL,
    },
    S.ON_HOLD: {
        S.CREATED: RELEASE,
        S.IN_PROGRESS: RELEASE,
        S.UNDER_REVIEW: RELEASE,
        S.CHANGES_REQUESTED: RELEASE,
        S.CANCELLED: CANCEL,
    },
    S.COMPLETED: {},
    S.CANCELLED: {},
}
# The workflow runs (uploads, reviews, step moves) only in these statuses.
ACTIVE = frozenset({S.CREATED, S.IN_PROGRESS, S.UNDER_REVIEW, S.CHANGES_REQUESTED})
HOLD_KEY = "statusBeforeHold"
REASON_MAX = 2000

# Status changes that matter on their own get their own event type (the payload is the same).
STATUS_EVENTS = {S.COMPLETED: EventType.DOSSIER_COMPLETED, S.CANCELLED: EventType.DOSSIER_CANCELLED}


class StatusAction(StrEnum):
    HOLD = "HOLD"
    RELEASE = "RELEASE"
    CANCEL = "CANCEL"


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def illegal(old: DossierStatus, new: DossierStatus) -> DomainError:
    return DomainError(
        Code.ILLEGAL_TRANSITION,
        f"A dossier cannot go from {old.value} to {new.value}.",
        "status",
    )


def can_move(old: DossierStatus, new: DossierStatus, cause: Cause | None = None) -> bool:
    allowed = TRANSITIONS[old].get(new)
    return allowed is not None and (cause is None or allowed == cause)


async def transition(
    dossier: Dossier,
    new_status: DossierStatus,
    *,
    actor: Viewer | None = None,
    reason: str | None = None,
    metadata: dict[str, Any] | None = None,
    cause: Cause | None = None,
    now: datetime | None = None,
) -> DossierStatusHistory:
    """Move the (locked) dossier to `new_status`, or raise ILLEGAL_TRANSITION."""
    old_status = DossierStatus(dossier.status)
    if not can_move(old_status, new_status, cause):
        raise illegal(old_status, new_status)
    dossier.status = new_status
    if new_status == S.COMPLETED:
        dossier.completed_at = _now(now)
    await dossier.save(update_fields=["status", "completed_at", "metadata", "updated_at"])
    return await _history(dossier, old_status, new_status, actor, reason, metadata)


async def _history(
    dossier: Dossier,
    old: DossierStatus | None,
    new: DossierStatus,
    actor: Viewer | None,
    reason: str | None,
    metadata: dict[str, Any] | None,
) -> DossierStatusHistory:
    entry = _history_row(dossier, old, new, actor, reason, metadata)
    await entry.save(force_create=True)
    await events.record(
        "dossier",
        dossier.id,
        STATUS_EVENTS.get(new, EventType.DOSSIER_STATUS_CHANGED),
        actor=actor,
        payload=_status_payload(dossier, old, new, reason),
    )
    return entry


def _history_row(
    dossier: Dossier,
    old: DossierStatus | None,
    new: DossierStatus,
    actor: Viewer | None,
    reason: str | None,
    metadata: dict[str, Any] | None,
) -> DossierStatusHistory:
    actor_type, actor_id = events.actor_of(actor)
    return DossierStatusHistory(
        dossier_id=dossier.id,
        old_status=old,
        new_status=new,
        changed_by_type=actor_type,
        changed_by_id=actor_id,
        reason=reason,
        metadata=metadata or {},
    )


def _status_payload(
    dossier: Dossier, old: DossierStatus | None, new: DossierStatus, reason: str | None
) -> dict[str, Any]:
    return {
        "dossierId": str(dossier.id),
        "old": old.value if old else None,
        "new": new.value,
        "reason": reason,
    }


async def lock_dossier(dossier_id: uuid.UUID) -> Dossier:
    """The dossier row, locked until the transaction ends (NotFound when missing)."""
    dossier = await Dossier.filter(id=dossier_id).select_for_update().first()
    if dossier is None:
        raise NotFound("No such dossier.")
    return dossier


def derived_status(statuses: Sequence[DocumentStatus]) -> DossierStatus:
    """The status the documents of the current step call for (all APPROVED is handled
    before: it completes the step)."""
    if any(s in (D.CHANGES_REQUESTED, D.REJECTED) for s in statuses):
        return S.CHANGES_REQUESTED
    if statuses and all(s in (D.UPLOADED, D.APPROVED) for s in statuses):
        return S.UNDER_REVIEW
    return S.IN_PROGRESS


async def current_step(dossier: Dossier) -> StepInstance | None:
    if dossier.current_step_instance_id is None:
        return None
    return await StepInstance.filter(id=dossier.current_step_instance_id).first()


async def settle(
    dossier: Dossier,
    *,
    actor: Viewer | None,
    reason: str | None = None,
    now: datetime | None = None,
) -> None:
    """After a document or step change: complete the step when all its documents are
    approved, else move the status to what the documents call for. Caller holds the lock."""
    if dossier.status not in ACTIVE:
        return
    step = await current_step(dossier)
    if step is None:
        return
    statuses = [
        D(d.status) for d in await Document.filter(step_instance_id=step.id).select_for_update()
    ]
    if statuses and all(s == D.APPROVED for s in statuses):
        await _finish_step(dossier, step, actor=actor, now=now)
        return
    target = derived_status(statuses)
    if target != dossier.status:
        await transition(dossier, target, actor=actor, reason=reason, cause=W, now=now)


def _step_payload(dossier: Dossier, step: StepInstance, **extra: Any) -> dict[str, Any]:
    return {
        "dossierId": str(dossier.id),
        "stepInstanceId": str(step.id),
        "stepId": str(step.step_id),  # type: ignore[attr-defined]
        "position": step.position,
        **extra,
    }


async def _finish_step(
    dossier: Dossier,
    step: StepInstance,
    *,
    actor: Viewer | None,
    skipped: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
) -> None:
    """Complete (or skip) the step; when it is the current one, start the next or finish."""
    now = _now(now)
    step.completed_at = now
    fields = ["completed_at"]
    if skipped:
        step.skipped_at = now
        fields.append("skipped_at")
    await step.save(update_fields=fields)
    await events.record(
        "dossier",
        dossier.id,
        EventType.STEP_SKIPPED if skipped else EventType.STEP_COMPLETED,
        actor=actor,
        payload=_step_payload(dossier, step, reason=reason)
        if skipped
        else _step_payload(dossier, step),
    )
    if dossier.current_step_instance_id != step.id:
        return  # a future step skipped ahead of time: the engine will pass over it
    following = (
        await StepInstance.filter(
            dossier_id=dossier.id, completed_at=None, position__gt=step.position
        )
        .order_by("position")
        .first()
    )
    if following is not None:
        await start_step(dossier, following, actor=actor, now=now)
        return
    dossier.current_step_instance_id = None
    await dossier.save(update_fields=["current_step_instance_id", "updated_at"])
    await transition(
        dossier, S.COMPLETED, actor=actor, reason="All steps are complete.", cause=W, now=now
    )


async def start_step(
    dossier: Dossier, step: StepInstance, *, actor: Viewer | None, now: datetime | None = None
) -> None:
    """Start `step`: it becomes current, its documents are created PENDING (they share the
    step's due date), its reminders are planned, the status follows."""
    now = _now(now)
    step.started_at = now
    step.due_at = deadlines.due_at_for(now, step.estimated_duration_hours)
    await step.save(update_fields=["started_at", "due_at"])
    await deadlines.plan_step(step, now=now)
    dossier.current_step_instance_id = step.id
    await dossier.save(update_fields=["current_step_instance_id", "updated_at"])
    document_types = await DocumentType.filter(required_step_id=step.step_id).order_by("code")  # type: ignore[attr-defined]
    await Document.bulk_create(
        [
            Document(
                dossier_id=dossier.id,
                document_type_id=dt.id,
                step_instance_id=step.id,
                status=DocumentStatus.PENDING,
            )
            for dt in document_types
        ]
    )
    await events.record(
        "dossier",
        dossier.id,
        EventType.STEP_STARTED,
        actor=actor,
        payload=_step_payload(dossier, step),
    )
    await settle(dossier, actor=actor, now=now)


async def open_dossier(
    order: Order,
    *,
    actor: Viewer | None = None,
    now: datetime | None = None,
    product: Product | None = None,
    writes: Writes | None = None,
) -> Dossier:
    """Create the dossier an order pays for, with every step, the first one started.

    Runs inside the caller's transaction (the payment fulfilment). The rows are the ones
    `start_step` and `settle` would write for a new dossier (its first step started, its
    documents PENDING, its reminders planned, the status following the step), built here
    and written together: given `writes`, they join the caller's batch and the caller runs
    it; otherwise they are written before returning. Sets `order.dossier_id` (the caller
    saves the order when it passes `writes`)."""
    product = product or await order.product
    # The product's steps in order, each with its document types in code order: one read.
    product_steps: dict[uuid.UUID, dict[str, Any]] = {}
    document_types: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in (
        await ProductStep.filter(product_id=product.id)
        .order_by("position", "step__document_types__code")
        .values(
            "id",
            "step_id",
            "position",
            "is_required",
            "estimated_duration_hours",
            document_type_id="step__document_types__id",
        )
    ):
        product_steps.setdefault(row["id"], row)
        if row["document_type_id"] is not None:
            document_types.setdefault(row["id"], []).append(row["document_type_id"])
    batch = writes if writes is not None else Writes()
    initial = DossierStatus(product.initial_status)
    dossier = Dossier(
        user_id=order.user_id,  # type: ignore[attr-defined]
        product_id=product.id,
        type=product.dossier_type,
        status=initial,
    )
    batch.insert(dossier)
    _add_history(batch, dossier, None, initial, actor)
    events.add(
        batch,
        "dossier",
        dossier.id,
        EventType.DOSSIER_CREATED,
        actor=actor,
        payload={
            "dossierId": str(dossier.id),
            "orderId": str(order.id),
            "productId": str(product.id),
        },
    )
    instances = [  # UUID keys: each has its id before it is written
        StepInstance(
            dossier_id=dossier.id,
            step_id=ps["step_id"],
            position=ps["position"],
            is_required=ps["is_required"],
            estimated_duration_hours=ps["estimated_duration_hours"],
        )
        for ps in product_steps.values()
    ]
    batch.insert(*instances)
    order.dossier_id = dossier.id  # type: ignore[attr-defined]
    if instances:
        first = next(iter(product_steps))
        _start_first_step(
            batch, dossier, instances[0], document_types.get(first, []), actor=actor, now=now
        )
    if writes is None:
        order.updated_at = datetime.now(UTC)
        batch.update(Order, {"id": order.id}, dossier_id=dossier.id, updated_at=order.updated_at)
        await batch.run()
    return dossier


def _add_history(
    batch: Writes,
    dossier: Dossier,
    old: DossierStatus | None,
    new: DossierStatus,
    actor: Viewer | None,
) -> None:
    """`_history` for a batch: the history row and its event."""
    batch.insert(_history_row(dossier, old, new, actor, None, None))
    events.add(
        batch,
        "dossier",
        dossier.id,
        STATUS_EVENTS.get(new, EventType.DOSSIER_STATUS_CHANGED),
        actor=actor,
        payload=_status_payload(dossier, old, new, None),
    )


def _start_first_step(
    batch: Writes,
    dossier: Dossier,
    step: StepInstance,
    document_type_ids: Sequence[uuid.UUID],
    *,
    actor: Viewer | None,
    now: datetime | None,
) -> None:
    """`start_step` then `settle` on a dossier being created, as rows for the batch: the
    step and the dossier are not written yet, so they are written in their final state."""
    now = _now(now)
    step.started_at = now
    step.due_at = deadlines.due_at_for(now, step.estimated_duration_hours)
    # What `deadlines.plan_step` writes for a step that has just started (it has no
    # reminder yet, and nothing falls due before its start).
    batch.insert(
        *(
            StepReminder(
                dossier_id=dossier.id,
                step_instance_id=step.id,
                kind=kind,
                slot=name,
                scheduled_for=at,
            )
            for kind, name, at in deadlines.planned_slots(step)
            if at > now
        )
    )
    dossier.current_step_instance_id = step.id
    documents = [
        Document(
            dossier_id=dossier.id,
            document_type_id=type_id,
            step_instance_id=step.id,
            status=DocumentStatus.PENDING,
        )
        for type_id in document_type_ids
    ]
    batch.insert(*documents)
    events.add(
        batch,
        "dossier",
        dossier.id,
        EventType.STEP_STARTED,
        actor=actor,
        payload=_step_payload(dossier, step),
    )
    # settle(): the step's documents are all PENDING (or it has none).
    if dossier.status not in ACTIVE:
        return
    old = DossierStatus(dossier.status)
    target = derived_status([D(d.status) for d in documents])
    if target == old:
        return
    if not can_move(old, target, W):
        raise illegal(old, target)
    dossier.status = target
    _add_history(batch, dossier, old, target, actor)


# --- what agents do -------------------------------------------------------------------


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
    dossier = await lock_dossier(step.dossier_id)  # type: ignore[attr-defined]
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
        waiting = [d for d in documents if d.status != D.APPROVED]
        if waiting:
            raise DomainError(
                Code.DOCUMENTS_NOT_APPROVED,
                f"{len(waiting)} document(s) of this step are not approved yet.",
                "stepInstanceId",
            )
        await _finish_step(dossier, step, actor=viewer, now=now)
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
        await _finish_step(dossier, step, actor=viewer, skipped=True, reason=cleaned, now=now)
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
        previous = step.assigned_to_id  # type: ignore[attr-defined]
        if previous == agent_id:
            return dossier, step
        step.assigned_to_id = agent_id  # type: ignore[attr-defined]
        await step.save(update_fields=["assigned_to_id"])
        await events.record(
            "dossier",
            dossier.id,
            EventType.STEP_ASSIGNED,
            actor=viewer,
            payload=_step_payload(
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
    now = _now(now)
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
            payload=_step_payload(
                dossier,
                step,
                previousDueAt=previous.isoformat() if previous else None,
                dueAt=due_at.isoformat(),
                reason=cleaned,
            ),
        )
    return dossier, step


# --- the timeline ---------------------------------------------------------------------


class TimelineKind(StrEnum):
    STATUS_CHANGED = "STATUS_CHANGED"
    STEP_STARTED = "STEP_STARTED"
    STEP_COMPLETED = "STEP_COMPLETED"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_ASSIGNED = "STEP_ASSIGNED"
    DOCUMENT_UPLOADED = "DOCUMENT_UPLOADED"
    DOCUMENT_REVIEWED = "DOCUMENT_REVIEWED"
    MESSAGE_SENT = "MESSAGE_SENT"
    DUE_DATE_CHANGED = "DUE_DATE_CHANGED"
    DOCUMENT_REMINDER_SENT = "DOCUMENT_REMINDER_SENT"


STEP_EVENTS = {
    EventType.STEP_STARTED: TimelineKind.STEP_STARTED,
    EventType.STEP_COMPLETED: TimelineKind.STEP_COMPLETED,
    EventType.STEP_SKIPPED: TimelineKind.STEP_SKIPPED,
    EventType.STEP_ASSIGNED: TimelineKind.STEP_ASSIGNED,
    EventType.STEP_DUE_DATE_CHANGED: TimelineKind.DUE_DATE_CHANGED,
    EventType.DOCUMENT_REMINDER_SENT: TimelineKind.DOCUMENT_REMINDER_SENT,
}


@dataclass(frozen=True)
class TimelineItem:
    kind: TimelineKind
    at: datetime
    actor_type: ActorType
    actor_id: uuid.UUID | None
    row: Any  # the history row, event, version, review or message behind the entry


async def timelines(
    dossier_ids: Sequence[uuid.UUID], *, last: int, before: datetime | None = None
) -> dict[uuid.UUID, list[TimelineItem]]:
    """The latest `last` entries (before `before`) of each dossier, oldest first.

    Status history, step events (started, completed, skipped, assigned, due date moved,
    reminder sent), uploads, reviews and messages, merged in time order. One query per
    source for the whole batch; each is limited to `last` rows when there is one dossier
    (the usual case).
    """
    ids = list({str(i) for i in dossier_ids})
    if not ids or last <= 0:
        return {uuid.UUID(i): [] for i in ids}

    def bounded(queryset: Any, column: str) -> Any:
        if before is not None:
            queryset = queryset.filter(**{f"{column}__lt": before})
        queryset = queryset.order_by(f"-{column}", "-id")
        return queryset.limit(last) if len(ids) == 1 else queryset

    out: dict[str, list[TimelineItem]] = defaultdict(list)
    for row in await bounded(DossierStatusHistory.filter(dossier_id__in=ids), "created_at"):
        out[str(row.dossier_id)].append(  # type: ignore[attr-defined]
            TimelineItem(
                TimelineKind.STATUS_CHANGED,
                row.created_at,
                ActorType(row.changed_by_type),
                row.changed_by_id,
                row,
            )
        )
    step_events = Event.filter(
        entity_type="dossier", entity_id__in=ids, event_type__in=list(STEP_EVENTS)
    )
    for row in await bounded(step_events, "created_at"):
        out[str(row.entity_id)].append(
            TimelineItem(
                STEP_EVENTS[EventType(row.event_type)],
                row.created_at,
                ActorType(row.actor_type),
                row.actor_id,
                row,
            )
        )
    versions = DocumentVersion.filter(document__dossier_id__in=ids).select_related("document")
    for row in await bounded(versions, "uploaded_at"):
        out[str(row.document.dossier_id)].append(
            TimelineItem(
                TimelineKind.DOCUMENT_UPLOADED,
                row.uploaded_at,
                ActorType(row.uploaded_by_type),
                row.uploaded_by_id,
                row,
            )
        )
    reviews = DocumentReview.filter(document_version__document__dossier_id__in=ids).select_related(
        "document_version__document"
    )
    for row in await bounded(reviews, "reviewed_at"):
        out[str(row.document_version.document.dossier_id)].append(
            TimelineItem(
                TimelineKind.DOCUMENT_REVIEWED,
                row.reviewed_at,
                ActorType.AGENT,
                row.reviewer_id,  # type: ignore[attr-defined]
                row,
            )
        )
    for row in await bounded(Message.filter(dossier_id__in=ids), "created_at"):
        out[str(row.dossier_id)].append(  # type: ignore[attr-defined]
            TimelineItem(
                TimelineKind.MESSAGE_SENT,
                row.created_at,
                ActorType(row.sender_type),
                row.sender_id,
                row,
            )
        )
    result: dict[uuid.UUID, list[TimelineItem]] = {}
    for key in ids:
        items = sorted(out.get(key, []), key=lambda item: (item.at, str(item.row.id)))
        result[uuid.UUID(key)] = items[-last:]
    return result
