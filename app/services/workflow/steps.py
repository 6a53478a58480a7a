"""The step engine: a dossier runs its product's steps in order (SPEC 2.2).

How the workflow moves a dossier (`settle`, run after every document or step change):
- the documents of the current step decide its status: any `CHANGES_REQUESTED` or
  `REJECTED` -> `CHANGES_REQUESTED`; all `UPLOADED`/`APPROVED` -> `UNDER_REVIEW`;
  otherwise (something still `PENDING`, or a step with no document) -> `IN_PROGRESS`;
- all documents `APPROVED` -> the step is completed (`STEP_COMPLETED`), the next step in
  position order that is neither completed nor skipped starts (`STEP_STARTED`, its documents
  created `PENDING`, its due date set and its reminders planned) and the status follows
  that step; after the last step the dossier is `COMPLETED` with `completed_at` and no
  current step.
- A `REJECTED` document works like a change request for the workflow: the client has to
  upload a new version (the document accepts uploads again) and the dossier is
  `CHANGES_REQUESTED` until every document of the step is uploaded again. The difference
  is what it tells the client: the file is not the right document at all.
- Dossiers that are not `ACTIVE` (on hold, completed, cancelled) do not move on their own.

`open_dossier` creates the dossier an order pays for, with its first step started.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from app.auth import Viewer
from app.db import Writes
from app.models import (
    Document,
    DocumentType,
    Dossier,
    Order,
    Product,
    ProductStep,
    StepInstance,
    StepReminder,
)
from app.models.enums import DocumentStatus, DossierStatus, EventType
from app.services import deadlines, events
from app.services.workflow.machine import (
    ACTIVE,
    W,
    add_history,
    can_move,
    derived_status,
    illegal,
    transition,
)

S = DossierStatus
D = DocumentStatus


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
        await finish_step(dossier, step, actor=actor, now=now)
        return
    target = derived_status(statuses)
    if target != dossier.status:
        await transition(dossier, target, actor=actor, reason=reason, cause=W, now=now)


def step_payload(dossier: Dossier, step: StepInstance, **extra: Any) -> dict[str, Any]:
    return {
        "dossierId": str(dossier.id),
        "stepInstanceId": str(step.id),
        "stepId": str(step.step_id),  # type: ignore[attr-defined]
        "position": step.position,
        **extra,
    }


async def finish_step(
    dossier: Dossier,
    step: StepInstance,
    *,
    actor: Viewer | None,
    skipped: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
) -> None:
    """Complete (or skip) the step; when it is the current one, start the next or finish."""
    now = now or datetime.now(UTC)
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
        payload=step_payload(dossier, step, reason=reason)
        if skipped
        else step_payload(dossier, step),
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
    now = now or datetime.now(UTC)
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
        payload=step_payload(dossier, step),
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
    add_history(batch, dossier, None, initial, actor)
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
    now = now or datetime.now(UTC)
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
        payload=step_payload(dossier, step),
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
    add_history(batch, dossier, old, target, actor)
