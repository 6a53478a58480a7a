"""Shared model pieces: UUID primary keys and timestamps (timezone-aware everywhere)."""

from __future__ import annotations

import uuid
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class WhereIndex(Index):
    """A partial index: `CREATE INDEX … ON table (fields) WHERE <where>`.

    Tortoise's own PartialIndex only writes `column = value` conditions (so no
    `IS NULL`); this one takes the SQL condition as written, the same on PostgreSQL and
    SQLite. It lives in the migration state like any Index (its `extra` is part of what
    the autodetector compares), so the models and the migrations stay in step.
    """

    def __init__(self, *, fields: tuple[str, ...] | list[str], name: str, where: str) -> None:
        super().__init__(fields=fields, name=name)
        self.where = where
        self.extra = f" WHERE {where}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        path, args, kwargs = super().deconstruct()
        kwargs["where"] = self.where
        return path, args, kwargs


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
