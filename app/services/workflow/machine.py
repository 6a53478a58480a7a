"""The dossier state machine: its statuses and the moves allowed between them (SPEC 2.2).

One table, `TRANSITIONS`, says which status may follow which, and what may cause the move:
the workflow itself (documents uploaded or reviewed, steps completed), or an agent's
hold / release / cancel. Every move goes through `move`, which checks the table, moves the
dossier in memory and adds the `dossier_status_history` row and the event to a batch of
writes (`app.db.Writes`); `transition` is `move` written at once, with the dossier's row,
in the caller's transaction. The caller holds the dossier row lock (`lock_dossier`,
`select_for_update`).

`ON_HOLD`, `COMPLETED` and `CANCELLED` dossiers do not move on their own (`ACTIVE` lists
the statuses in which the workflow runs).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.db import Writes
from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import Dossier, DossierStatusHistory
from app.models.enums import ACTIVE_DOSSIER_STATUSES, DocumentStatus, DossierStatus, EventType
from app.services import events, waiting
from app.services.codes import WorkflowErrorCode as Code

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
ACTIVE = ACTIVE_DOSSIER_STATUSES  # the workflow runs only in these (app/models/enums.py)

# Status changes that matter on their own get their own event type (the payload is the same).
# The statuses a dossier ends in (none moves on from them): `ended_at` is set on entering.
ENDED = frozenset({S.COMPLETED, S.CANCELLED})
STATUS_EVENTS = {S.COMPLETED: EventType.DOSSIER_COMPLETED, S.CANCELLED: EventType.DOSSIER_CANCELLED}


def illegal(old: DossierStatus, new: DossierStatus) -> DomainError:
    return DomainError(
        Code.ILLEGAL_TRANSITION,
        f"A dossier cannot go from {old.value} to {new.value}.",
        "status",
    )


def can_move(old: DossierStatus, new: DossierStatus, cause: Cause | None = None) -> bool:
    allowed = TRANSITIONS[old].get(new)
    return allowed is not None and (cause is None or allowed == cause)


def derived_status(statuses: Sequence[DocumentStatus]) -> DossierStatus:
    """The status the documents of the current step call for (all APPROVED is handled
    before: it completes the step)."""
    if any(s in (D.CHANGES_REQUESTED, D.REJECTED) for s in statuses):
        return S.CHANGES_REQUESTED
    if statuses and all(s in (D.UPLOADED, D.APPROVED) for s in statuses):
        return S.UNDER_REVIEW
    return S.IN_PROGRESS


async def lock_dossier(dossier_id: uuid.UUID) -> Dossier:
    """The dossier row, locked until the transaction ends (NotFound when missing)."""
    dossier = await Dossier.filter(id=dossier_id).select_for_update().first()
    if dossier is None:
        raise NotFound("No such dossier.")
    return dossier


def history(
    batch: Writes,
    dossier: Dossier,
    old: DossierStatus | None,
    new: DossierStatus,
    *,
    actor: Viewer | None = None,
    reason: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> DossierStatusHistory:
    """The `dossier_status_history` row of a status change (`old` None: the dossier's first
    status) and its event, added to `batch`."""
    actor_type, actor_id = events.actor_of(actor)
    entry = DossierStatusHistory(
        dossier_id=dossier.id,
        old_status=old,
        new_status=new,
        changed_by_type=actor_type,
        changed_by_id=actor_id,
        reason=reason,
        metadata=metadata or {},
    )
    batch.insert(entry)
    events.add(
        batch,
        "dossier",
        dossier.id,
        STATUS_EVENTS.get(new, EventType.DOSSIER_STATUS_CHANGED),
        actor=actor,
        payload={
            "dossierId": str(dossier.id),
            "old": old.value if old else None,
            "new": new.value,
            "reason": reason,
        },
    )
    return entry


def move(
    batch: Writes,
    dossier: Dossier,
    new_status: DossierStatus,
    *,
    actor: Viewer | None = None,
    reason: str | None = None,
    metadata: dict[str, Any] | None = None,
    cause: Cause | None = None,
    now: datetime | None = None,
) -> DossierStatusHistory:
    """The one rule of a status change, as rows for `batch`: the table is checked
    (ILLEGAL_TRANSITION, nothing added), the dossier moves in memory (`status`, and
    `completed_at` when it completes, `ended_at` when it ends) and its history row and
    event join the batch.

    The dossier's own row is the caller's to write (`update_dossier`, once per batch with
    everything else the batch changes in it; a dossier inserted by the batch is written in
    its final state)."""
    old_status = DossierStatus(dossier.status)
    if not can_move(old_status, new_status, cause):
        raise illegal(old_status, new_status)
    dossier.status = new_status
    if new_status == S.COMPLETED:
        dossier.completed_at = now or datetime.now(UTC)
    if new_status in ENDED:  # when retention counts from (app/services/retention.py)
        dossier.ended_at = now or datetime.now(UTC)
    return history(
        batch, dossier, old_status, new_status, actor=actor, reason=reason, metadata=metadata
    )


def update_dossier(batch: Writes, dossier: Dossier, *fields: str) -> None:
    """The UPDATE of the dossier's `fields` (as they are in memory) and `updated_at`."""
    dossier.updated_at = datetime.now(UTC)
    batch.update(
        Dossier,
        {"id": dossier.id},
        **{name: getattr(dossier, name) for name in fields},
        updated_at=dossier.updated_at,
    )


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
    """Move the (locked) dossier to `new_status`, or raise ILLEGAL_TRANSITION: `move`,
    with the dossier's status, completion and metadata written with its history row and
    event (one statement on PostgreSQL). A dossier that stops or starts running takes
    its uploaded versions out of, or back into, the review queue (`waiting`)."""
    was_running = DossierStatus(dossier.status) in ACTIVE
    batch = Writes()
    entry = move(
        batch,
        dossier,
        new_status,
        actor=actor,
        reason=reason,
        metadata=metadata,
        cause=cause,
        now=now,
    )
    update_dossier(batch, dossier, "status", "completed_at", "ended_at", "metadata")
    await batch.run()
    running = new_status in ACTIVE
    if was_running and not running:
        await waiting.leave(dossier.id)
    elif running and not was_running:
        await waiting.rejoin(dossier.id)
    return entry
