"""The agents' desk (issue 19): the inputs and payloads of notes, tags and owners."""

from __future__ import annotations

import strawberry

from app.schema.dossiers import DossierType
from app.schema.notes import DeskUserError, DossierNoteType


@strawberry.input
class AddDossierNoteInput:
    dossier_id: strawberry.ID
    body: str = strawberry.field(description="Up to 5,000 characters; line breaks kept.")
    pinned: bool = False


@strawberry.input
class EditDossierNoteInput:
    note_id: strawberry.ID
    body: str | None = strawberry.field(default=None, description="The new text, if it changes.")
    pinned: bool | None = strawberry.field(default=None, description="Pin or unpin it.")


@strawberry.input
class DeleteDossierNoteInput:
    note_id: strawberry.ID


@strawberry.type
class DossierNotePayload:
    note: DossierNoteType | None = None
    user_errors: list[DeskUserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteDossierNotePayload:
    deleted_note_id: strawberry.ID | None = None
    user_errors: list[DeskUserError] = strawberry.field(default_factory=list)


@strawberry.input
class DossierTagsInput:
    dossier_id: strawberry.ID
    tags: list[str] = strawberry.field(
        description="Trimmed, case-insensitive, up to 40 characters each, 20 per dossier."
    )


@strawberry.input
class AssignDossierOwnerInput:
    dossier_id: strawberry.ID
    agent_id: strawberry.ID | None = strawberry.field(
        default=None, description="An active agent; null: no owner."
    )


@strawberry.type
class DeskDossierPayload:
    dossier: DossierType | None = None
    user_errors: list[DeskUserError] = strawberry.field(default_factory=list)
