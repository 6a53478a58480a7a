"""The step engine: a dossier runs its product's steps in order (SPEC 2.2).

How the workflow moves a dossier (`settle`, run after every document or step change):
- the documents of the current step decide its status: any `CHANGES_REQUESTED` or
  `REJECTED` -> `CHANGES_REQUESTED`; all `UPLOADED`/`APPROVED` -> `UNDER_REVIEW`;
  otherwise (something still `PENDING`, or a step with no document) -> `IN_PROGRESS`;
- `WAIVED` documents (an agent no longer needs them) are left out of both rules;
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

Starting a step and finishing one are written once, as rules that add rows to a batch of
writes (`start_rows`, `finish_rows`; `app.db.Writes`): `start_step`, `finish_step` and
`settle` apply them to rows in the database (after their reads, one batch: one statement on
PostgreSQL), and `open_dossier`, which creates the dossier an order pays for, applies
`start_rows` to its first step inside the payment webhook's batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from app.db import Writes
from app.domain.viewer import Viewer
from app.models import (
    Document,
    Dossier,
    DossierMember,
    Order,
    Product,
    ProductStep,
    StepDocumentType,
    StepInstance,
)
from app.models.enums import DocumentStatus, DossierStatus, EventType
from app.services import deadlines, events, waiting
from app.services.catalog import asked_for
from app.services.references import next_reference
from app.services.workflow.machine import (
    ACTIVE,
    W,
    derived_status,
    history,
    move,
    transition,
    update_dossier,
)

S = DossierStatus
D = DocumentStatus


async def current_step(dossier: Dossier) -> StepInstance | None:
    if dossier.current_step_instance_id is None:
        return None
    return await StepInstance.filter(id=dossier.current_step_instance_id).first()


def step_payload(dossier: Dossier, step: StepInstance, **extra: Any) -> dict[str, Any]:
    return {
        "dossierId": str(dossier.id),
        "stepInstanceId": str(step.id),
        "stepId": str(step.step_id),
        "position": step.position,
        **extra,
    }


# --- the rules, as rows for a batch ----------------------------------------------------
# Each rule reads nothing: the caller reads what it needs first, the rule changes the
# instances in memory and adds the rows to write to a `Writes` batch, the caller runs it.
# The batched writer refuses two UPDATEs of one row and an UPDATE of a row it inserts, so
# a rule writes each existing row once, with all its changes, and a row the batch itself
# inserts (a dossier being opened) not at all: it goes out in its final state.


def settled_status(dossier: Dossier, statuses: Sequence[DocumentStatus]) -> DossierStatus | None:
    """What `settle` does when the current step's documents have `statuses` and are not
    all approved (all approved completes the step): the status they call for, or None when
    the dossier stays as it is (it already has that status, or its workflow is stopped)."""
    if dossier.status not in ACTIVE:
        return None
    target = derived_status(statuses)
    return None if target == dossier.status else target


def start_rows(
    batch: Writes,
    dossier: Dossier,
    step: StepInstance,
    document_type_ids: Sequence[uuid.UUID | tuple[uuid.UUID, uuid.UUID | None]],
    *,
    actor: Viewer | None,
    now: datetime,
    inserted: bool = False,
) -> None:
    """Start `step`, then settle: THE rule of starting a step, for every caller.

    The step gets its start and its due date (`started_at + estimated_duration_hours`) and
    becomes the dossier's current step; its reminders are planned (the slots after its
    start: a step starts once, so it has none yet); one document per type of
    `document_type_ids` (the step's document types in order) is created `PENDING`;
    STEP_STARTED is recorded; then the dossier's status follows the step as `settle` would
    move it (its documents are all PENDING, or it has none: `IN_PROGRESS`).

    `inserted`: the dossier and the step are rows of this batch (a dossier being opened),
    written in their final state; otherwise each gets its one UPDATE here."""
    step.started_at = now
    step.due_at = deadlines.due_at_for(now, step.estimated_duration_hours)
    if not inserted:
        batch.update(StepInstance, {"id": step.id}, started_at=now, due_at=step.due_at)
    batch.insert(*deadlines.first_plan(step, dossier_id=dossier.id))
    dossier.current_step_instance_id = step.id
    documents = [
        Document(
            dossier_id=dossier.id,
            document_type_id=type_id,
            step_instance_id=step.id,
            member_id=member_id,
            status=DocumentStatus.PENDING,
        )
        for type_id, member_id in map(_for_whom, document_type_ids)
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
    target = settled_status(dossier, [D(d.status) for d in documents])
    if target is not None:
        move(batch, dossier, target, actor=actor, cause=W, now=now)
    if not inserted:
        update_dossier(batch, dossier, "current_step_instance_id", "status")


def _for_whom(
    item: uuid.UUID | tuple[uuid.UUID, uuid.UUID | None],
) -> tuple[uuid.UUID, uuid.UUID | None]:
    """A document to create: its type, and the member it is for (None: the dossier's)."""
    return item if isinstance(item, tuple) else (item, None)


def finish_rows(
    batch: Writes,
    dossier: Dossier,
    step: StepInstance,
    following: StepInstance | None,
    followingasked_documents: Sequence[uuid.UUID | tuple[uuid.UUID, uuid.UUID | None]],
    *,
    actor: Viewer | None,
    skipped: bool = False,
    reason: str | None = None,
    now: datetime,
) -> None:
    """Complete (or skip) `step`; when it is the current one, start `following` (the next
    step to do, with its document types) or, after the last, complete the dossier."""
    step.completed_at = now
    changes: dict[str, Any] = {"completed_at": now}
    if skipped:
        step.skipped_at = now
        changes["skipped_at"] = now
    batch.update(StepInstance, {"id": step.id}, **changes)
    events.add(
        batch,
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
    if following is not None:
        start_rows(batch, dossier, following, followingasked_documents, actor=actor, now=now)
        return
    dossier.current_step_instance_id = None
    move(
        batch, dossier, S.COMPLETED, actor=actor, reason="All steps are complete.", cause=W, now=now
    )
    update_dossier(
        batch,
        dossier,
        "current_step_instance_id",
        "status",
        "completed_at",
        "ended_at",
        "metadata",
    )


# --- the engine, on rows in the database (the caller holds the dossier lock) -----------


async def asked_documents(
    dossier: Dossier, step: StepInstance
) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    """The documents the step asks for: one per document type (step_document_types, in
    (position, code) order; but those archived before the dossier opened, `asked_for`),
    and for a per-member type one per active member of its role (none without one)."""
    rows = (
        await StepDocumentType.filter(step_id=step.step_id)
        .order_by("position", "document_type__code")
        .values(
            "document_type_id",
            archived_at="document_type__archived_at",
            per_member_role="document_type__per_member_role",
        )
    )
    rows = [row for row in rows if asked_for(row["archived_at"], dossier.created_at)]
    roles = {row["per_member_role"] for row in rows} - {None}
    members: dict[str, list[uuid.UUID]] = {}
    if roles:
        for member in await DossierMember.filter(
            dossier_id=dossier.id, removed_at=None, role__in=list(roles)
        ).order_by("created_at"):
            members.setdefault(member.role, []).append(member.id)
    out: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    for row in rows:
        role = row["per_member_role"]
        if role is None:
            out.append((row["document_type_id"], None))
        else:
            out += [(row["document_type_id"], m) for m in members.get(role, [])]
    return out


async def start_step(
    dossier: Dossier, step: StepInstance, *, actor: Viewer | None, now: datetime | None = None
) -> None:
    """Start `step` of the (locked) dossier and settle (`start_rows`), written together."""
    batch = Writes()
    start_rows(
        batch,
        dossier,
        step,
        await asked_documents(dossier, step),
        actor=actor,
        now=now or datetime.now(UTC),
    )
    await batch.run()


async def finish_step(
    dossier: Dossier,
    step: StepInstance,
    *,
    actor: Viewer | None,
    skipped: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
) -> None:
    """Complete (or skip) the step; when it is the current one, start the next or finish
    (`finish_rows`), written together."""
    following = None
    document_type_ids: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    if dossier.current_step_instance_id == step.id:
        following = (
            await StepInstance.filter(
                dossier_id=dossier.id, completed_at=None, position__gt=step.position
            )
            .order_by("position")
            .first()
        )
        if following is not None:
            document_type_ids = await asked_documents(dossier, following)
    batch = Writes()
    finish_rows(
        batch,
        dossier,
        step,
        following,
        document_type_ids,
        actor=actor,
        skipped=skipped,
        reason=reason,
        now=now or datetime.now(UTC),
    )
    await batch.run()
    # A step done with documents still to review (skipped), or the dossier it completed:
    # its versions leave the review queue (a step completed by approvals has none left).
    if dossier.status not in ACTIVE:
        await waiting.leave(dossier.id)
    elif skipped:
        await waiting.leave(dossier.id, step_instance_id=step.id)


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
    # A WAIVED document is no longer needed: the others decide (all of them waived: done).
    remaining = [s for s in statuses if s != D.WAIVED]
    if statuses and all(s == D.APPROVED for s in remaining):
        await finish_step(dossier, step, actor=actor, now=now)
        return
    target = settled_status(dossier, remaining)
    if target is not None:
        await transition(dossier, target, actor=actor, reason=reason, cause=W, now=now)


async def open_dossier(
    order: Order,
    *,
    actor: Viewer | None = None,
    now: datetime | None = None,
    product: Product | None = None,
    writes: Writes | None = None,
) -> Dossier:
    """Create the dossier an order pays for, with every step, the first one started
    (`start_rows`, as for any step).

    Runs inside the caller's transaction (the payment fulfilment). After one read (the
    product's steps and their document types) the rows are written together: given
    `writes`, they join the caller's batch and the caller runs it; otherwise they are
    written before returning. Sets `order.dossier_id` (the caller saves the order when it
    passes `writes`)."""
    product = product or await order.product
    # The product's steps in order, each with its document types in (position, code)
    # order: one read. Archived steps and document types are left out (`asked_for`).
    product_steps: dict[uuid.UUID, dict[str, Any]] = {}
    document_types: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in (
        await ProductStep.filter(product_id=product.id, step__archived_at__isnull=True)
        .order_by(
            "position",
            "step__document_type_links__position",
            "step__document_type_links__document_type__code",
        )
        .values(
            "id",
            "step_id",
            "position",
            "is_required",
            "estimated_duration_hours",
            document_type_id="step__document_type_links__document_type_id",
            archived_at="step__document_type_links__document_type__archived_at",
            per_member_role="step__document_type_links__document_type__per_member_role",
        )
    ):
        product_steps.setdefault(row["id"], row)
        if (
            row["document_type_id"] is not None
            and asked_for(row["archived_at"], None)
            and row["per_member_role"] is None  # a new dossier has no member yet
        ):
            document_types.setdefault(row["id"], []).append(row["document_type_id"])
    batch = writes if writes is not None else Writes()
    initial = DossierStatus(product.initial_status)
    dossier = Dossier(
        user_id=order.user_id,
        product_id=product.id,
        type=product.dossier_type,
        status=initial,
        reference=await next_reference(),  # in the caller's transaction, as the dossier
    )
    batch.insert(dossier)
    history(batch, dossier, None, initial, actor=actor)
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
    order.dossier_id = dossier.id
    if instances:
        first = next(iter(product_steps))
        start_rows(
            batch,
            dossier,
            instances[0],
            document_types.get(first, []),
            actor=actor,
            now=now or datetime.now(UTC),
            inserted=True,
        )
    if writes is None:
        order.updated_at = datetime.now(UTC)
        batch.update(Order, {"id": order.id}, dossier_id=dossier.id, updated_at=order.updated_at)
        await batch.run()
    return dossier
