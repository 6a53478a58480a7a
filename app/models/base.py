"""Shared model pieces: UUID primary keys and timestamps (timezone-aware everywhere)."""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class UUIDModel(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)

    class Meta:
        abstract = True


class CreatedModel(UUIDModel):
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        abstract = True


class TimestampedModel(CreatedModel):
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        abstract = True
