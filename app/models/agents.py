from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields

from app.models.base import TimestampedModel
from app.models.enums import AgentRole, Locale

if TYPE_CHECKING:
    from app.models.documents import DocumentReview
    from app.models.dossiers import StepInstance
    from app.models.identity import Credential
    from app.models.notifications import Notification
    from app.models.payments import PaymentLink


class Agent(TimestampedModel):
    email = fields.CharField(max_length=320, unique=True)
    name = fields.TextField()
    active = fields.BooleanField(default=True)
    role = fields.CharEnumField(AgentRole, max_length=16, default=AgentRole.AGENT)
    locale = fields.CharEnumField(Locale, max_length=8, default=Locale.FR)

    # The other side of foreign keys to agents:
    credential: fields.BackwardOneToOneRelation[Credential]
    step_instances: fields.ReverseRelation[StepInstance]
    document_reviews: fields.ReverseRelation[DocumentReview]
    payment_links: fields.ReverseRelation[PaymentLink]
    notifications: fields.ReverseRelation[Notification]

    class Meta:
        table = "agents"

    @property
    def is_admin(self) -> bool:
        return self.role == AgentRole.ADMIN
