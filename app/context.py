"""The per-request context handed to every resolver."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as _Info

from app.auth import viewer_from_token
from app.dataloaders import Loaders
from app.domain.viewer import Viewer
from app.errors import Forbidden, Unauthenticated
from app.models.enums import UserStatus
from app.security import bearer_token
from app.services.sessions import Origin


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    loaders: Loaders = field(default_factory=Loaders)
    connection_params: dict[str, Any] | None = None
    ws_viewer_kind: str | None = None  # set when a WebSocket connects (graphql_app)
    opened_session_id: uuid.UUID | None = None  # a login in this request opened it
    # set per operation by app.schema.extensions.AccountState: only fields a client whose
    # account is not active may use (deny by default)
    inactive_allowed: bool = False
    _viewer: Viewer | None = None
    _viewer_resolved: bool = False
    _viewer_error: Exception | None = None

    def _authorization(self) -> str | None:
        if self.connection_params is not None:
            value = self.connection_params.get("authorization") or self.connection_params.get(
                "Authorization"
            )
            return value if isinstance(value, str) else None
        return self.request.headers.get("authorization")

    async def viewer(self) -> Viewer | None:
        """The authenticated viewer, or None when no token was sent. Resolved once."""
        if not self._viewer_resolved:
            # an upload's viewer, read from its token before its body (app.http.graphql)
            known = getattr(self.request.state, "viewer", None)
            if isinstance(known, Viewer):
                self._viewer, self._viewer_resolved = known, True
        if not self._viewer_resolved:
            try:
                token = bearer_token(self._authorization())
                self._viewer = await viewer_from_token(token) if token else None
            except Unauthenticated as exc:
                self._viewer_error = exc
            self._viewer_resolved = True
        if self._viewer_error is not None:
            raise self._viewer_error
        return self._viewer

    def origin(self) -> Origin:
        """Where this request comes from (the session list, the audit trail, throttling)."""
        client = getattr(self.request, "client", None)
        return Origin(
            ip_address=client.host if client else None,
            user_agent=self.request.headers.get("user-agent"),
        )

    def forget_viewer(self) -> None:
        self._viewer, self._viewer_resolved, self._viewer_error = None, False, None

    async def require_viewer(self) -> Viewer:
        viewer = await self.viewer()
        if viewer is None:
            raise Unauthenticated()
        profile = viewer.profile
        if (
            profile is not None
            and profile.status != UserStatus.ACTIVE
            and not self.inactive_allowed
        ):
            raise Forbidden(
                f"Your account is {UserStatus(profile.status).value.lower()}: until it is active"
                " you may see and pay your orders and edit your profile, nothing else."
            )
        return viewer

    async def require_agent(self) -> Viewer:
        viewer = await self.require_viewer()
        if not viewer.is_agent:
            raise Forbidden("Only agents can do this.")
        return viewer

    async def require_admin(self) -> Viewer:
        viewer = await self.require_viewer()
        if not viewer.is_admin:
            raise Forbidden("Only administrators can do this.")
        return viewer

    async def require_client(self) -> Viewer:
        viewer = await self.require_viewer()
        if not viewer.is_client:
            raise Forbidden("Only clients can do this.")
        return viewer


Info = _Info[Context, None]
