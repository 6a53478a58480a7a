"""What app/compat relies on in each library, pinned.

Each test names the shortcut to revisit when a library moves the private part it uses:
an upgrade that breaks one fails here, in one named test, before any behaviour test
fails somewhere far from the cause. The versions are checked against pyproject.toml's
declared ranges (the lock installs inside them).
"""

from __future__ import annotations

import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
REVISIT = "revisit {where}: {what}"


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    return {r.name.lower(): r for r in requirements}


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    "package",
    ["strawberry-graphql", "graphql-core", "tortoise-orm", "broadcaster", "cross-web"],
)
def test_internals_libraries_are_declared_with_an_upper_bound(package):
    requirement = declared().get(package)
    assert requirement is not None, f"{package} is used by app/compat but not declared"
    assert any(s.operator in ("<", "<=", "~=", "==") for s in requirement.specifier), (
        f"{package}: app/compat uses its internals, so pyproject.toml must bound it above"
    )
    installed = version(package)
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{package} {installed} is outside the declared {requirement.specifier}"
    )


# --- graphql-core: app/compat/graphql_core.py ---------------------------------------------


def test_graphql_core_executor_methods():
    from graphql.execution.executor import Executor
    from graphql.execution.middleware import MiddlewareManager

    where = "app/compat/graphql_core.py PlainFieldExecution.execute_field"
    assert parameters(Executor.execute_field) == [
        "self",
        "parent_type",
        "source",
        "field_details_list",
        "path",
        "position_context",
    ], REVISIT.format(where=where, what="execute_field's signature changed")
    assert "_middleware_resolvers" in MiddlewareManager.__slots__, REVISIT.format(
        where=where, what="MiddlewareManager._middleware_resolvers is gone"
    )
    where = "app/compat/graphql_core.py SharedEventExecution"
    assert parameters(Executor.build_per_event_executor) == ["self", "payload"], REVISIT.format(
        where=where, what="build_per_event_executor's signature changed"
    )
    assert parameters(Executor.execute_operation) == ["self", "serially"], REVISIT.format(
        where=where, what="execute_operation's signature changed"
    )
    init = parameters(Executor.__init__)
    for name in ("is_awaitable", "middleware_manager", "variable_values", "operation"):
        assert name in init, REVISIT.format(where=where, what=f"Executor({name}=…) is gone")


def test_graphql_core_field_details_carry_their_node():
    from graphql import build_schema, parse
    from graphql.execution.collect_fields import collect_fields

    schema = build_schema("type Query { a: Int }")
    document = parse("{ a }")
    operation = document.definitions[0]
    collected = collect_fields(schema, {}, {}, schema.query_type, operation)
    fields = collected[0] if isinstance(collected, tuple) else collected.grouped_field_set
    details = next(iter(fields.values()))
    assert details[0].node.name.value == "a", REVISIT.format(
        where="app/compat/graphql_core.py PlainFieldExecution.execute_field",
        what="field_details_list[0].node no longer holds the FieldNode",
    )


# --- strawberry: app/compat/strawberry.py ------------------------------------------------


def test_strawberry_schema_internals():
    from app.api import schema
    from app.compat.strawberry import (
        field_definition,
        graphql_schema,
        is_default_resolver,
        strawberry_schema,
    )

    where = "app/compat/strawberry.py (lean_resolvers, the plain-field plan, the cost limits)"
    core = graphql_schema(schema)
    from graphql import GraphQLSchema

    assert isinstance(core, GraphQLSchema), REVISIT.format(where=where, what="Schema._schema")
    assert strawberry_schema(core) is schema, REVISIT.format(
        where=where, what="GraphQLSchema._strawberry_schema"
    )
    product = core.get_type("Product")
    code = product.fields["code"]
    definition = field_definition(code)
    assert getattr(definition, "python_name", None) == "code", REVISIT.format(
        where=where, what="GraphQLCoreConverter.DEFINITION_BACKREF"
    )
    assert is_default_resolver(code), REVISIT.format(
        where=where, what="default resolvers' `_is_default` mark"
    )
    for attribute in ("base_resolver", "is_async", "extensions", "arguments"):
        assert hasattr(definition, attribute), REVISIT.format(
            where=where, what=f"StrawberryField.{attribute}"
        )


