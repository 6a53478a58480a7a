"""The GraphQL endpoint: HTTP POST and graphql-transport-ws only, auth on connect."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app.context import Context
from app.errors import Unauthenticated
from app.schema import Schema
from app.settings import Settings


class DossierGraphQL(GraphQL):
    def __init__(self, schema: Schema, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=5),
            max_subscriptions_per_connection=20,
            multipart_uploads_enabled=True,
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        request_id = getattr(request.state, "request_id", None)
        context = Context(
            request=request, response=response if isinstance(response, Response) else None
        )
        if request_id:
            context.request_id = request_id
        if isinstance(request, WebSocket):
            context.connection_params = {}
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, Any] | None:
        """The token comes in `connection_init`; a missing or bad one closes with 4403."""
        try:
            viewer = await context.require_viewer()
        except Unauthenticated as exc:
            raise ConnectionRejectionError({"message": exc.message}) from exc
        context.ws_viewer_kind = viewer.kind  # type: ignore[attr-defined]
        return UNSET
