"""The agents' desk types (issue 19): internal notes, tags in use, workloads.

Below app.schema.dossiers (which shows notes, tags and the owner on a dossier); the inputs
and payloads that answer a Dossier live in app.schema.desk."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from app.context import Info
from app.schema.common import UserError
from app.schema.identity import AgentType
from app.services.codes import DeskErrorCode

strawberry.enum(DeskErrorCode, name="DeskErrorCode")


@strawberry.type(
    name="DossierNote",
    description="An agent's internal note on a dossier: staff only, never shown to its "
    "client or members (nor in their notifications or live updates).",
)
class DossierNoteType:
    body: str
    pinned: bool
    created_at: datetime
    updated_at: datetime
    edited_at: datetime | None = strawberry.field(description="The last edit, if any.")

    if TYPE_CHECKING:  # the root value is the DossierNote row: columns read below
        id: uuid.UUID
        author_id: uuid.UUID | None
        dossier_id: uuid.UUID
    else:
        id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str()

    @strawberry.field(description="Who wrote it (null if that agent was deleted).")
    async def author(self, info: Info) -> AgentType | None:
        if self.author_id is None:
            return None
        return await info.context.loaders.agent.load(self.author_id)


@strawberry.type
class DeskUserError(UserError):
    code: DeskErrorCode


@strawberry.type(description="A tag in use, with how many dossiers have it.")
class DossierTagUse:
    name: str
    dossier_count: int


@strawberry.type(
    description="What one agent answers for: a step is its assignee's, or, unassigned, "
    "its dossier's owner's."
)
class AgentWorkload:
    agent: AgentType
    open_dossiers: int = strawberry.field(description="Dossiers they own, not done nor cancelled.")
    waiting_reviews: int = strawberry.field(
        description="Uploaded versions waiting for a review in the steps they answer for."
    )
    overdue_steps: int = strawberry.field(
        description="Open steps of running dossiers past their due date that they answer for."
    )
