"""The GraphQL endpoint: HTTP (GraphQL over HTTP: app.http.graphql_http) and
graphql-transport-ws, auth on connect."""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app.api import Schema
from app.auth import viewer_from_token
from app.compat.strawberry import HTTPException, SharingTransportWSHandler
from app.compat.strawberry import starlette_request as starlette_request_of
from app.context import Context
from app.domain.viewer import Viewer
from app.errors import Unauthenticated
from app.http.graphiql import graphiql_page
from app.http.graphql_http import GraphQLOverHTTP, trusted_subscribe
from app.security import bearer_token
from app.services.persisted_queries import PersistedQueries
from app.settings import Settings

# Apollo's CSRF prevention headers: a browser cannot send them cross-site without a CORS
# preflight, which we never grant. Multipart is a "simple" content type, so an upload
# without one of them could be a form posted from another site: it is refused.
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")
CSRF_MESSAGE = (
    "This upload was blocked as a potential cross-site request forgery: send a non-empty "
    "'Apollo-Require-Preflight' (or 'X-Apollo-Operation-Name') header with multipart requests."
)

NO_FILENAME_HINT = (
    "A file part needs a filename in its Content-Disposition header (`form-data; "
    'name="0"; filename="scan.pdf"`): without one it is read as a text field, not a file. '
    "gql's streamed uploads: give the stream a filename."
)


def websocket_origins(settings: Settings) -> list[str]:
    """PUBLIC_APP_URL's origin and ALLOWED_ORIGINS."""
    app_url = urlsplit(settings.public_app_url)
    origins = [f"{app_url.scheme}://{app_url.netloc}"] if app_url.scheme and app_url.netloc else []
    return [*origins, *settings.allowed_origins]


TOO_MANY_SOCKETS = 4429  # the WebSocket close code for a cap reached (like HTTP 429)


def _release(counts: dict[Any, int], key: Any) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


