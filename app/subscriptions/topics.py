"""Pub/sub topic names. Built here, on the server, from ids the caller was authorised for; a
client never names a topic. The hub adds the deployment's namespace in front. (A "channel"
in this code base is a delivery channel: e-mail, SMS, WhatsApp, in-app.)"""

from __future__ import annotations

import uuid
from typing import Any

AGENT_REVIEWS = "agents.reviews"
AGENT_UPDATES = "agents.updates"


def _id(value: Any) -> str:
    return str(uuid.UUID(str(value)))


def dossier_messages(dossier_id: Any) -> str:
    return f"dossier.{_id(dossier_id)}.messages"


def dossier_reviews(dossier_id: Any) -> str:
    return f"dossier.{_id(dossier_id)}.reviews"


def dossier_updates(dossier_id: Any) -> str:
    return f"dossier.{_id(dossier_id)}.updates"


def client_reviews(profile_id: Any) -> str:
    """Reviews in every dossier of one client."""
    return f"profile.{_id(profile_id)}.reviews"


def client_updates(profile_id: Any) -> str:
    return f"profile.{_id(profile_id)}.updates"


def notifications(kind: str, owner_id: Any) -> str:
    """kind: "profile" or "agent"."""
    if kind not in ("profile", "agent"):
        raise ValueError(kind)
    return f"{kind}.{_id(owner_id)}.notifications"
