"""A dossier's owner (the agent responsible for it) and the workload of each agent.

`assign_owner`: an agent or an admin names an active agent as the dossier's owner (or
none); a DOSSIER_OWNER_ASSIGNED event tells the new owner (staff audience only).

`workloads`: for a page of agents, ONE statement of correlated counts, each through an
index: the open dossiers they own (idx_dossiers_owner), the versions waiting for review
and the overdue steps they answer for. A step is the responsibility of its assignee, or,
while nobody is assigned to it, of its dossier's owner: so a document or a step counts for
one agent at most."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from app.compat.tortoise import db_value
from app.db import fetch_rows, is_postgres
from app.domain.viewer import Viewer
from app.errors import DomainError, Forbidden, NotFound
from app.models import Agent, Dossier, StepInstance
from app.models.enums import DossierStatus, EventType
from app.services import events
from app.services.codes import DeskErrorCode

CLOSED = (DossierStatus.COMPLETED.value, DossierStatus.CANCELLED.value)


async def assign_owner(
    viewer: Viewer, dossier_id: uuid.UUID, agent_id: uuid.UUID | None
) -> Dossier:
    if viewer.agent is None:
        raise Forbidden("Only agents assign a dossier's owner.")
    async with in_transaction():
        dossier = await Dossier.filter(id=dossier_id).select_for_update().first()
        if dossier is None:
            raise NotFound("No such dossier.")
        agent = await Agent.filter(id=agent_id).first() if agent_id is not None else None
        if agent_id is not None and agent is None:
            raise DomainError(DeskErrorCode.UNKNOWN_AGENT, "No such agent.", "agentId")
        if agent is not None and not agent.active:
            raise DomainError(DeskErrorCode.AGENT_INACTIVE, "This agent is deactivated.", "agentId")
        previous = dossier.owner_id
        if previous == agent_id:
            return dossier
        dossier.owner_id = agent_id
        await dossier.save(update_fields=["owner_id", "updated_at"])
        await events.record(
            "dossier",
            dossier.id,
            EventType.DOSSIER_OWNER_ASSIGNED,
            actor=viewer,
            payload={
                "agentId": str(agent_id) if agent_id else None,
                "previousAgentId": str(previous) if previous else None,
            },
        )
    return dossier


@dataclass(frozen=True)
class Workload:
    agent_id: uuid.UUID
    open_dossiers: int
    waiting_reviews: int
    overdue_steps: int


_WAITING = (
    "JOIN documents doc ON doc.step_instance_id = si.id "
    "JOIN document_versions v ON v.document_id = doc.id AND v.awaiting_review_since IS NOT NULL"
)
_OPEN_STEP = "si.completed_at IS NULL"
_RUNNING_STEP = "si.completed_at IS NULL AND si.stopped_at IS NULL"
_COUNTS = f"""
SELECT p.agent_id,
 (SELECT COUNT(*) FROM dossiers d
   WHERE d.owner_id = p.agent_id AND d.status NOT IN ('{CLOSED[0]}', '{CLOSED[1]}')),
 (SELECT COUNT(*) FROM step_instances si {_WAITING}
   WHERE si.assigned_to = p.agent_id AND {_OPEN_STEP})
 + (SELECT COUNT(*) FROM dossiers d JOIN step_instances si ON si.dossier_id = d.id {_WAITING}
   WHERE d.owner_id = p.agent_id AND si.assigned_to IS NULL AND {_OPEN_STEP}),
 (SELECT COUNT(*) FROM step_instances si
   WHERE si.assigned_to = p.agent_id AND {_RUNNING_STEP} AND si.due_at < $1)
 + (SELECT COUNT(*) FROM dossiers d JOIN step_instances si ON si.dossier_id = d.id
   WHERE d.owner_id = p.agent_id AND si.assigned_to IS NULL AND {_RUNNING_STEP}
   AND si.due_at < $1)
FROM """


async def workloads(
    agent_ids: Sequence[uuid.UUID], *, now: datetime | None = None
) -> dict[uuid.UUID, Workload]:
    """Each agent's workload, in one statement for all of them."""
    ids = list(dict.fromkeys(uuid.UUID(str(a)) for a in agent_ids))
    if not ids:
        return {}
    moment = db_value(StepInstance, "due_at", now or datetime.now(UTC))
    if is_postgres():
        rows = await fetch_rows(_COUNTS + "unnest($2::uuid[]) AS p(agent_id)", moment, ids)
    else:
        marks = ", ".join(f"(${n})" for n in range(2, len(ids) + 2))
        rows = await fetch_rows(
            f"WITH p(agent_id) AS (VALUES {marks}) " + _COUNTS + "p", moment, *ids
        )
    out = {}
    for agent_id, owned, waiting, overdue in rows:
        key = uuid.UUID(str(agent_id))
        out[key] = Workload(key, int(owned), int(waiting), int(overdue))
    return out
