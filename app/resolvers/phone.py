"""Phone channels (issue 20): WhatsApp opt-in, and the admins' list of what came in by SMS
or WhatsApp from numbers that are no client's."""

from __future__ import annotations

import strawberry

from app.context import Info
from app.errors import DomainError
from app.models import InboundMessage
from app.models.enums import InboundOutcome
from app.schema.common import Connection, paginate, parse_id, row_as, user_errors
from app.schema.phone import (
    ChannelConsentType,
    InboundMessageType,
    PhoneUserError,
    RecordWhatsappOptInInput,
    RecordWhatsappOptInPayload,
)
from app.services.codes import PhoneErrorCode
from app.services.phone import consents


@strawberry.type
class PhoneQuery:
    @strawberry.field(
        description="Admins: SMS and WhatsApp messages sent to us, newest first (by default "
        "those of numbers that are no client's, never attached to a dossier)."
    )
    async def inbound_messages(
        self,
        info: Info,
        outcome: InboundOutcome = InboundOutcome.UNKNOWN_SENDER,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[InboundMessageType]:
        await info.context.require_admin()
        return await paginate(
            InboundMessage.filter(outcome=outcome),
            first=first,
            after=after,
            last=None,
            before=None,
            order=("-created_at", "-id"),
        )


@strawberry.type
class PhoneMutation:
    @strawberry.mutation(
        description="Record a WhatsApp opt-in (required before any WhatsApp message): a "
        "client for themselves in the app, an agent for a client who consented verbally "
        "(`clientId`). Also opts back in after a STOP on WhatsApp."
    )
    async def record_whatsapp_opt_in(
        self, info: Info, input: RecordWhatsappOptInInput
    ) -> RecordWhatsappOptInPayload:
        viewer = await info.context.require_viewer()
        client_id = parse_id(input.client_id, what="client") if input.client_id else None
        try:
            consent = await consents.record_whatsapp_opt_in(viewer, client_id)
        except DomainError as error:
            return RecordWhatsappOptInPayload(
                user_errors=user_errors(error, PhoneUserError, PhoneErrorCode)
            )
        return RecordWhatsappOptInPayload(consent=row_as(ChannelConsentType, consent))
