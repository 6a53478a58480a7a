"""The GraphQL endpoint: HTTP POST and graphql-transport-ws only, auth on connect."""

from __future__ import annotations

import uuid
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
from app.security import bearer_token
from app.settings import Settings

# Apollo's CSRF prevention headers: a browser cannot send them cross-site without a CORS
# preflight, which we never grant. Multipart is a "simple" content type, so an upload
# without one of them could be a form posted from another site: it is refused.
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")
CSRF_MESSAGE = (
    "This upload was blocked as a potential cross-site request forgery: send a non-empty "
    "'Apollo-Require-Preflight' (or 'X-Apollo-Operation-Name') header with multipart requests."
)


def websocket_origins(settings: Settings) -> list[str]:
    """PUBLIC_APP_URL's origin and ALLOWED_ORIGINS."""
    app_url = urlsplit(settings.public_app_url)
    origins = [f"{app_url.scheme}://{app_url.netloc}"] if app_url.scheme and app_url.netloc else []
    return [*origins, *settings.allowed_origins]


class DossierGraphQL(GraphQL[Context, None]):
    def __init__(self, schema: Schema, settings: Settings) -> None:
        self.max_upload_files = settings.max_upload_files
        self.max_concurrent_uploads = settings.max_concurrent_uploads
        self._uploading: dict[uuid.UUID, int] = {}  # bodies being received, per credential
        if schema.fast_paths:
            # A live event reaching many subscribers is executed and serialized once per
            # operation (app.subscriptions.sharing); the protocol is strawberry's.
            self.graphql_transport_ws_handler_class = SharingTransportWSHandler
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=5),
            max_subscriptions_per_connection=20,
            multipart_uploads_enabled=True,
            # Cross-site WebSocket hijacking: a browser page on another origin may not
            # open the socket (403) unless listed; same-origin pages and non-browser
            # clients (no Origin header) always may.
            allowed_origins=websocket_origins(settings),
        )

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
        try:
            form = await starlette_request.form(
                max_files=self.max_upload_files,
                max_fields=4,  # operations, map (and room for a client's extra field)
                max_part_size=256 * 1024,  # per non-file field: the operations JSON
            )
        except (MultiPartException, StarletteHTTPException) as exc:
            detail = getattr(exc, "message", None) or getattr(exc, "detail", "")
            raise HTTPException(400, f"Invalid multipart body: {detail}") from exc
        except ValueError as exc:
            raise HTTPException(400, "Unable to parse the multipart body") from exc
        finally:
            left = self._uploading.get(key, 1) - 1
            if left > 0:
                self._uploading[key] = left
            else:
                self._uploading.pop(key, None)
        operations, files_map = form.get("operations"), form.get("map", "{}")
        if not isinstance(operations, str) or not isinstance(files_map, str):
            raise HTTPException(400, "The 'operations' and 'map' fields must be JSON text.")
        operations = self.parse_json(operations)
        files_map = self.parse_json(files_map)
        if not isinstance(files_map, dict) or len(files_map) > self.max_upload_files:
            raise HTTPException(400, "Invalid multipart map.")
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
        return UNSET
