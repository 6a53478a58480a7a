"""The model enums, exposed to GraphQL once (no `Enum` suffix in the SDL)."""

from __future__ import annotations

from enum import StrEnum

import strawberry

from app.models import enums as e


def _expose(cls: type[StrEnum], description: str) -> type[StrEnum]:
    return strawberry.enum(cls, description=description)


UserStatus = _expose(e.UserStatus, "Where a client stands with us: PENDING until paid.")
AgentRole = _expose(e.AgentRole, "What an agent may do: ADMIN also manages the catalogue.")
Locale = _expose(e.Locale, "Language of notifications and emails.")
DossierType = _expose(e.DossierType, "The kind of matter a dossier handles.")
DossierStatus = _expose(e.DossierStatus, "Where a dossier stands in its workflow.")
OrderStatus = _expose(e.OrderStatus, "Payment state of an order.")
NotificationChannel = _expose(e.NotificationChannel, "How a notification reaches someone.")
NotificationStatus = _expose(e.NotificationStatus, "Delivery state on one channel.")
ActorType = _expose(e.ActorType, "Who did something: a client (USER), an agent or the system.")
DocumentStatus = _expose(e.DocumentStatus, "Review state of a required document.")
ReviewStatus = _expose(e.ReviewStatus, "An agent's decision on a document version.")
EventType = _expose(e.EventType, "What happened, in the audit log.")
