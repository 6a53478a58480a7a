"""The agents' desk (issue 19, item 3): internal notes, tags, owners, workloads. Every
field here is for agents and admins only (FORBIDDEN for clients, whatever the id)."""

from __future__ import annotations

import base64

import orjson
import strawberry

from app.context import Info
from app.errors import BadUserInput, DomainError, NotFound
from app.models import Agent
from app.schema.common import (
    Connection,
    Edge,
    _encode,
    dossier_id_of,
    page_of,
    page_size,
    paginate,
    parse_id,
    row_as,
    user_errors,
)
from app.schema.desk import (
    AddDossierNoteInput,
    AssignDossierOwnerInput,
    DeleteDossierNoteInput,
    DeleteDossierNotePayload,
    DeskDossierPayload,
    DossierNotePayload,
    DossierTagsInput,
    EditDossierNoteInput,
)
from app.schema.dossiers import DossierType
from app.schema.identity import AgentType
from app.schema.notes import AgentWorkload, DeskUserError, DossierNoteType, DossierTagUse
from app.services.codes import DeskErrorCode
from app.services.desk import notes, owners, tags


def _errors(error: DomainError) -> list[DeskUserError]:
    return user_errors(error, DeskUserError, DeskErrorCode)


def _after_tag(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return value[0]
    except (ValueError, orjson.JSONDecodeError):
        pass
    raise BadUserInput("Invalid cursor.")


@strawberry.type
class DeskQuery:
    @strawberry.field(
        description="Agents: the tags in use, by name, with how many dossiers have each."
    )
    async def dossier_tags(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[DossierTagUse]:
        viewer = await info.context.require_agent()
        size, _ = page_size(first, None)
        rows = await tags.tags_in_use(viewer, size=size + 1, after=_after_tag(after))

        async def count() -> int:
            return await tags.tags_in_use_count(viewer)

        return page_of(
            [DossierTagUse(name=r.name, dossier_count=r.count) for r in rows],
            size,
            backwards=False,
            after=after,
            before=None,
            cursor=lambda row: _encode([row.name]),
            count=count,
        )

    @strawberry.field(
        description="Agents and admins: each active agent's open dossiers, waiting reviews "
        "and overdue steps, by name (one aggregate per page)."
    )
    async def agent_workload(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[AgentWorkload]:
        await info.context.require_agent()
        page = await paginate(
            Agent.filter(active=True),
            first=first,
            after=after,
            last=None,
            before=None,
            order=("name", "id"),
        )
        counts = await owners.workloads([edge.node.id for edge in page.edges])
        edges = []
        for edge in page.edges:
            load = counts[edge.node.id]
            node = AgentWorkload(
                agent=row_as(AgentType, edge.node),
                open_dossiers=load.open_dossiers,
                waiting_reviews=load.waiting_reviews,
                overdue_steps=load.overdue_steps,
            )
            edges.append(Edge(cursor=edge.cursor, node=node))
        return Connection(edges=edges, page_info=page.page_info, _count=page._count)


@strawberry.type
class DeskMutation:
    @strawberry.mutation(
        description="Agents: an internal note on a dossier (never shown to its client or "
        "members); the dossier's owner is told (staff only)."
    )
    async def add_dossier_note(self, info: Info, input: AddDossierNoteInput) -> DossierNotePayload:
        viewer = await info.context.require_agent()
        try:
            note = await notes.add_note(
                viewer, await dossier_id_of(input.dossier_id), input.body, pinned=input.pinned
            )
        except DomainError as error:
            return DossierNotePayload(user_errors=_errors(error))
        return DossierNotePayload(note=row_as(DossierNoteType, note))

    @strawberry.mutation(description="Its author: change a note's text or pin.")
    async def edit_dossier_note(
        self, info: Info, input: EditDossierNoteInput
    ) -> DossierNotePayload:
        viewer = await info.context.require_agent()
        try:
            note = await notes.edit_note(
                viewer, parse_id(input.note_id, what="note"), body=input.body, pinned=input.pinned
            )
        except DomainError as error:
            return DossierNotePayload(user_errors=_errors(error))
        return DossierNotePayload(note=row_as(DossierNoteType, note))

    @strawberry.mutation(
        description="Its author or an admin: delete a note for good (an event keeps who "
        "deleted which note, never its text)."
    )
    async def delete_dossier_note(
        self, info: Info, input: DeleteDossierNoteInput
    ) -> DeleteDossierNotePayload:
        viewer = await info.context.require_agent()
        try:
            note = await notes.delete_note(viewer, parse_id(input.note_id, what="note"))
        except DomainError as error:
            return DeleteDossierNotePayload(user_errors=_errors(error))
        return DeleteDossierNotePayload(deleted_note_id=strawberry.ID(str(note.id)))

    @strawberry.mutation(description="Agents: add tags to a dossier (normalised, lower case).")
    async def tag_dossier(self, info: Info, input: DossierTagsInput) -> DeskDossierPayload:
        viewer = await info.context.require_agent()
        try:
            dossier = await tags.tag_dossier(
                viewer, await dossier_id_of(input.dossier_id), input.tags
            )
        except DomainError as error:
            return DeskDossierPayload(user_errors=_errors(error))
        return DeskDossierPayload(dossier=row_as(DossierType, dossier))

    @strawberry.mutation(description="Agents: remove tags from a dossier.")
    async def untag_dossier(self, info: Info, input: DossierTagsInput) -> DeskDossierPayload:
        viewer = await info.context.require_agent()
        try:
            dossier = await tags.untag_dossier(
                viewer, await dossier_id_of(input.dossier_id), input.tags
            )
        except DomainError as error:
            return DeskDossierPayload(user_errors=_errors(error))
        return DeskDossierPayload(dossier=row_as(DossierType, dossier))

    @strawberry.mutation(
        description="Agents and admins: name the agent responsible for a dossier (an active "
        "agent; null for none); they are told."
    )
    async def assign_dossier_owner(
        self, info: Info, input: AssignDossierOwnerInput
    ) -> DeskDossierPayload:
        viewer = await info.context.require_agent()
        try:
            agent_id = parse_id(input.agent_id, what="agent") if input.agent_id else None
        except NotFound:  # a malformed id answers like a missing agent
            return DeskDossierPayload(
                user_errors=_errors(
                    DomainError(DeskErrorCode.UNKNOWN_AGENT, "No such agent.", "agentId")
                )
            )
        try:
            dossier = await owners.assign_owner(
                viewer, await dossier_id_of(input.dossier_id), agent_id
            )
        except DomainError as error:
            return DeskDossierPayload(user_errors=_errors(error))
        return DeskDossierPayload(dossier=row_as(DossierType, dossier))
