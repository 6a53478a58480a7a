"""The GDPR's rights of access and erasure (issue 19): data-export archives, and the stored
files an erasure (or an expired export) still has to delete."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import TimestampedModel
from app.models.enums import ActorType, DataExportStatus

if TYPE_CHECKING:
    from app.models.profiles import Profile


class DataExport(TimestampedModel):
    """One archive of everything about a client (right of access, GDPR art. 15): asked by
    the client or an admin, built by the worker (REQUESTED, BUILDING, READY or FAILED),
    served through a signed link until expires_at, then deleted (EXPIRED)."""

    profile: fields.ForeignKeyRelation[Profile] = fields.ForeignKeyField(
        "models.Profile", related_name="data_exports", on_delete=fields.CASCADE
    )
    status = fields.CharEnumField(
        DataExportStatus, max_length=16, default=DataExportStatus.REQUESTED
    )
    requested_by_type = fields.CharEnumField(ActorType, max_length=16)
    requested_by_id = fields.UUIDField(null=True)  # the client, or the admin
    storage_key = fields.TextField(null=True)
    size_bytes = fields.BigIntField(null=True)
    attempts = fields.IntField(default=0)
    claimed_until = fields.DatetimeField(null=True)  # a worker's lease while BUILDING
    ready_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)  # the link's end, set when READY
    failed_at = fields.DatetimeField(null=True)
    expired_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)

    profile_id: uuid.UUID

    class Meta:
        table = "data_exports"
        indexes = (
            # a client's exports (and "one pending at a time"), newest first
            Index(fields=("profile_id", "created_at"), name="idx_data_exports_profile"),
            # the worker: what to build (by age), what to expire (by expiry)
            Index(fields=("status", "created_at"), name="idx_data_exports_due"),
            Index(fields=("status", "expires_at"), name="idx_data_exports_expiring"),
        )


class FileDeletion(TimestampedModel):
    """A stored file to delete (an erased client's document, an expired export): written in
    the transaction that stops pointing at it, deleted after commit, retried by the worker
    until the storage says it is gone."""

    storage_key = fields.TextField()
    reason = fields.CharField(max_length=32)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    last_error = fields.TextField(null=True)

    class Meta:
        table = "file_deletions"
        indexes = (Index(fields=("next_attempt_at",), name="idx_file_deletions_due"),)