async def _refuse(scope: Any, receive: Any, send: Any, reason: str) -> None:
    """Complete the handshake and close at once with TOO_MANY_SOCKETS: a browser sees the
    code and the reason (a refused handshake is only an HTTP 403 to it)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    asked = scope.get("subprotocols") or []
    subprotocol = GRAPHQL_TRANSPORT_WS_PROTOCOL if GRAPHQL_TRANSPORT_WS_PROTOCOL in asked else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    await send({"type": "websocket.close", "code": TOO_MANY_SOCKETS, "reason": reason})


class DossierGraphQL(GraphQLOverHTTP, GraphQL[Context, None]):
    def __init__(self, schema: Schema, settings: Settings) -> None:
        self.max_upload_files = settings.max_upload_files
        self.max_concurrent_uploads = settings.max_concurrent_uploads
        self.max_websockets_per_account = settings.max_websockets_per_account
        self.max_websockets_per_address = settings.max_websockets_per_address
        self._sockets_of_account: dict[uuid.UUID, int] = {}
        self._sockets_of_address: dict[str, int] = {}
        self._uploading: dict[uuid.UUID, int] = {}  # bodies being received, per credential
        # persisted queries and trusted documents (app.http.graphql_http)
        self.persisted = PersistedQueries.from_settings(settings)
        self.public_max_age = settings.public_cache_max_age_seconds
        if schema.fast_paths:
            # A live event reaching many subscribers is executed and serialized once per
            # operation (app.subscriptions.sharing); the protocol is strawberry's.
            self.graphql_transport_ws_handler_class = SharingTransportWSHandler
        if self.persisted.trusted_only:  # WebSocket operations: registered documents only
            self.graphql_transport_ws_handler_class = trusted_subscribe(
                self.graphql_transport_ws_handler_class
            )
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=True,  # queries only (app.http.graphql_http)
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=5),
            max_subscriptions_per_connection=20,
            multipart_uploads_enabled=True,
            # Cross-site WebSocket hijacking: a browser page on another origin may not
            # open the socket (403) unless listed; same-origin pages and non-browser
            # clients (no Origin header) always may.
            allowed_origins=websocket_origins(settings),
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL (when enabled): our page and its assets, served by us
        (app.http.graphiql); the page is static (the token stays in the browser)."""
        return graphiql_page(request)

    async def _uploader(self, request: Any) -> Viewer:
        """The account sending an upload, from its headers alone: an anonymous or invalid
        one is answered 401 before a byte of the body is read (nor spooled to disk)."""
        try:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise Unauthenticated("Log in to upload files.")
            return await viewer_from_token(token)
        except Unauthenticated as exc:
            raise HTTPException(401, exc.message) from exc

    async def parse_multipart(self, request: Any) -> dict[str, str]:
        """The GraphQL multipart request spec, behind a CSRF guard and the uploader's token
        (checked first), with few parts and a few bodies per account at once."""
        if not any(request.headers.get(name, "").strip() for name in PREFLIGHT_HEADERS):
            raise HTTPException(400, CSRF_MESSAGE)
        uploader = await self._uploader(request)
        key = uploader.credential_id
        if self._uploading.get(key, 0) >= self.max_concurrent_uploads:
            raise HTTPException(
                429, "Too many uploads at once from this account: wait for one to finish."
            )
        self._uploading[key] = self._uploading.get(key, 0) + 1
        starlette_request: Request = starlette_request_of(request)
        starlette_request.state.viewer = uploader  # Context.viewer() reads it, not the token again
        try:
            form = await starlette_request.form(
                max_files=self.max_upload_files,
                max_fields=4,  # operations, map (and room for a client's extra field)
                max_part_size=256 * 1024,  # per non-file field: the operations JSON
            )
        except (MultiPartException, StarletteHTTPException) as exc:
            detail = getattr(exc, "message", None) or getattr(exc, "detail", "")
            if "exceeded maximum size" in str(detail):  # a text field: no filename?
                detail = f"{detail} {NO_FILENAME_HINT}"
            raise HTTPException(400, f"Invalid multipart body: {detail}") from exc
        except ValueError as exc:
            raise HTTPException(400, "Unable to parse the multipart body") from exc
        finally:
            _release(self._uploading, key)
        operations, files_map = form.get("operations"), form.get("map", "{}")
        if not isinstance(operations, str) or not isinstance(files_map, str):
            raise HTTPException(400, "The 'operations' and 'map' fields must be JSON text.")
        operations = self.parse_json(operations)
        files_map = self.parse_json(files_map)
        if not isinstance(files_map, dict) or len(files_map) > self.max_upload_files:
            raise HTTPException(400, "Invalid multipart map.")
        for name in files_map:
            if isinstance(form.get(name), str):  # a part without a filename is a text field
                raise HTTPException(
                    400, f"The multipart part {name!r} has no filename. {NO_FILENAME_HINT}"
                )
        try:
            return replace_placeholders_with_files(operations, files_map, form)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise HTTPException(400, "File(s) missing in form data") from exc

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
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
            # who it is; what this account may subscribe to is each operation's business
            # (an inactive client may still follow its notifications)
            viewer = await context.viewer()
            if viewer is None:
                raise Unauthenticated()
        except Unauthenticated as exc:
            raise ConnectionRejectionError({"message": exc.message}) from exc
        context.ws_viewer_kind = viewer.kind
        account = viewer.credential_id
        if self._sockets_of_account.get(account, 0) >= self.max_websockets_per_account:
            # strawberry closes a rejected connection with 4403: __call__ makes it this
            context.request.state.ws_refusal = (
                TOO_MANY_SOCKETS,
                "Too many connections for this account.",
            )
            raise ConnectionRejectionError()
        self._sockets_of_account[account] = self._sockets_of_account.get(account, 0) + 1
        context.request.state.ws_account = account
        return UNSET

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """WebSockets are counted per address (before any token) and per account (once
        its `connection_init` is accepted); past either cap the socket is closed with
        4429 and a reason that says which."""
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown",))[0]
        if self._sockets_of_address.get(address, 0) >= self.max_websockets_per_address:
            await _refuse(scope, receive, send, "Too many connections from this address.")
            return
        self._sockets_of_address[address] = self._sockets_of_address.get(address, 0) + 1
        state = scope.setdefault("state", {})

        async def sending(message: MutableMapping[str, Any]) -> None:
            refusal = state.get("ws_refusal")
            if message["type"] == "websocket.close" and refusal is not None:
                message = {**message, "code": refusal[0], "reason": refusal[1]}
            await send(message)

        try:
            await super().__call__(scope, receive, sending)
        finally:
            _release(self._sockets_of_address, address)
            if (account := state.get("ws_account")) is not None:
                _release(self._sockets_of_account, account)