def test_strawberry_resolver_and_info_internals():
    from strawberry.types.fields.resolver import StrawberryResolver
    from strawberry.types.info import Info

    def resolver() -> int:
        return 1

    where = "app/compat/strawberry.py lean_resolvers"
    resolved = StrawberryResolver(resolver)
    for attribute in (
        "parent_parameter",
        "root_parameter",
        "self_parameter",
        "info_parameter",
        "wrapped_func",
    ):
        assert hasattr(resolved, attribute), REVISIT.format(
            where=where, what=f"StrawberryResolver.{attribute}"
        )
    assert resolved.wrapped_func is resolver, REVISIT.format(where=where, what="wrapped_func")
    assert parameters(Info) == ["_raw_info", "_field"], REVISIT.format(
        where=where, what="Info(_raw_info=…, _field=…)"
    )


def test_strawberry_transport_ws_handler_internals():
    from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
    from strawberry.http.base import BaseView
    from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
        BaseGraphQLTransportWSHandler,
        Operation,
    )

    where = "app/compat/strawberry.py SharingTransportWSHandler"
    expected = {
        "run_operation": ["self", "operation"],
        "_send_result_stream": ["self", "operation", "result_source"],
        "_handle_pre_execution_error": ["self", "operation", "result"],
        "_reject_incremental_delivery": ["self", "operation"],
    }
    for name, names in expected.items():
        assert parameters(getattr(BaseGraphQLTransportWSHandler, name)) == names, REVISIT.format(
            where=where, what=f"BaseGraphQLTransportWSHandler.{name}"
        )
    assert parameters(Operation.send_next) == ["self", "execution_result"], REVISIT.format(
        where=where, what="Operation.send_next"
    )
    assert "completed" in inspect.getsource(Operation.__init__), REVISIT.format(
        where=where, what="Operation.completed"
    )
    assert "self.ws" in inspect.getsource(ASGIWebSocketAdapter.__init__), REVISIT.format(
        where=where, what="ASGIWebSocketAdapter.ws (the Starlette WebSocket)"
    )
    assert callable(BaseView.encode_json), REVISIT.format(where=where, what="BaseView.encode_json")
    assert "graphql_transport_ws_handler_class" in dir(GraphQL), REVISIT.format(
        where="app/http/graphql.py", what="GraphQL.graphql_transport_ws_handler_class"
    )


def test_strawberry_http_errors_are_cross_webs():
    import strawberry.http.async_base_view as view
    from cross_web import HTTPException

    from app.compat.strawberry import HTTPException as ours

    assert ours is HTTPException
    assert "HTTPException" in inspect.getsource(view), REVISIT.format(
        where="app/http/graphql.py parse_multipart",
        what="strawberry no longer answers cross-web's HTTPException with its status",
    )


def test_strawberry_hands_parse_multipart_a_starlette_adapter():
    import strawberry.asgi as asgi
    from cross_web import StarletteRequestAdapter
    from starlette.requests import Request

    from app.compat.strawberry import starlette_request

    where = "app/compat/strawberry.py starlette_request (app/http/graphql.py parse_multipart)"
    assert "StarletteRequestAdapter" in inspect.getsource(asgi), REVISIT.format(
        where=where, what="strawberry's ASGI view wraps requests in another adapter"
    )
    assert hasattr(asgi.GraphQL, "parse_multipart"), REVISIT.format(
        where=where, what="GraphQL.parse_multipart (which we override) is gone"
    )
    request = Request({"type": "http", "method": "POST", "headers": [], "query_string": b""})
    assert starlette_request(StarletteRequestAdapter(request)) is request, REVISIT.format(
        where=where, what="the adapter no longer keeps the request as `_request`"
    )


