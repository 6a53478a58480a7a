"""OpenTelemetry traces, when OTEL_ENABLED=true (off by default).

Nothing of OpenTelemetry is imported unless tracing is enabled: it is the optional `otel`
extra. Enabled, a process gets a tracer provider exporting over OTLP/HTTP in batches
(configured by the standard `OTEL_EXPORTER_OTLP_*` variables); a server span per request
(the ASGI instrumentation); strawberry's own OpenTelemetry extension on the schema (a span
per operation, its parse and validation and each resolver); and the asyncpg and httpx
instrumentations (a span per SQL statement on PostgreSQL, per outgoing HTTP call: Twilio,
Stripe's httpx client...) when installed. The embedded SQLite default has no statement
spans.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("app.tracing")
_configured: list[Any] = []  # the instrumentors this process enabled


def graphql_extension() -> Any:
    """strawberry's OpenTelemetry extension (its spans go to the global tracer provider)."""
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return OpenTelemetryExtension


# Probes and scrapes are not traced.
UNTRACED_PATHS = "/metrics,/healthz,/readyz"


def asgi_middleware() -> tuple[Any, dict[str, Any]] | None:
    """OpenTelemetry's ASGI middleware and its options (Starlette's add_middleware): a
    server span per HTTP request and WebSocket (continuing an incoming `traceparent`), so
    every span of a request, the statements run before any resolver included, is in its
    trace. None when not installed."""
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.util.http import parse_excluded_urls
    except ImportError:
        logger.info("tracing: opentelemetry-instrumentation-asgi is not installed")
        return None
    return OpenTelemetryMiddleware, {
        # parsed here: before 0.5x the middleware took only the parsed list, not the text
        "excluded_urls": parse_excluded_urls(UNTRACED_PATHS),
        "exclude_spans": ["receive", "send"],  # not a span per frame of a live socket
    }


def configure(service_name: str, *, tracer_provider: Any = None) -> Any:
    """Set up tracing for this process (idempotent); returns the tracer provider. Tests
    pass their own provider (an in-memory exporter); otherwise one exporting over OTLP."""
    from opentelemetry import trace

    if _configured:
        return trace.get_tracer_provider()
    if tracer_provider is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    for module, name in (
        ("opentelemetry.instrumentation.asyncpg", "AsyncPGInstrumentor"),
        ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    ):
        try:
            instrumentor = getattr(__import__(module, fromlist=[name]), name)()
        except ImportError:
            logger.info("tracing: %s is not installed; no spans from it", module)
            continue
        instrumentor.instrument(tracer_provider=tracer_provider)
        _configured.append(instrumentor)
    _configured.append(tracer_provider)
    logger.info("tracing enabled (service %s)", service_name)
    return tracer_provider


def shutdown() -> None:
    """Undo `configure` (tests), flushing what is buffered."""
    while _configured:
        item = _configured.pop()
        if hasattr(item, "uninstrument"):
            item.uninstrument()
        elif hasattr(item, "force_flush"):
            item.force_flush()
