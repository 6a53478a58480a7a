"""The agents' own working data on a dossier (issue 19): internal notes and tags.

Both are staff-only: no client or member of the dossier ever reads them (the services
refuse any viewer who is not an agent, and no event of theirs carries a note's body)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, TimestampedModel

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.dossiers import Dossier


class DossierNote(TimestampedModel):
    """An agent's internal note on a dossier: edited by its author only, deleted (for
    good, no tombstone) by its author or an admin."""

    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="notes", on_delete=fields.CASCADE
    )
    author: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="dossier_notes", null=True, on_delete=fields.SET_NULL
    )
    body = fields.TextField()
    pinned = fields.BooleanField(default=False)
    edited_at = fields.DatetimeField(null=True)  # the last edit of the body (or pin)

    dossier_id: uuid.UUID
    author_id: uuid.UUID | None

    class Meta:
        table = "dossier_notes"
        indexes = (
            # A dossier's notes newest first: a page is an index range.
            Index(fields=("dossier_id", "created_at", "id"), name="idx_dossier_notes_dossier"),
            Index(fields=("author_id",), name="idx_dossier_notes_author_id"),
        )


class DossierTag(CreatedModel):
    """A free-form tag on a dossier, stored normalised (trimmed, single spaces, lower
    case): `name` is unique per dossier."""

    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="tags", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=40)

    dossier_id: uuid.UUID

    class Meta:
        table = "dossier_tags"
        unique_together = (("dossier", "name"),)
        indexes = (
            # The agents' list filtered by a tag, and the tags in use with their counts.
            Index(fields=("name", "dossier_id"), name="idx_dossier_tags_name"),
        )
