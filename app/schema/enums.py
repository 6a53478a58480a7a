"""The model enums, exposed to GraphQL once (no `Enum` suffix in the SDL).

`strawberry.enum` marks the model's own class as a GraphQL enum (and returns that same
class): the schema annotates with the model enums themselves, so they stay classes for
mypy. Import them from here, which guarantees they are registered.
"""

from __future__ import annotations

from enum import StrEnum

import strawberry

from app.models.enums import (
    AccessKind,
    ActorType,
    AgentRole,
    ConsentSource,
    ConsentStatus,
    DataExportStatus,
    DocumentStatus,
    DossierKind,
    DossierStatus,
    EventType,
    InboundOutcome,
    Locale,
    NotificationChannel,
    NotificationStatus,
    OrderStatus,
    PaymentMethod,
    RefundReason,
    ReviewStatus,
    UserStatus,
)

__all__ = [
    "AccessKind",
    "ActorType",
    "AgentRole",
    "ConsentSource",
    "ConsentStatus",
    "DataExportStatus",
    "DocumentStatus",
    "DossierKind",
    "DossierStatus",
    "EventType",
    "InboundOutcome",
    "Locale",
    "NotificationChannel",
    "NotificationStatus",
    "OrderStatus",
    "PaymentMethod",
    "RefundReason",
    "ReviewStatus",
    "UserStatus",
]

_DESCRIPTIONS: dict[type[StrEnum], str] = {
    UserStatus: "Where a client stands with us: PENDING until paid.",
    AgentRole: "What an agent may do: ADMIN also manages the catalogue.",
    Locale: "Language of notifications and emails.",
    DossierKind: "The kind of matter a dossier handles.",
    DossierStatus: "Where a dossier stands in its workflow.",
    OrderStatus: "Payment state of an order.",
    PaymentMethod: "How an order was paid: online, or recorded by an agent.",
    RefundReason: "Why money went back to a client (the first three are Stripe's reasons).",
    NotificationChannel: "How a notification reaches someone.",
    NotificationStatus: "Delivery state on one channel.",
    ActorType: "Who did something: a client (USER), an agent or the system.",
    DocumentStatus: "Review state of a required document.",
    ReviewStatus: "An agent's decision on a document version.",
    EventType: "What happened, in the audit log.",
    DataExportStatus: "Where a data export stands: REQUESTED, BUILDING, READY (its link "
    "e-mailed), FAILED, EXPIRED (the archive deleted).",
    ConsentStatus: "A client's consent to messages on a phone channel.",
    ConsentSource: "How a consent was given or withdrawn: in the app, by an agent (a "
    "verbal consent), by writing to us first, or by a STOP / START keyword.",
    InboundOutcome: "What became of an SMS or WhatsApp message sent to us.",
    AccessKind: "What an access event records: a dossier viewed by staff, a file downloaded.",
}

# The kind of matter keeps its ERD name in GraphQL (`DossierType`); in Python it is
# DossierKind, so that DossierType is the Dossier object type, like every <Name>Type.
_GRAPHQL_NAMES: dict[type[StrEnum], str] = {DossierKind: "DossierType"}

for _cls, _description in _DESCRIPTIONS.items():
    strawberry.enum(_cls, name=_GRAPHQL_NAMES.get(_cls), description=_description)
