"""The step engine is one rule, whoever applies it: a dossier opened by the payment's batch
(`open_dossier` into the webhook's `Writes`, the dossier and its steps inserted in their
final state) and the same dossier built row by row, its first step started on rows already
in the database (`start_step`, then `settle`), end up with the same rows: steps, due dates,
documents, reminders, status history and events (ids and creation times aside)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from app.db import Writes
from app.models import (
    Document,
    Dossier,
    DossierStatusHistory,
    Event,
    Order,
    Product,
    ProductStep,
    StepInstance,
    StepReminder,
)
from app.models.enums import DossierStatus, EventType, OrderStatus
from app.services.references import next_reference
from app.services.workflow.machine import lock_dossier
from app.services.workflow.steps import open_dossier, settle, start_step
from tests.chasing_support import product_with
from tests.factories import Account, make_client

# (document types' extensions, estimated hours) per step; positions of the optional steps
PRODUCTS = {
    "documents and a due date": ([(("pdf", "png"), 48), (("pdf",), 24), ((), None)], (2,)),
    "no document, no estimate": ([((), None), (("pdf",), 24)], ()),
    "one step": ([(("pdf",), 72)], ()),
}


async def _order(owner: Account, product: Product) -> Order:
    return await Order.create(
        user_id=owner.obj.id,
        product_id=product.id,
        amount=product.price_amount,
        currency=product.currency,
        status=OrderStatus.PAID,
        paid_at=datetime.now(UTC),
    )


async def _opened_by_the_batch(owner: Account, product: Product, now: datetime) -> uuid.UUID:
    """As the payment webhook opens it: every row joins the caller's batch."""
    order = await _order(owner, product)
    async with in_transaction():
        writes = Writes()
        dossier = await open_dossier(order, product=product, writes=writes, now=now)
        writes.update(Order, {"id": order.id}, dossier_id=dossier.id)
        await writes.run()
    return dossier.id


async def _opened_row_by_row(owner: Account, product: Product, now: datetime) -> uuid.UUID:
    """The dossier in its initial status and its steps (as `open_dossier` copies them from
    the product), saved; then the first step started and the dossier settled, as the
    engine does for any later step."""
    async with in_transaction():
        created = await Dossier.create(
            user_id=owner.obj.id,
            product_id=product.id,
            type=product.dossier_type,
            status=product.initial_status,
            reference=await next_reference(),
        )
        for product_step in await ProductStep.filter(product_id=product.id).order_by("position"):
            await StepInstance.create(
                dossier_id=created.id,
                step_id=product_step.step_id,  # type: ignore[attr-defined]
                position=product_step.position,
                is_required=product_step.is_required,
                estimated_duration_hours=product_step.estimated_duration_hours,
            )
        dossier = await lock_dossier(created.id)
        first = await StepInstance.filter(dossier_id=dossier.id).order_by("position").first()
        assert first is not None
        await start_step(dossier, first, actor=None, now=now)
        await settle(dossier, actor=None, now=now)
    return created.id


def _anonymous(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _anonymous(v, names) for k, v in value.items()}
    if isinstance(value, str):
        return names.get(value, value)
    return value


async def _rows(dossier_id: uuid.UUID) -> dict[str, Any]:
    """Every row the dossier has, with its own ids replaced by names ("dossier",
    "step 1" …). Its creation (the first history row, its event, DOSSIER_CREATED) is left
    out: the row-by-row dossier is saved, not opened."""
    dossier = await Dossier.get(id=dossier_id)
    steps = await StepInstance.filter(dossier_id=dossier_id).order_by("position")
    position = {s.id: s.position for s in steps}
    names = {str(dossier_id): "dossier", **{str(s.id): f"step {s.position}" for s in steps}}
    documents = await Document.filter(dossier_id=dossier_id)
    reminders = await StepReminder.filter(dossier_id=dossier_id)
    history = await DossierStatusHistory.filter(dossier_id=dossier_id).order_by("created_at", "id")
    recorded = await Event.filter(entity_type="dossier", entity_id=dossier_id).order_by(
        "created_at", "id"
    )
    return {
        "dossier": (
            dossier.status,
            position.get(dossier.current_step_instance_id),  # type: ignore[arg-type]
            dossier.completed_at,
            dossier.metadata,
        ),
        "steps": [
            (
                s.position,
                s.step_id,  # type: ignore[attr-defined]
                s.is_required,
                s.estimated_duration_hours,
                s.started_at,
                s.due_at,
                s.completed_at,
                s.skipped_at,
                s.assigned_to_id,  # type: ignore[attr-defined]
            )
            for s in steps
        ],
        "documents": sorted(
            (
                position[d.step_instance_id],  # type: ignore[attr-defined]
                str(d.document_type_id),  # type: ignore[attr-defined]
                d.status,
                d.current_version_id,
            )
            for d in documents
        ),
        "reminders": sorted(
            (
                position[r.step_instance_id],  # type: ignore[attr-defined]
                r.kind,
                r.slot,
                r.scheduled_for,
                r.status,
            )
            for r in reminders
        ),
        "history": [
            (
                h.old_status,
                h.new_status,
                h.changed_by_type,
                h.changed_by_id,
                h.reason,
                h.metadata,
            )
            for h in history
            if h.old_status is not None
        ],
        "events": [
            (e.event_type, e.actor_type, e.actor_id, _anonymous(e.payload, names))
            for e in recorded
            if e.event_type != EventType.DOSSIER_CREATED
            and not (e.event_type == EventType.DOSSIER_STATUS_CHANGED and e.payload["old"] is None)
        ],
    }


@pytest.mark.parametrize("initial", [DossierStatus.CREATED, DossierStatus.IN_PROGRESS])
@pytest.mark.parametrize("shape", list(PRODUCTS))
async def test_the_batch_and_the_direct_path_write_the_same_rows(shape, initial):
    steps, optional = PRODUCTS[shape]
    product = await product_with(steps, optional=optional)
    product.initial_status = initial
    await product.save()
    owner = await make_client()
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)

    batched = await _rows(await _opened_by_the_batch(owner, product, now))
    direct = await _rows(await _opened_row_by_row(owner, product, now))

    assert batched == direct
    # and the rows are the ones the rule asks for
    first = batched["steps"][0]
    hours = steps[0][1]
    assert first[4] == now
    assert first[5] == (now + timedelta(hours=hours) if hours else None)
    assert all(s[4] is None for s in batched["steps"][1:])
    assert batched["dossier"][:2] == (DossierStatus.IN_PROGRESS, 1)
    assert [d[0] for d in batched["documents"]] == [1] * len(steps[0][0])
    assert batched["reminders"], "a started step has its reminders planned"
    assert all(r[3] > now for r in batched["reminders"])
    moves = initial == DossierStatus.CREATED  # else the dossier already has its status
    assert [h[:2] for h in batched["history"]] == (
        [(DossierStatus.CREATED, DossierStatus.IN_PROGRESS)] if moves else []
    )
    assert [e[0] for e in batched["events"]] == [EventType.STEP_STARTED] + (
        [EventType.DOSSIER_STATUS_CHANGED] if moves else []
    )
