"""The executor the schema runs with: graphql-core's, with two shortcuts.

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
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.pyutils import Undefined
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from tortoise.models import Model

from app.subscriptions.sharing import SharedEventExecution


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


def is_awaitable(value: Any) -> bool:
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
    if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
        return None
    definition = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    python_name = getattr(definition, "python_name", None)
    if python_name is None or getattr(definition, "base_resolver", None) is not None:
        return None
    kind, non_null = field_def.type, False
    if isinstance(kind, GraphQLNonNull):
        kind, non_null = kind.of_type, True
    if not is_leaf_type(kind):
        return None
    return python_name, kind.coerce_output_value, non_null


class Executor(SharedEventExecution, StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with the shortcuts above; a live event's selection is
    executed once for all subscribers running the same operation (`SharedEventExecution`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable  # type: ignore[method-assign]
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
            field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
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
    if with_self and info_name is not None:

        def resolve(source: Any, info: Any) -> Any:
            return func(source, **{info_name: info_class(_raw_info=info, _field=field)})

    elif with_self:

        def resolve(source: Any, _info: Any) -> Any:
            return func(source)

    elif info_name is not None:

        def resolve(_source: Any, info: Any) -> Any:
            return func(**{info_name: info_class(_raw_info=info, _field=field)})

    else:

        def resolve(_source: Any, _info: Any) -> Any:
            return func()

    resolve._is_default = False  # type: ignore[attr-defined]
    return resolve
