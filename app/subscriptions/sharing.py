"""One live event, executed once per operation, delivered to every subscriber of it.

The hub hands the same `Published` object to every subscriber of a channel. Each stream
decodes it once (`live_data`: one `LiveData` per event, shared), and the subscription
resolvers build their root object once per event (`shared_root`). The GraphQL selection
over that root is then executed once per (event, schema, operation, variables):
`SharedEventExecution`, a mixin for graphql-core's executor, keeps the result on the root
object and hands it to every other subscriber running the same operation, and the
transport handler (`SharingTransportWSHandler`) serializes its `next` payload once and
only splices each subscriber's operation id in front of it.

Everything that is per subscriber stays per subscriber: the access check (the stream's
`AccessGuard`, which ends the stream when access is lost), duplicates and ordering, the
bounded queue, the operation's id and its `complete`/`error` messages, errors (a result
with errors is never shared as a frame: error masking and request ids are per request).

Only roots built with `shared_root` are shared, and only by resolvers whose selection
cannot depend on the viewer (the payload carries everything; no field reads the
context). A root that is not shared is executed per subscriber exactly as before.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

import orjson
from graphql import ExecutionResult as GraphQLExecutionResult
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.base import BaseView
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

_RESULTS = "_live_results"  # the attribute of a shared root holding its results


class Stats:
    """Counters of this process (read by tests and the bench, never reset)."""

    def __init__(self) -> None:
        self.executions = 0  # selections executed for a shared live event
        self.reused = 0  # deliveries that reused another subscriber's execution


stats = Stats()


class LiveData(dict[str, Any]):
    """A published event's data, decoded once; `origin` is the event's memo, shared by
    every subscriber of the channel it came through."""

    __slots__ = ("origin",)

    origin: dict[Any, Any]


def shared_root(data: dict[str, Any], key: Any, build: Any) -> Any:
    """`build(data)`, once per published event for all its subscribers (when `data` came
    live from the hub; per call otherwise). The root's selection is then executed once
    per operation (see `SharedEventExecution`)."""
    origin = getattr(data, "origin", None)
    if origin is None:
        return build(data)
    root = origin.get(key)
    if root is None:
        root = build(data)
        vars(root)[_RESULTS] = {}
        origin[key] = root
    return root


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


def _operation_key(schema: Any, operation: Any, variables: Any) -> tuple[Any, ...] | None:
    """What a shared result is kept under, besides its event: the (strawberry) schema,
    the operation (its parsed node) and the coerced variables; None: never shared."""
    try:
        encoded = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None  # not plain JSON
    return (id(schema), id(operation), encoded)


def _sharable(result: GraphQLExecutionResult) -> GraphQLExecutionResult:
    if result.errors or result.extensions or not isinstance(result.data, dict):
        return result
    return GraphQLExecutionResult(data=SharedData(result.data))


class SharedEventExecution:
    """Mixin for a graphql-core `Executor` subclass: a subscription event whose root was
    built by `shared_root` is executed once per (schema, operation, variables); the
    other subscribers get the same result."""

    _shared_results: dict[Any, Any] | None = None
    _share_key: Any = None

    def build_per_event_executor(self, payload: Any) -> Any:
        attributes = getattr(payload, "__dict__", None)
        results = attributes.get(_RESULTS) if attributes else None
        if results is None:
            return super().build_per_event_executor(payload)  # type: ignore[misc]
        schema = _strawberry_schema(self.schema)  # type: ignore[attr-defined]
        operation = self.operation  # type: ignore[attr-defined]
        key = self._share_key
        if key is None:
            coerced = self.variable_values.coerced  # type: ignore[attr-defined]
            key = self._share_key = _operation_key(schema, operation, coerced) or False
        if key is False:
            return super().build_per_event_executor(payload)  # type: ignore[misc]
        entry = results.get(key)
        if entry is not None and entry[0] is schema and entry[1] is operation:
            stats.reused += 1
            return _Reused(entry[2])
        executor = super().build_per_event_executor(payload)  # type: ignore[misc]
        executor._shared_results = results
        executor._share_key = key
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        results = self._shared_results
        if results is None:
            return super().execute_operation(serially)  # type: ignore[misc]
        stats.executions += 1
        schema = _strawberry_schema(self.schema)  # type: ignore[attr-defined]
        operation = self.operation  # type: ignore[attr-defined]
        result = super().execute_operation(serially)  # type: ignore[misc]
        if self.is_awaitable(result):  # type: ignore[attr-defined]
            # an async field: the others wait for this one execution
            task = asyncio.ensure_future(_finish(result))
            task.add_done_callback(_retrieve)
            results[self._share_key] = (schema, operation, task)
            return _await_shared(task)
        result = _sharable(result)
        results[self._share_key] = (schema, operation, result)
        return result


class _Reused:
    """Stands in for a per-event executor: the result another subscriber's had."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:  # noqa: ARG002
        if isinstance(self.result, asyncio.Future):
            return _await_shared(self.result)
        return self.result


