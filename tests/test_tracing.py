"""OpenTelemetry traces (OTEL_ENABLED=true, issue 21 item 4), collected by an in-memory
exporter: a GraphQL operation's spans (strawberry's extension: the operation, its parse and
validation, its resolvers) and, on PostgreSQL, a span per SQL statement it ran (asyncpg),
in the same trace as the resolver that ran it."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app import tracing
from app.main import create_app
from tests.factories import make_client
from tests.ws_support import settings_with

ME = "query Me { me { ... on Profile { fullName } } }"


@pytest.fixture
def exported():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure("dossier-api-test", tracer_provider=provider)
    try:
        yield exporter
    finally:
        tracing.shutdown()  # the asyncpg and httpx instrumentations are undone


async def test_an_operation_and_its_statements_are_traced(exported, backend):
    owner = await make_client()
    app = create_app(settings_with(otel_enabled=True), manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        exported.clear()
        response = await http.post(
            "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {owner.token}"}
        )
    assert response.json()["data"]["me"]["fullName"]
    spans = exported.get_finished_spans()
    names = [span.name for span in spans]
    assert "GraphQL Query: Me" in names
    assert {"GraphQL Parsing", "GraphQL Validation", "GraphQL Resolving: me"} <= set(names)
    [operation] = [s for s in spans if s.name == "GraphQL Query: Me"]
    [resolving] = [s for s in spans if s.name == "GraphQL Resolving: me"]
    assert resolving.context.trace_id == operation.context.trace_id
    # inside the request's server span (the ASGI instrumentation)
    [request] = [s for s in spans if s.name == "POST /graphql"]
    assert operation.parent is not None
    assert operation.parent.span_id == request.context.span_id
    if not backend.is_postgres:
        return  # the embedded SQLite default has no statement spans
    statements = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert statements, names
    assert all(s.context.trace_id == operation.context.trace_id for s in statements)
    text = " ".join(
        str((s.attributes or {}).get("db.statement") or (s.attributes or {}).get("db.query.text"))
        for s in statements
    )
    assert "SELECT" in text.upper()


def test_tracing_is_off_by_default():
    settings = settings_with()
    assert settings.otel_enabled is False
    names = [
        getattr(e, "__name__", "")
        for e in create_app(settings, manage_db=False).state.graphql.schema.extensions
    ]
    assert "OpenTelemetryExtension" not in names
