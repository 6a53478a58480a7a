"""graphql-core internals: the executor's per-field and per-event methods, overridden.

graphql-core 3.3's `ExecutionContext.execute_field(parent_type, source, field_details_list,
path, position_context)`, `build_per_event_executor` and `execute_operation` are not a
promised API (3.2 had other signatures). Two mixins for an executor class override them:

1. What is never awaitable. A Tortoise model instance defines `__await__` (awaiting it
   gives itself back), so graphql-core's `is_awaitable` took every object a resolver
   returned for a coroutine: each was completed through `complete_awaitable_value` — a
   coroutine, and a task per list item gathered — although its value was already there
   (the review queue at first=200: ~1,600 tasks and ~2,400 coroutines per request). Models
   and the plain values resolvers return are answered synchronously here; anything else
   keeps graphql-core's check.
2. Plain scalar fields. A field with no resolver, no arguments and a scalar or enum type
   (`fileName`, `status`, `createdAt`: most of a list's fields) is read and serialised
   directly: no resolve-info object, no resolver wrapper, no completion dispatch. Whatever
   the shortcut cannot answer plainly (a missing attribute, a null where the schema says
   non-null, a value its scalar refuses) goes down graphql-core's own path, which raises
   the same located error it always did.
3. One execution per live event (`SharedEventExecution`): a subscription event whose root
   was built by `app.subscriptions.sharing.shared_root` is executed once per (schema,
   operation, variables); the other subscribers get the same result.

Pinned in tests/test_compat.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeGuard, cast
from uuid import UUID

import orjson
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLNonNull, GraphQLObjectType, GraphQLSchema, is_leaf_type
from graphql.pyutils import Undefined
from tortoise.models import Model

from app.compat.strawberry import (
    SharedData,
    field_definition,
    is_default_resolver,
    optimized_is_awaitable,
    strawberry_schema,
)

if TYPE_CHECKING:  # the mixins below are for subclasses of graphql-core's executor
    from graphql.execution.executor import Executor as _Executor
else:
    _Executor = object

RESULTS = "_live_results"  # the attribute of a shared root holding its results


def _plain_types() -> frozenset[type]:
    kinds: set[type] = {type(None), bool, int, float, str, list, tuple, dict}
    kinds |= {datetime, date, UUID, Decimal}
    try:  # asyncpg hands UUID columns back as its own subclass of uuid.UUID
        from asyncpg.pgproto.pgproto import UUID as PgUUID

        kinds.add(PgUUID)
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    return frozenset(kinds)


_NEVER_AWAITABLE = _plain_types()


def is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    kind = type(value)
    if kind in _NEVER_AWAITABLE:
        return False
    if isinstance(value, (Model, Enum)):
        return False
    return optimized_is_awaitable(value)


# (python attribute, its scalar's output coercion, non-null) for a plain scalar field,
# None for any other field; per schema, per (type name, field name).
_Plan = tuple[str, Any, bool] | None
_NO_PLAN: Any = object()


def _plan(schema: GraphQLSchema, parent_type: GraphQLObjectType, name: str) -> _Plan:
    field_def = schema.get_field(parent_type, name)
    if field_def is None or field_def.args or not is_default_resolver(field_def):
        return None
    definition = field_definition(field_def)
    python_name = getattr(definition, "python_name", None)
    if python_name is None or getattr(definition, "base_resolver", None) is not None:
        return None
    kind, non_null = field_def.type, False
    if isinstance(kind, GraphQLNonNull):
        kind, non_null = kind.of_type, True
    if not is_leaf_type(kind):
        return None
    return python_name, kind.coerce_output_value, non_null


class PlainFieldExecution(_Executor):
    """Mixin for a graphql-core `ExecutionContext` subclass: shortcuts 1 and 2 above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable
        plans = self.schema.__dict__.get("_plain_fields")
        if plans is None:
            plans = self.schema.__dict__["_plain_fields"] = {}
        self._plans: dict[tuple[str, str], _Plan] = plans
        manager = self.middleware_manager
        self._plain = manager is None or manager._middleware_resolvers is None

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        if self._plain:
            node = field_details_list[0].node
            if not node.arguments:
                key = (parent_type.name, node.name.value)
                plan = self._plans.get(key, _NO_PLAN)
                if plan is _NO_PLAN:
                    plan = self._plans[key] = _plan(self.schema, parent_type, key[1])
                if plan is not None:
                    python_name, coerce, non_null = plan
                    value = getattr(source, python_name, Undefined)
                    if value is None:
                        if not non_null:
                            return None
                    elif type(value) in _NEVER_AWAITABLE or isinstance(value, Enum):
                        try:
                            coerced = coerce(value)
                        except Exception:  # graphql-core's path below reports it
                            coerced = None
                        if coerced is not None and coerced is not Undefined:
                            return coerced
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )


class Stats:
    """Counters of this process (read by tests and the bench, never reset)."""

    def __init__(self) -> None:
        self.executions = 0  # selections executed for a shared live event
        self.reused = 0  # deliveries that reused another subscriber's execution


stats = Stats()


def operation_key(schema: Any, operation: Any, variables: Any) -> tuple[Any, ...] | None:
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


class SharedEventExecution(_Executor):
    """Mixin for a graphql-core `Executor` subclass: a subscription event whose root was
    built by `shared_root` is executed once per (schema, operation, variables); the
    other subscribers get the same result."""

    _shared_results: dict[Any, Any] | None = None
    _share_key: Any = None

    def build_per_event_executor(self, payload: Any) -> Any:
        attributes = getattr(payload, "__dict__", None)
        results = attributes.get(RESULTS) if attributes else None
        if results is None:
            return super().build_per_event_executor(payload)
        schema = strawberry_schema(self.schema)
        operation = self.operation
        key = self._share_key
        if key is None:
            coerced = self.variable_values.coerced
            key = self._share_key = operation_key(schema, operation, coerced) or False
        if key is False:
            return super().build_per_event_executor(payload)
        entry = results.get(key)
        if entry is not None and entry[0] is schema and entry[1] is operation:
            stats.reused += 1
            return _Reused(entry[2])
        executor: Any = super().build_per_event_executor(payload)
        executor._shared_results = results
        executor._share_key = key
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        results = self._shared_results
        if results is None:
            return super().execute_operation(serially)
        stats.executions += 1
        schema = strawberry_schema(self.schema)
        operation = self.operation
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            # an async field: the others wait for this one execution
            task = asyncio.ensure_future(_finish(result))
            task.add_done_callback(_retrieve)
            results[self._share_key] = (schema, operation, task)
            return _await_shared(task)
        shared = _sharable(cast(GraphQLExecutionResult, result))
        results[self._share_key] = (schema, operation, shared)
        return shared


class _Reused:
    """Stands in for a per-event executor: the result another subscriber's had."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:  # noqa: ARG002
        if isinstance(self.result, asyncio.Future):
            return _await_shared(self.result)
        return self.result


async def _finish(result: Any) -> GraphQLExecutionResult:
    return _sharable(await result)


def _retrieve(task: asyncio.Future) -> None:
    # each waiter gets the exception; none is left "never retrieved" if all have left
    if not task.cancelled():
        task.exception()


async def _await_shared(task: asyncio.Future) -> GraphQLExecutionResult:
    # shielded: one subscriber leaving does not cancel the others' result
    return await asyncio.shield(task)
