from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields

from app.models.base import TimestampedModel

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.profiles import Profile


class Credential(TimestampedModel):
    """Login credentials for exactly one profile or one agent.

    One table for both kinds keeps emails unique across clients and agents with a single
    database constraint, and lets `login` find the account in one query.
    """

    email = fields.CharField(max_length=320, unique=True)  # stored lower-cased
    password_hash = fields.TextField()
    password_changed_at = fields.DatetimeField()
    profile: fields.OneToOneNullableRelation[Profile] = fields.OneToOneField(
        "models.Profile", related_name="credential", null=True, on_delete=fields.CASCADE
    )
    agent: fields.OneToOneNullableRelation[Agent] = fields.OneToOneField(
        "models.Agent", related_name="credential", null=True, on_delete=fields.CASCADE
    )

    # The foreign keys' columns (attributes Tortoise adds):
    profile_id: uuid.UUID | None
    agent_id: uuid.UUID | None

    class Meta:
        table = "credentials"
