"""One live event, executed once per operation, delivered to every subscriber of it.

The hub hands the same `Published` object to every subscriber of a topic. Each stream
decodes it once (`live_data`: one `LiveData` per event, shared), and the subscription
resolvers build their root object once per event (`shared_root`). The GraphQL selection
over that root is then executed once per (event, schema, operation, variables):
`SharedEventExecution` (app.compat.graphql_core), a mixin for graphql-core's executor,
keeps the result on the root object and hands it to every other subscriber running the
same operation, and the transport handler (`SharingTransportWSHandler`, also in
app.compat) serializes its `next` payload once and only splices each subscriber's
operation id in front of it.

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
from typing import Any

from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation

from app.compat.graphql_core import RESULTS, operation_key, stats
from app.compat.strawberry import SharedData, SharingTransportWSHandler, current_operation

__all__ = ["LiveData", "SharedDelivery", "shared_root", "stats"]


class LiveData(dict[str, Any]):
    """A published event's data, decoded once; `origin` is the event's memo, shared by
    every subscriber of the topic it came through."""

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
        vars(root)[RESULTS] = {}
        origin[key] = root
    return root


class SharedDelivery:
    """A subscription resolver's side of the sharing, made once per subscription.

    `root(data, key, build)` is the event's shared root (see `shared_root`). `sent(root)`
    sends this operation's `next` frame for it straight away when another subscriber
    running the same operation already had it executed (the frame is exactly the one the
    handler would send: it is built from the same serialized payload), and tells so: the
    resolver then does not yield it. Otherwise the resolver yields the root and it goes
    through execution (shared by `SharedEventExecution`) and the handler as usual."""

    def __init__(self, info: Any) -> None:
        current = current_operation.get()
        self._handler: SharingTransportWSHandler | None = None
        self._operation: Operation | None = None
        if current is not None:
            self._handler, self._operation = current
        if self._handler is not None and not self._handler.splices:
            self._handler = None
        self._schema = info.schema
        self._node = info.operation
        self._key = operation_key(self._schema, self._node, info.variable_values)

    root = staticmethod(shared_root)

    async def sent(self, root: Any) -> bool:
        handler, operation, key = self._handler, self._operation, self._key
        if handler is None or operation is None or key is None:
            return False
        results = getattr(root, "__dict__", {}).get(RESULTS)
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
            await handler._send_shared(operation, data)
        except WebSocketDisconnected:
            return False  # yielded instead: the handler meets the closed socket as before
        stats.reused += 1
        return True
