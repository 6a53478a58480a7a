from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from app.context import Info
from app.schema.chasing import OverdueDossierType
from app.schema.common import Connection, paginate
from app.services.progress import overdue_steps


@strawberry.type
class ChasingQuery:
    @strawberry.field(
        description="Agents: running dossiers whose current step is past its due date, the "
        "most overdue first; `mine` keeps the steps assigned to me."
    )
    async def overdue_dossiers(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        mine: bool = False,
    ) -> Connection[OverdueDossierType]:
        viewer = await info.context.require_agent()
        agent_id = viewer.agent.id if mine and viewer.agent is not None else None
        return await paginate(
            overdue_steps(now=datetime.now(UTC), agent_id=agent_id),
            first=first,
            after=after,
            last=last,
            before=before,
            order=("due_at", "id"),
        )
