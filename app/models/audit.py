"""The access audit (issue 19, item 5): who opened which dossier or downloaded which file.

A table of its own, not the `events` outbox: every outbox row is relayed (published to
subscribers, turned into notifications) and read by the timelines, while an access is a
read that changes nothing, far more frequent than any change, and must reach nobody but
the administrators who list it. Its ids are plain columns (no foreign keys): the trail
outlives what it names and an insert of a batch never fails on a row deleted meanwhile.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import UUIDModel, WhereIndex
from app.models.enums import AccessKind, ActorType


class AccessEvent(UUIDModel):
    occurred_at = fields.DatetimeField()
    kind = fields.CharEnumField(AccessKind, max_length=32)
    actor_type = fields.CharEnumField(ActorType, max_length=16)
    actor_id = fields.UUIDField(null=True)  # the agent or profile the access was made by
    client_id = fields.UUIDField(null=True)  # the dossier's client (profile)
    dossier_id = fields.UUIDField(null=True)
    document_id = fields.UUIDField(null=True)  # a document download: its document
    version_id = fields.UUIDField(null=True)  # the version, or the shared file, downloaded
    ip_address = fields.CharField(max_length=64, null=True)
    user_agent = fields.TextField(null=True)

    class Meta:
        table = "access_events"
        indexes = (
            # accessLog per client, per dossier and per document, newest first
            Index(fields=("client_id", "occurred_at", "id"), name="idx_access_events_client"),
            Index(fields=("dossier_id", "occurred_at", "id"), name="idx_access_events_dossier"),
            WhereIndex(
                fields=("document_id", "occurred_at", "id"),
                name="idx_access_events_document",
                where="document_id IS NOT NULL",
            ),
        )
