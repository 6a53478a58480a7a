"""Internal notes on a dossier: agents only, never shown to its client or members.

A note's body lives in `dossier_notes` only: its events carry the note's id, never its
body, so nothing that reads events (the timeline, live updates, notifications, exports)
can carry it. Deleting a note deletes the row (hard delete); the DOSSIER_NOTE_DELETED
event keeps who deleted which note and when."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, Forbidden, NotFound
from app.models import Agent, Dossier, DossierNote
from app.models.enums import EventType
from app.services import events
from app.services.codes import DeskErrorCode
from app.services.validation import check_text

NOTE_MAX = 5000


def _agent(viewer: Viewer) -> Agent:
    if viewer.agent is None:
        raise Forbidden("Only agents read and write internal notes.")
    return viewer.agent


def dossier_notes(viewer: Viewer, dossier_id: uuid.UUID) -> QuerySet[DossierNote]:
    """A dossier's notes (order them newest first); agents only."""
    _agent(viewer)
    return DossierNote.filter(dossier_id=dossier_id)


def _body(value: str) -> str:
    return check_text(value, "body", max_length=NOTE_MAX)


async def add_note(
    viewer: Viewer, dossier_id: uuid.UUID, body: str, *, pinned: bool = False
) -> DossierNote:
    agent = _agent(viewer)
    text = _body(body)
    if not await Dossier.filter(id=dossier_id).exists():
        raise NotFound("No such dossier.")
    async with in_transaction():
        note = await DossierNote.create(
            dossier_id=dossier_id, author_id=agent.id, body=text, pinned=pinned
        )
        await events.record(
            "dossier",
            dossier_id,
            EventType.DOSSIER_NOTE_ADDED,
            actor=viewer,
            payload={"noteId": str(note.id), "pinned": pinned},
        )
    return note


async def _note(viewer: Viewer, note_id: uuid.UUID) -> DossierNote:
    _agent(viewer)
    note = await DossierNote.filter(id=note_id).select_for_update().first()
    if note is None:
        raise NotFound("No such note.")
    return note


async def edit_note(
    viewer: Viewer,
    note_id: uuid.UUID,
    *,
    body: str | None = None,
    pinned: bool | None = None,
    now: datetime | None = None,
) -> DossierNote:
    """Its author changes the body and/or the pin; another agent gets NOT_AUTHOR."""
    agent = _agent(viewer)
    text = _body(body) if body is not None else None
    async with in_transaction():
        note = await _note(viewer, note_id)
        if note.author_id != agent.id:
            raise DomainError(DeskErrorCode.NOT_AUTHOR, "Only its author edits a note.")
        changed = []
        if text is not None and text != note.body:
            note.body = text
            changed.append("body")
        if pinned is not None and pinned != note.pinned:
            note.pinned = pinned
            changed.append("pinned")
        if not changed:
            return note
        note.edited_at = now or datetime.now(UTC)
        await note.save(update_fields=[*changed, "edited_at", "updated_at"])
        await events.record(
            "dossier",
            note.dossier_id,
            EventType.DOSSIER_NOTE_EDITED,
            actor=viewer,
            payload={"noteId": str(note.id), "changed": changed},
        )
    return note


async def delete_note(viewer: Viewer, note_id: uuid.UUID) -> DossierNote:
    """Its author or an admin deletes a note, for good (the event stays)."""
    agent = _agent(viewer)
    async with in_transaction():
        note = await _note(viewer, note_id)
        if note.author_id != agent.id and not viewer.is_admin:
            raise DomainError(
                DeskErrorCode.NOT_AUTHOR, "Only its author or an administrator deletes a note."
            )
        await DossierNote.filter(id=note.id).delete()
        await events.record(
            "dossier",
            note.dossier_id,
            EventType.DOSSIER_NOTE_DELETED,
            actor=viewer,
            payload={"noteId": str(note.id)},
        )
    return note
