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
    # Issue 20, e-mail bounces (app.services.bounces): the address a hard bounce (a DSN
    # with a 5.x.x status) came back from, when and why. E-mail is not used while the
    # login address is still this one (a changed address is tried again).
    email_bounced_address = fields.TextField(null=True)
    email_bounced_at = fields.DatetimeField(null=True)
    email_bounce_reason = fields.TextField(null=True)

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