def test_strawberry_view_hooks_graphql_over_http_overrides():
    """app/http/graphql_http.py overrides these view methods, calling strawberry's own."""
    import strawberry.asgi as asgi
    from strawberry.schema.exceptions import InvalidOperationTypeError
    from strawberry.types import ExecutionResult
    from strawberry.types.execution import PreExecutionError

    where = "app/http/graphql_http.py GraphQLOverHTTP"
    expected = {
        "run": ["request", "context", "root_value"],
        "execute_single": [
            "request",
            "request_adapter",
            "sub_response",
            "context",
            "root_value",
            "request_data",
        ],
        "parse_http_body": ["request"],
        "process_result": ["request", "result"],
        "get_sub_response": ["request"],
        "create_response": ["response_data", "sub_response"],
        "should_render_graphql_ide": ["request"],
    }
    for name, names in expected.items():
        method = getattr(asgi.GraphQL, name)
        assert parameters(method)[1:] == names, REVISIT.format(
            where=where, what=f"GraphQL.{name}'s signature changed"
        )
    assert "execute_single" in inspect.getsource(asgi.GraphQL.execute_operation), REVISIT.format(
        where=where, what="execute_operation no longer runs a single operation via execute_single"
    )
    assert "operation_type" in inspect.signature(InvalidOperationTypeError).parameters
    assert issubclass(PreExecutionError, ExecutionResult), REVISIT.format(
        where=where, what="parse and validation failures are no PreExecutionError any more"
    )


# --- Tortoise: app/compat/tortoise.py ----------------------------------------------------


async def test_tortoise_sql_and_hydration_round_trip(database_url):
    from tortoise import connections

    from app.compat.tortoise import (
        columns,
        from_row,
        insert_fields,
        mark_saved,
        primary_key,
        queryset_sql,
        table,
    )
    from app.models import Product

    product = await Product.create(
        code="compat", name="Compat", price_amount=1000, currency="eur", dossier_type="OTHER"
    )
    sql, params = queryset_sql(Product.filter(code="compat"))
    rows = await connections.get("default").execute_query_dict(sql, params)
    assert len(rows) == 1, REVISIT.format(
        where="app/compat/tortoise.py queryset_sql", what="QuerySet._make_query / .query"
    )
    hydrated = from_row(Product, rows[0])
    fetched = await Product.get(id=product.id)
    assert {c: getattr(hydrated, c) for c in columns(Product)} == {
        c: getattr(fetched, c) for c in columns(Product)
    }, REVISIT.format(where="app/compat/tortoise.py from_row", what="Model._init_from_db")
    assert table(Product) == "products"
    assert primary_key(Product) == "id"
    assert "id" in insert_fields(Product)
    fresh = Product(code="x", name="x", price_amount=1, currency="eur", dossier_type="OTHER")
    mark_saved(fresh)
    assert fresh._saved_in_db is True, REVISIT.format(
        where="app/compat/tortoise.py mark_saved", what="Model._saved_in_db"
    )


async def test_tortoise_any_of_renders_a_parameterised_array_subquery(database_url):
    """AnyOf renders inside the outer query with the subquery's parameters numbered with
    the outer ones (Subquery.get_sql(ctx) shares the parameteriser); PostgreSQL only."""
    from tortoise import connections

    from app.compat.tortoise import AnyOf, queryset_sql
    from app.models import Product

    wanted = await Product.create(
        code="any-of", name="AnyOf", price_amount=1, currency="eur", dossier_type="OTHER"
    )
    inner = Product.filter(code="any-of").values("id")
    queryset = Product.filter(currency="eur", id=AnyOf(inner))
    sql, params = queryset_sql(queryset)
    assert "ANY(ARRAY((SELECT" in sql, REVISIT.format(
        where="app/compat/tortoise.py AnyOf", what="Subquery.get_sql"
    )
    assert params == ["eur", "any-of"], REVISIT.format(
        where="app/compat/tortoise.py AnyOf", what="the shared parameteriser of get_sql(ctx)"
    )
    if connections.get("default").capabilities.dialect == "postgres":
        assert [p.id for p in await queryset] == [wanted.id]
        assert await queryset.count() == 1


