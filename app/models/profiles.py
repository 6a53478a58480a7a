from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import TimestampedModel
from app.models.enums import Locale, UserStatus

if TYPE_CHECKING:
    from app.models.dossiers import Dossier
    from app.models.identity import Credential
    from app.models.notifications import Notification
    from app.models.payments import Order, PaymentLink, PaymentReminder


class Profile(TimestampedModel):
    """A prospect or client. Their email and password live in `credentials`."""

    full_name = fields.TextField()
    phone = fields.TextField(null=True)
    status = fields.CharEnumField(UserStatus, max_length=16, default=UserStatus.PENDING)
    stripe_customer_id = fields.CharField(max_length=255, null=True, unique=True)
    locale = fields.CharEnumField(Locale, max_length=8, default=Locale.FR)
    # Right to erasure (issue 19, app.services.privacy.erasure): when the personal data of
    # this client was replaced by tombstones. The row stays (orders point at it).
    erased_at = fields.DatetimeField(null=True)

    # The other side of foreign keys to profiles:
    credential: fields.BackwardOneToOneRelation[Credential]
    dossiers: fields.ReverseRelation[Dossier]
    orders: fields.ReverseRelation[Order]
    used_payment_links: fields.ReverseRelation[PaymentLink]
    payment_reminders: fields.ReverseRelation[PaymentReminder]
    notifications: fields.ReverseRelation[Notification]

    class Meta:
        table = "profiles"
        # An inbound SMS or WhatsApp finds its sender by number (stored E.164).
        indexes = (Index(fields=("phone",), name="idx_profiles_phone"),)
