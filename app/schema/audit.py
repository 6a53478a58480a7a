"""The access audit's types (issue 19): what `accessLog` lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from app.schema.common import gid
from app.schema.enums import AccessKind, ActorType


def _gid(value: Any) -> strawberry.ID | None:  # the row's column (a UUID or None)
    return gid(value) if value is not None else None


@strawberry.type(
    name="AccessEvent",
    description="Someone viewed a dossier (agents and admins) or downloaded a file: who, "
    "what, when and from where.",
)
class AccessEventType:
    kind: AccessKind
    occurred_at: datetime
    actor_type: ActorType = strawberry.field(
        description="USER (a client) or AGENT: for a download, whom the link was issued to."
    )
    ip_address: str | None = strawberry.field(
        description="The address of the request (through trusted proxies only)."
    )
    user_agent: str | None

    id: strawberry.ID

    @strawberry.field(description="The agent's or the client's id.")
    def actor_id(self) -> strawberry.ID | None:
        return _gid(self.actor_id)

    @strawberry.field(description="The client whose dossier it is.")
    def client_id(self) -> strawberry.ID | None:
        return _gid(self.client_id)

    @strawberry.field
    def dossier_id(self) -> strawberry.ID | None:
        return _gid(self.dossier_id)

    @strawberry.field(description="The document of a document download.")
    def document_id(self) -> strawberry.ID | None:
        return _gid(self.document_id)

    @strawberry.field(description="The document version, or the shared file, downloaded.")
    def version_id(self) -> strawberry.ID | None:
        return _gid(self.version_id)
