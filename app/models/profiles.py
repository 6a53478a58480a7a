from __future__ import annotations

from tortoise import fields

from app.models.base import TimestampedModel
from app.models.enums import Locale, UserStatus


class Profile(TimestampedModel):
    """A prospect or client. Their email and password live in `credentials`."""

    full_name = fields.TextField()
    phone = fields.TextField(null=True)
    status = fields.CharEnumField(UserStatus, max_length=16, default=UserStatus.PENDING)
    stripe_customer_id = fields.CharField(max_length=255, null=True, unique=True)
    locale = fields.CharEnumField(Locale, max_length=8, default=Locale.FR)

    class Meta:
        table = "profiles"
