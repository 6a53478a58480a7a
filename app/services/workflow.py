"""The dossier state machine and step engine.

All status moves go through `transition`, which checks the table below, writes the status
history row and the event in the caller's transaction. The caller holds the dossier row
lock (`select_for_update`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.auth import Viewer
from app.errors import DomainError
from app.models import (
    Document,
    DocumentType,
    Dossier,
    DossierStatusHistory,
    Order,
    ProductStep,
    StepInstance,
)
from app.models.enums import DocumentStatus, DossierStatus, EventType
from app.services import events

S = DossierStatus
# from-status -> the statuses it may move to
TRANSITIONS: dict[DossierStatus, frozenset[DossierStatus]] = {
    S.CREATED: frozenset({S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED, S.COMPLETED}),
    S.IN_PROGRESS: frozenset({S.UNDER_REVIEW, S.ON_HOLD, S.CANCELLED, S.COMPLETED}),
    S.UNDER_REVIEW: frozenset(
        {S.IN_PROGRESS, S.CHANGES_REQUESTED, S.ON_HOLD, S.CANCELLED, S.COMPLETED}
    ),
    S.CHANGES_REQUESTED: frozenset({S.UNDER_REVIEW, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.ON_HOLD: frozenset(
        {S.CREATED, S.IN_PROGRESS, S.UNDER_REVIEW, S.CHANGES_REQUESTED, S.CANCELLED}
    ),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Status changes that matter on their own get their own event type (the payload is the same).
STATUS_EVENTS = {S.COMPLETED: EventType.DOSSIER_COMPLETED, S.CANCELLED: EventType.DOSSIER_CANCELLED}


async def transition(
    dossier: Dossier,
    new_status: DossierStatus,
    *,
    actor: Viewer | None = None,
    reason: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> DossierStatusHistory:
    old_status = DossierStatus(dossier.status)
    if new_status not in TRANSITIONS[old_status]:
        raise DomainError(
            "ILLEGAL_TRANSITION",
            f"A dossier cannot go from {old_status.value} to {new_status.value}.",
            "status",
        )
    dossier.status = new_status
    if new_status == S.COMPLETED:
        dossier.completed_at = datetime.now(UTC)
    await dossier.save(update_fields=["status", "completed_at", "updated_at"])
    return await _history(dossier, old_status, new_status, actor, reason, metadata)


async def _history(
    dossier: Dossier,
    old: DossierStatus | None,
    new: DossierStatus,
    actor: Viewer | None,
    reason: str | None,
    metadata: dict[str, Any] | None,
) -> DossierStatusHistory:
    actor_type, actor_id = events.actor_of(actor)
    entry = await DossierStatusHistory.create(
        dossier_id=dossier.id,
        old_status=old,
        new_status=new,
        changed_by_type=actor_type,
        changed_by_id=actor_id,
        reason=reason,
        metadata=metadata or {},
    )
    await events.record(
        "dossier",
        dossier.id,
        STATUS_EVENTS.get(new, EventType.DOSSIER_STATUS_CHANGED),
        actor=actor,
        payload={"old": old.value if old else None, "new": new.value, "reason": reason},
    )
    return entry


async def start_step(dossier: Dossier, step: StepInstance, *, actor: Viewer | None) -> None:
    """Start `step`: it becomes current, its documents are created PENDING."""
    step.started_at = datetime.now(UTC)
    await step.save(update_fields=["started_at"])
    dossier.current_step_instance_id = step.id
    await dossier.save(update_fields=["current_step_instance_id", "updated_at"])
    document_types = await DocumentType.filter(required_step_id=step.step_id).order_by("code")
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
        payload={"stepInstanceId": str(step.id), "stepId": str(step.step_id)},
    )
    if dossier.status == S.CREATED:
        await transition(dossier, S.IN_PROGRESS, actor=actor)


async def open_dossier(order: Order, *, actor: Viewer | None = None) -> Dossier:
    """Create the dossier an order pays for, with every step, the first one started.

    Runs inside the caller's transaction (the payment fulfilment).
    """
    product = await order.product
    dossier = await Dossier.create(
        user_id=order.user_id,  # type: ignore[attr-defined]
        product_id=product.id,
        type=product.dossier_type,
        status=product.initial_status,
    )
    await _history(dossier, None, DossierStatus(product.initial_status), actor, None, None)
    await events.record(
        "dossier",
        dossier.id,
        EventType.DOSSIER_CREATED,
        actor=actor,
        payload={"orderId": str(order.id), "productId": str(product.id)},
    )
    product_steps = await ProductStep.filter(product_id=product.id).order_by("position")
    instances = [
        StepInstance(
            dossier_id=dossier.id,
            step_id=ps.step_id,  # type: ignore[attr-defined]
            position=ps.position,
            is_required=ps.is_required,
        )
        for ps in product_steps
    ]
    for instance in instances:  # created one by one so each gets its id before use
        await instance.save()
    order.dossier_id = dossier.id  # type: ignore[attr-defined]
    await order.save(update_fields=["dossier_id", "updated_at"])
    if instances:
        await start_step(dossier, instances[0], actor=actor)
    return dossier
