"""Phone channels (issue 20): a client's consent per channel, the messages that came in."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.schema.common import UserError, gid
from app.schema.enums import ConsentSource, ConsentStatus, InboundOutcome, NotificationChannel
from app.services.codes import PhoneErrorCode

strawberry.enum(PhoneErrorCode, name="PhoneErrorCode")


@strawberry.type(
    name="ChannelConsent",
    description="A client's consent to messages on one phone channel, and when they last "
    "wrote to us there (WhatsApp's 24-hour window).",
)
class ChannelConsentType:
    channel: NotificationChannel
    status: ConsentStatus | None = strawberry.field(
        description="OPTED_IN, OPTED_OUT, or null: never asked (SMS goes out, WhatsApp not)."
    )
    opted_in_at: datetime | None
    opted_in_via: ConsentSource | None
    opted_out_at: datetime | None
    opted_out_via: ConsentSource | None
    last_inbound_at: datetime | None

    @strawberry.field(description="The client.")
    def client_id(self) -> strawberry.ID:
        return gid(self.profile_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The agent who recorded a verbal consent.")
    def opted_in_by_agent_id(self) -> strawberry.ID | None:
        agent = self.opted_in_by  # type: ignore[attr-defined]
        return gid(agent) if agent else None


@strawberry.type(
    name="InboundMessage",
    description="An SMS or WhatsApp message sent to us that reached no dossier chat (or did).",
)
class InboundMessageType:
    id: strawberry.ID
    channel: NotificationChannel
    from_number: str
    body: str
    outcome: InboundOutcome
    created_at: datetime

    @strawberry.field(description="How many files came with it.")
    def media_count(self) -> int:
        return len(self.media or [])  # type: ignore[attr-defined]


@strawberry.type
class PhoneUserError(UserError):
    code: PhoneErrorCode


@strawberry.input
class RecordWhatsappOptInInput:
    client_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Agents: the client who consented (verbally). Clients: omit (themselves).",
    )


@strawberry.type
class RecordWhatsappOptInPayload:
    consent: ChannelConsentType | None = None
    user_errors: list[PhoneUserError] = strawberry.field(default_factory=list)