def test_tortoise_model_metadata():
    from app.models import Product

    meta = Product._meta
    for attribute in (
        "fields_db_projection",
        "generated_db_fields",
        "fields_map",
        "db_table",
        "pk_attr",
    ):
        assert hasattr(meta, attribute), REVISIT.format(
            where="app/compat/tortoise.py", what=f"Model._meta.{attribute}"
        )
    assert parameters(meta.fields_map["code"].to_db_value) == ["value", "instance"]


async def test_tortoise_pool_use_reads_the_live_connection(database_url, backend):
    """`pool_use` (the `dossier_db_pool_connections` gauge) reads the asyncpg pool behind
    `BasePostgresClient._pool`, or the SQLite client's `_connection` and `_lock`."""
    from tortoise import connections
    from tortoise.backends.base_postgres.client import BasePostgresClient
    from tortoise.backends.sqlite.client import SqliteClient

    from app.compat.tortoise import pool_use

    client = connections.get("default")
    await client.execute_query("SELECT 1")  # connected
    where = "app/compat/tortoise.py pool_use"
    if backend.is_postgres:
        assert isinstance(client, BasePostgresClient), REVISIT.format(where=where, what="class")
        assert client._pool is not None, REVISIT.format(where=where, what="_pool")
        async with client.acquire_connection():
            opened, idle, ceiling = pool_use(client)
            assert opened - idle >= 1  # this one is in use
        assert ceiling == client._pool.get_max_size() >= opened >= 1
    else:
        assert isinstance(client, SqliteClient), REVISIT.format(where=where, what="class")
        assert client._connection is not None, REVISIT.format(where=where, what="_connection")
        assert pool_use(client) == (1, 1, 1)
        async with client._lock:
            assert pool_use(client) == (1, 0, 1), REVISIT.format(where=where, what="_lock")


# --- broadcaster: app/compat/broadcaster.py ----------------------------------------------


async def test_broadcaster_memory_backend_publishes_before_connect():
    from app.compat.broadcaster import Event, memory_backend

    backend = memory_backend()
    await backend.subscribe("t")
    await backend.publish("t", "before connect")
    await backend.publish("other", "not subscribed")
    await backend.publish("t", "second")
    await backend.connect()
    assert await backend.next_published() == Event("t", "before connect"), REVISIT.format(
        where="app/compat/broadcaster.py", what="MemoryBackend's `_published` queue"
    )
    assert await backend.next_published() == Event("t", "second")


# --- every package the code imports is declared --------------------------------------------


def _imported_top_level(folder: str) -> set[str]:
    import ast
    import sys

    names: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {
        n for n in names if n not in sys.stdlib_module_names and n not in {"app", "bench", "tests"}
    }


def _declared_with_extras() -> set[str]:
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = [*project["dependencies"], *(r for extra in extras.values() for r in extra)]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _optional_runtime() -> set[str]:
    """The runtime extras (all but `dev`): app/ imports them only when enabled (`otel`:
    app/tracing.py, behind OTEL_ENABLED)."""
    from packaging.utils import canonicalize_name

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    return {
        canonicalize_name(Requirement(r).name)
        for name, extra in extras.items()
        if name != "dev"
        for r in extra
    }


@pytest.mark.parametrize(
    ("folder", "section"), [("app", "runtime"), ("bench", "dev"), ("tests", "dev")]
)
def test_every_imported_package_is_declared(folder, section):
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    distributions = packages_distributions()
    runtime = {
        canonicalize_name(Requirement(r).name)
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    allowed = runtime | _optional_runtime() if section == "runtime" else _declared_with_extras()
    missing = {}
    for module in sorted(_imported_top_level(folder)):
        owners = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not owners & allowed:
            missing[module] = sorted(owners)
    assert missing == {}, f"{folder}/ imports packages pyproject.toml does not declare: {missing}"
