"""GraphQL over HTTP (https://graphql.github.io/graphql-over-http/draft/), on strawberry's view.

Media types. A client that asks for `application/graphql-response+json` (by the `Accept`
header, its q-value at least that of `application/json`) gets it, with the spec's status
codes: 400 and no `data` entry when the request never reached execution (a document that
does not parse or validate, variables that do not coerce, a bad parameter or body), 429 for
the cost limit, 200 and `data` once execution ran (field errors included). Every other
client — no `Accept`, `*/*`, `application/json`: the older ones — gets `application/json`
exactly as before: 200 with `"data": null` and `errors` for anything GraphQL answered.

GET runs queries only, with `query`, `operationName`, `variables` and `extensions` in the
URL (the last two as URL-encoded JSON); a mutation over GET is refused with 405 and
`Allow: POST` before anything runs, and so is a subscription (WebSocket only). The same
schema extensions (limits, cost, rate limiting, error masking) and authentication apply to
both methods: this module only decides how an answer is framed.

The hooks overridden are strawberry's view methods (`run`, `execute_single`,
`parse_http_body`, `process_result`, `get_sub_response`, `create_response`); what they
rely on is pinned in tests/test_compat.py.
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from app.compat.strawberry import starlette_request
from app.services.persisted_queries import PersistedQueries, PersistedQueryRefusal

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"

# A persisted-query refusal's status: (application/graphql-response+json, application/json;
# None: the same). Apollo's link resends the document on NOT_FOUND whatever the status, but
# stops persisting for good on a 400 or 500: a miss is 404.
REFUSAL_STATUS: dict[str, tuple[int, int | None]] = {
    "PERSISTED_QUERY_NOT_FOUND": (404, 200),
    "PERSISTED_QUERY_NOT_TRUSTED": (403, 200),
}
# A GET carrying either is never answered `public` (a shared cache would serve it to all).
CREDENTIAL_HEADERS = ("authorization", "cookie")

# The operation types each method may run over HTTP (subscriptions: graphql-transport-ws).
ALLOWED_OPERATIONS = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}


class RequestRefused(Exception):
    """A request answered before (or instead of) execution: a GraphQL error body with this
    status, in the negotiated media type."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        legacy_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        # the status an application/json client gets (None: the same)
        self.legacy_status = legacy_status


def response_media_type(accept: str | None) -> str:
    """`application/graphql-response+json` when the Accept header prefers it (or ranks it
    with `application/json`), `application/json` otherwise: no header, `*/*`,
    `application/*`, or nothing we serve (the spec lets a server answer in its own choice
    of media type then, rather than 406)."""
    if not accept:
        return JSON
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        ranks[media] = max(ranks.get(media, 0.0), quality)
    wanted = ranks.get(GRAPHQL_RESPONSE_JSON, 0.0)
    legacy = max(ranks.get(JSON, 0.0), ranks.get("application/*", 0.0), ranks.get("*/*", 0.0))
    return GRAPHQL_RESPONSE_JSON if wanted > 0 and wanted >= legacy else JSON


def error_body(message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code}
    return {"errors": [error]}


def spec_status(result: ExecutionResult) -> int:
    """The status of an `application/graphql-response+json` answer to `result`: 200 once
    execution ran, 4xx (or 500) when it did not."""
    if result.data is not None or not result.errors:
        return 200
    codes = {(error.extensions or {}).get("code") for error in result.errors}
    if "RATE_LIMITED" in codes:
        return 429
    if isinstance(result, PreExecutionError):
        # parse or validation failure; an extension that failed unexpectedly is ours
        return 500 if "INTERNAL_SERVER_ERROR" in codes else 400
    if all(error.path is None for error in result.errors):
        return 400  # variables that did not coerce: no field was executed
    return 200  # a field error nulled the whole result: execution ran


def _retry_after(result: ExecutionResult) -> str | None:
    for error in result.errors or ():
        retry = (error.extensions or {}).get("retryAfter")
        if retry is not None:
            return str(retry)
    return None


