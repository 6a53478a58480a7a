"""strawberry internals: field definitions behind graphql-core fields, the graphql-core
schema, resolvers called directly, and the graphql-transport-ws handler's result loop.

Used by the executor (`app.schema.execution`), the cost limits, and the live updates'
sharing (`app.subscriptions.sharing`). `HTTPException` is strawberry's HTTP error type,
and `starlette_request` unwraps its request adapter, both from its own dependency
cross-web. Pinned in tests/test_compat.py.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, cast

from cross_web import HTTPException, StarletteRequestAdapter
from graphql import GraphQLField, GraphQLObjectType, GraphQLSchema
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.execution import optimized_is_awaitable
from strawberry.http.base import BaseView
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

__all__ = [
    "ExecutionContextBase",
    "HTTPException",
    "SharedData",
    "SharingTransportWSHandler",
    "current_operation",
    "field_definition",
    "graphql_schema",
    "is_default_resolver",
    "lean_resolvers",
    "optimized_is_awaitable",
    "starlette_request",
    "strawberry_schema",
]


def starlette_request(request: Any) -> Any:
    """The Starlette request behind the adapter strawberry's ASGI view hands to
    `parse_multipart` (cross-web keeps it private): the upload form is parsed with our caps."""
    assert isinstance(request, StarletteRequestAdapter), type(request)
    return request._request


# The execution context strawberry gives graphql-core (our executor subclasses it).
ExecutionContextBase = StrawberryGraphQLCoreExecutionContext


def graphql_schema(schema: Any) -> GraphQLSchema:
    """The graphql-core schema strawberry built for `schema`."""
    return schema._schema


def strawberry_schema(schema: Any) -> Any:
    """The strawberry schema behind a graphql-core one (itself when it is one)."""
    return getattr(schema, "_strawberry_schema", schema)


def field_definition(field_def: GraphQLField) -> Any:
    """The strawberry field a graphql-core field was made from, or None."""
    return field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)


def is_default_resolver(field_def: GraphQLField) -> bool:
    """Whether strawberry resolves the field by reading the attribute (no resolver)."""
    return bool(getattr(field_def.resolve, "_is_default", False))


def lean_resolvers(schema: Any) -> int:
    """Call simple resolvers directly. Returns how many fields it rewired.

    For every field strawberry resolves, its wrapper converts arguments, runs field
    extensions and exception handlers, then calls the method. A field whose method is
    synchronous and takes no GraphQL arguments, with no field extension (permissions are
    one) and no exception handler in the schema, has nothing to convert or run: its
    resolver here calls the method with the same `self` and `info` strawberry would pass.
    Subscription fields keep strawberry's resolvers.
    """
    if getattr(schema, "exception_handlers", ()):
        return 0
    info_class = schema.config.info_class
    graphql_schema = schema._schema
    rewired = 0
    for named in graphql_schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        if named is graphql_schema.subscription_type:
            continue
        for field_def in named.fields.values():
            field = field_definition(field_def)
            resolver = getattr(field, "base_resolver", None)
            if resolver is None or field.is_async or field.extensions or field.arguments:
                continue
            if resolver.parent_parameter is not None or resolver.root_parameter is not None:
                continue
            info_parameter = resolver.info_parameter
            field_def.resolve = _direct(
                resolver.wrapped_func,
                field,
                info_class,
                with_self=resolver.self_parameter is not None,
                info_name=info_parameter.name if info_parameter is not None else None,
            )
            rewired += 1
    return rewired


def _direct(
    func: Any, field: Any, info_class: Any, *, with_self: bool, info_name: str | None
) -> Any:
    name = info_name or ""

    def with_self_and_info(source: Any, info: Any) -> Any:
        return func(source, **{name: info_class(_raw_info=info, _field=field)})

    def with_self_only(source: Any, _info: Any) -> Any:
        return func(source)

    def with_info_only(_source: Any, info: Any) -> Any:
        return func(**{name: info_class(_raw_info=info, _field=field)})

    def with_neither(_source: Any, _info: Any) -> Any:
        return func()

    resolve: Any
    if with_self:
        resolve = with_self_and_info if info_name is not None else with_self_only
    else:
        resolve = with_info_only if info_name is not None else with_neither
    resolve._is_default = False
    return resolve


class SharedData(dict[str, Any]):
    """The `data` of a result shared by several subscribers, with its serialized `next`
    payload computed once."""

    __slots__ = ("_payload",)

    def payload(self, encode: Any) -> str | bytes:
        try:
            return self._payload
        except AttributeError:
            self._payload: str | bytes = encode({"data": self})
            return self._payload


_DEFAULT_ENCODE = BaseView.encode_json

# The operation the current task runs (set by the handler for its operation tasks).
current_operation: ContextVar[tuple[SharingTransportWSHandler, Operation] | None] = ContextVar(
    "live_operation", default=None
)


class SharingTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """strawberry's graphql-transport-ws handler; a shared result's `next` frame is the
    same JSON text it would have sent (the view's encoder, compact separators), built from
    the payload serialized once for every subscriber."""

    @property
    def splices(self) -> bool:
        """Whether a shared payload can be spliced into a frame (the default encoder)."""
        return (
            isinstance(self.websocket, ASGIWebSocketAdapter)
            and getattr(type(self.view), "encode_json", None) is _DEFAULT_ENCODE
        )

    async def run_operation(self, operation: Operation) -> None:
        current_operation.set((self, operation))  # this task's own context
        await super().run_operation(operation)

    async def _send_result_stream(self, operation: Operation, result_source: Any) -> None:
        # strawberry's loop, with the shared case added
        is_first_result = True
        splice = self.splices
        async for result in result_source:
            if is_first_result and isinstance(result, PreExecutionError):
                await self._handle_pre_execution_error(operation, result)
                return
            if not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            data = result.data
            if splice and type(data) is SharedData and not result.errors and not result.extensions:
                await self._send_shared(operation, data)
            else:
                await operation.send_next(result)
            is_first_result = False

    async def _send_shared(self, operation: Operation, data: SharedData) -> None:
        if operation.completed:
            return
        encode = self.view.encode_json
        payload = data.payload(encode)
        ident = encode(operation.id)
        if isinstance(payload, bytes) or isinstance(ident, bytes):  # pragma: no cover
            await operation.send_next(ExecutionResult(data=dict(data), errors=None))
            return
        frame = '{"id":' + ident + ',"type":"next","payload":' + payload + "}"
        try:
            # sent only when `splices`: the socket is the ASGI adapter, whose `ws` it writes
            await cast(ASGIWebSocketAdapter, self.websocket).ws.send_text(frame)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
