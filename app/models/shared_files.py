"""Files the firm shares with a dossier (agents' uploads for the client to download)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.dossiers import Dossier


class SharedFile(CreatedModel):
    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="shared_files", on_delete=fields.CASCADE
    )
    shared_by: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="shared_files", null=True, on_delete=fields.SET_NULL
    )
    file_name = fields.TextField()  # sanitised original name, for display only
    mime_type = fields.CharField(max_length=255)  # detected from the bytes
    file_size_bytes = fields.BigIntField()
    storage_key = fields.TextField()  # generated, never the client's file name
    note = fields.TextField(null=True)

    dossier_id: uuid.UUID
    shared_by_id: uuid.UUID | None

    class Meta:
        table = "shared_files"
        indexes = (
            # A dossier's shared files in (created_at, id) order: a page is an index range.
            Index(fields=("dossier_id", "created_at", "id"), name="idx_shared_files_dossier"),
            Index(fields=("shared_by_id",), name="idx_shared_files_shared_by_id"),
        )