class GraphQLOverHTTP:
    """Mixin for strawberry's ASGI `GraphQL` view (before it in the bases)."""

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if not isinstance(request, Request) or request.scope["type"] != "http":
            return await super().run(request, context, root_value)  # type: ignore[misc]
        media = response_media_type(request.headers.get("accept"))
        request.state.graphql_media = media
        try:
            return await super().run(request, context, root_value)  # type: ignore[misc]
        except RequestRefused as refusal:
            status = refusal.status
            if media == JSON and refusal.legacy_status is not None:
                status = refusal.legacy_status
            return self.json_response(
                error_body(refusal.message, refusal.code), media, status, refusal.headers
            )
        except HTTPException as exc:
            if media == JSON:
                raise  # older clients: strawberry's plain-text refusal, as before
            return self.json_response(error_body(exc.reason), media, exc.status_code)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """strawberry's rule (a GET with no `query` that accepts HTML or `*/*`), except for a
        persisted query: a GET with `extensions` and no `query` is one to run."""
        return bool(
            super().should_render_graphql_ide(request)  # type: ignore[misc]
            and request.query_params.get("extensions") is None
        )

    def json_response(
        self,
        body: Any,
        media: str,
        status: int,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return Response(
            self.encode_json(body),  # type: ignore[attr-defined]
            status_code=status,
            media_type=media,
            headers={"cache-control": "no-store", **(headers or {})},
        )

    async def get_sub_response(self, request: Any) -> Response:
        sub_response: Response = await super().get_sub_response(request)  # type: ignore[misc]
        sub_response.media_type = getattr(request.state, "graphql_media", JSON)
        request.state.sub_response = sub_response
        return sub_response

    async def parse_http_body(self, request: Any) -> GraphQLRequestData:
        data = await super().parse_http_body(request)  # type: ignore[misc]
        if not isinstance(data, GraphQLRequestData):
            return data  # a batch: refused by strawberry (batching is off)
        if not isinstance(data.operation_name, (str, type(None))):
            raise HTTPException(
                400, "The GraphQL operation's `operationName` must be a string or null."
            )
        persisted: PersistedQueries | None = getattr(self, "persisted", None)
        if persisted is not None:
            try:
                resolved = await persisted.resolve(data.query, data.extensions)
            except PersistedQueryRefusal as refusal:
                status, legacy = REFUSAL_STATUS.get(refusal.code, (400, None))
                raise RequestRefused(
                    status, refusal.message, code=refusal.code, legacy_status=legacy
                ) from refusal
            data.query = resolved.query
            starlette_request(request).state.persisted_by_hash = resolved.by_hash
        return data

    async def execute_single(
        self,
        request: Any,  # noqa: ARG002 - strawberry's signature
        request_adapter: Any,
        sub_response: Any,  # noqa: ARG002
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """strawberry's, with the operation types of ALLOWED_OPERATIONS: over GET a
        mutation or a subscription is refused (405, `Allow: POST`) before it runs."""
        method = request_adapter.method
        try:
            return await self.schema.execute(  # type: ignore[attr-defined]
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=ALLOWED_OPERATIONS.get(method, frozenset()),
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.SUBSCRIPTION:
                message = "Subscriptions run over the WebSocket (graphql-transport-ws) only."
            else:
                message = "Mutations are not allowed over GET: send them with POST."
            if method == "GET":
                raise RequestRefused(405, message, headers={"allow": "POST"}) from exc
            raise HTTPException(400, message) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        body: GraphQLHTTPResponse = await super().process_result(request, result)  # type: ignore[misc]
        state = getattr(request, "state", None)
        sub_response = getattr(state, "sub_response", None)
        status = 200
        if getattr(state, "graphql_media", JSON) == GRAPHQL_RESPONSE_JSON:
            status = spec_status(result)
            if status != 200:
                body.pop("data", None)
                if sub_response is not None:
                    sub_response.status_code = status
                    if status == 429 and (retry := _retry_after(result)) is not None:
                        sub_response.headers["retry-after"] = retry
        if sub_response is not None and request.method == "GET":
            public = (
                getattr(state, "persisted_by_hash", False)
                and status == 200
                and not result.errors
                and not any(name in request.headers for name in CREDENTIAL_HEADERS)
            )
            max_age = getattr(self, "public_max_age", 0)
            sub_response.headers["cache-control"] = (
                f"public, max-age={max_age}" if public and max_age else "private, no-store"
            )
            sub_response.headers["vary"] = "Accept, Authorization, Cookie"
        return body

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        response = Response(
            self.encode_json(response_data),  # type: ignore[attr-defined]
            status_code=sub_response.status_code or 200,
            media_type=sub_response.media_type or JSON,
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        return response


def trusted_subscribe(handler_class: Any) -> Any:
    """`handler_class` (a graphql-transport-ws handler) refusing, in TRUSTED_DOCUMENTS
    mode, an operation whose document is not registered: an `error` message with
    PERSISTED_QUERY_NOT_TRUSTED, before the document is parsed."""

    class TrustedSubscribe(handler_class):
        async def handle_subscribe(self, message: Any) -> None:
            payload = message.get("payload") or {}
            query = payload.get("query")
            persisted: PersistedQueries = self.view.persisted
            try:
                resolved = await persisted.resolve(
                    query if isinstance(query, str) else None, payload.get("extensions")
                )
                if resolved.query is not None:
                    payload["query"] = resolved.query  # sent by hash
            except PersistedQueryRefusal as refusal:
                if self.connection_acknowledged and message.get("id") not in self.operations:
                    error = {"message": refusal.message, "extensions": {"code": refusal.code}}
                    await self.send_message(
                        {"id": message["id"], "type": "error", "payload": [error]}
                    )
                    return
            await super().handle_subscribe(message)

    return TrustedSubscribe