def _strawberry_schema(schema: Any) -> Any:
    return getattr(schema, "_strawberry_schema", schema)


async def _finish(result: Any) -> GraphQLExecutionResult:
    return _sharable(await result)


def _retrieve(task: asyncio.Future) -> None:
    # each waiter gets the exception; none is left "never retrieved" if all have left
    if not task.cancelled():
        task.exception()


async def _await_shared(task: asyncio.Future) -> GraphQLExecutionResult:
    # shielded: one subscriber leaving does not cancel the others' result
    return await asyncio.shield(task)


_DEFAULT_ENCODE = BaseView.encode_json

# The operation the current task runs (set by the handler for its operation tasks).
_OPERATION: ContextVar[tuple[SharingTransportWSHandler, Operation] | None] = ContextVar(
    "live_operation", default=None
)


class SharedDelivery:
    """A subscription resolver's side of the sharing, made once per subscription.

    `root(data, key, build)` is the event's shared root (see `shared_root`). `sent(root)`
    sends this operation's `next` frame for it straight away when another subscriber
    running the same operation already had it executed (the frame is exactly the one the
    handler would send: it is built from the same serialized payload), and tells so: the
    resolver then does not yield it. Otherwise the resolver yields the root and it goes
    through execution (shared by `SharedEventExecution`) and the handler as usual."""

    def __init__(self, info: Any) -> None:
        current = _OPERATION.get()
        self._handler, self._operation = current if current is not None else (None, None)
        if self._handler is not None and not self._handler.splices:
            self._handler = None
        self._schema = info.schema
        self._node = info.operation
        self._key = _operation_key(self._schema, self._node, info.variable_values)

    root = staticmethod(shared_root)

    async def sent(self, root: Any) -> bool:
        handler, key = self._handler, self._key
        if handler is None or key is None:
            return False
        results = getattr(root, "__dict__", {}).get(_RESULTS)
        entry = results.get(key) if results is not None else None
        if entry is None or entry[0] is not self._schema or entry[1] is not self._node:
            return False
        result = entry[2]
        if isinstance(result, asyncio.Future):
            if not result.done() or result.cancelled() or result.exception() is not None:
                return False
            result = result.result()
        data = result.data
        if type(data) is not SharedData:
            return False  # errors: each subscriber's own result (masking, request id)
        try:
            await handler._send_shared(self._operation, data)  # type: ignore[arg-type]
        except WebSocketDisconnected:
            return False  # yielded instead: the handler meets the closed socket as before
        stats.reused += 1
        return True


class SharingTransportWSHandler(BaseGraphQLTransportWSHandler):
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
        _OPERATION.set((self, operation))  # this task's own context
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
            await self.websocket.ws.send_text(frame)  # type: ignore[attr-defined]
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
