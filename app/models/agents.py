from __future__ import annotations

from tortoise import fields

from app.models.base import TimestampedModel
from app.models.enums import AgentRole, Locale


class Agent(TimestampedModel):
    email = fields.CharField(max_length=320, unique=True)
    name = fields.TextField()
    active = fields.BooleanField(default=True)
    role = fields.CharEnumField(AgentRole, max_length=16, default=AgentRole.AGENT)
    locale = fields.CharEnumField(Locale, max_length=8, default=Locale.FR)

    class Meta:
        table = "agents"

    @property
    def is_admin(self) -> bool:
        return self.role == AgentRole.ADMIN
