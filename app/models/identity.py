from __future__ import annotations

from tortoise import fields

from app.models.base import TimestampedModel


class Credential(TimestampedModel):
    """Login credentials for exactly one profile or one agent.

    One table for both kinds keeps emails unique across clients and agents with a single
    database constraint, and lets `login` find the account in one query.
    """

    email = fields.CharField(max_length=320, unique=True)  # stored lower-cased
    password_hash = fields.TextField()
    password_changed_at = fields.DatetimeField()
    profile = fields.OneToOneField(
        "models.Profile", related_name="credential", null=True, on_delete=fields.CASCADE
    )
    agent = fields.OneToOneField(
        "models.Agent", related_name="credential", null=True, on_delete=fields.CASCADE
    )

    class Meta:
        table = "credentials"
