"""The Starlette application: /graphql, health probes, and (later) webhooks and files."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app import logs, tracing, worker
from app.api import build_schema
from app.consumers import install_consumers
from app.db import close_db, init_db
from app.http import access_log, link_pages, payment_pages
from app.http.body_limits import BodyLimitMiddleware
from app.http.csv_exports import download_csv_export
from app.http.email_bounces import email_bounces
from app.http.exports import download_export
from app.http.files import download_file
from app.http.graphiql import ASSET_ROUTE, graphiql_asset
from app.http.graphql import DossierGraphQL
from app.http.metrics import Observability, metrics_endpoint
from app.http.stripe_webhook import stripe_webhook
from app.http.twilio_inbound import twilio_inbound
from app.http.twilio_status import twilio_status
from app.providers.payments import build_payment_provider
from app.providers.storage import build_storage
from app.services import access_audit, outbox
from app.settings import Settings, get_settings
from app.subscriptions.hub import hub_for

logger = logging.getLogger("app")
SHUTDOWN_DISPATCH_SECONDS = 10.0


class RequestIdMiddleware:
    """Gives every request an id (or keeps a sane incoming X-Request-ID) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        sane = incoming.isascii() and incoming.isalnum() and len(incoming) <= 64
        request_id = incoming if sane else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


async def healthz(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        from tortoise.connection import get_connection

        await get_connection("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise, from a probe
        checks["database"] = f"error: {type(exc).__name__}"
    settings: Settings = request.app.state.settings
    if settings.redis_url:
        checks["redis"] = await _redis_check(settings.redis_url)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def _redis_check(url: str) -> str:
    import redis.asyncio as redis

    client = redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        return "ok"
    except Exception as exc:  # report, never raise, from a probe
        return f"error: {type(exc).__name__}"
    finally:
        await client.aclose()


def create_app(settings: Settings | None = None, *, manage_db: bool = True) -> Starlette:
    settings = settings or get_settings()
    install_consumers()
    access_log.install()  # no query strings (signed links) in uvicorn's access log
    logs.install_record_factory()  # every log line: its request id and GraphQL operation
    if settings.otel_enabled:
        tracing.configure(settings.otel_service_name)
    graphql = DossierGraphQL(build_schema(settings), settings)
    # Live updates: memory:// without REDIS_URL, Redis otherwise. Started here; also
    # started lazily by the first subscription when the app runs without its lifespan.
    hub = hub_for(settings)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if manage_db:
            await init_db(settings.database_url)
        await hub.open()
        try:
            # The embedded default has no separate worker process: run its jobs here. The
            # access audit's buffer is written periodically, and once more on the way out.
            async with worker.in_process(enabled=settings.is_sqlite), access_audit.running():
                yield
        finally:
            # Dispatches still running after their responses (DISPATCH_AFTER_RESPONSE): let
            # them finish; what a timeout cuts short is the relay's (nothing is lost).
            if not await outbox.drain(within=SHUTDOWN_DISPATCH_SECONDS):
                logger.warning("outbox dispatches still running at shutdown; left to the relay")
            await hub.release()  # ends live subscriptions with an error, then disconnects
            if manage_db:
                await close_db()

    payment_provider = build_payment_provider(settings)
    if settings.is_production and payment_provider.name == "dummy":
        # Settings refuse this unless ALLOW_DUMMY_PAYMENTS=true: say what it means, loudly.
        logger.warning(
            "DUMMY PAYMENTS IN PRODUCTION (ALLOW_DUMMY_PAYMENTS=true, no STRIPE_SECRET_KEY): "
            "no money moves, and anyone who opens an order's /dummy-checkout page can mark "
            "it paid. Set STRIPE_SECRET_KEY for real payments."
        )
    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/webhooks/twilio/inbound", twilio_inbound, methods=["POST"]),
        Route("/webhooks/twilio/status", twilio_status, methods=["POST"]),
        Route("/webhooks/email/bounces", email_bounces, methods=["POST"]),
        Route("/pay/{reminder_id}", payment_pages.pay_reminder, methods=["GET"]),
        Route("/payment/{result:str}", payment_pages.payment_result_page, methods=["GET"]),
        Route("/files/{version_id}", download_file, methods=["GET"]),
        Route("/exports/csv/{kind}", download_csv_export, methods=["GET"]),
        Route("/exports/{export_id}", download_export, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if settings.serves_app_pages:  # no front end at PUBLIC_APP_URL: its links are ours
        routes += link_pages.routes()
    if settings.graphiql_enabled:
        routes.append(Route(ASSET_ROUTE + "/{digest}/{name}", graphiql_asset, methods=["GET"]))
    if payment_provider.name == "dummy":
        routes += [
            Route("/dummy-checkout/{session_id}", payment_pages.dummy_checkout_page),
            Route(
                "/dummy-checkout/{session_id}/{action}",
                payment_pages.dummy_checkout_action,
                methods=["POST"],
            ),
        ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_body_mb * 1024 * 1024,
    )
    app.add_middleware(Observability)  # inside RequestIdMiddleware: reads the id it set
    app.add_middleware(RequestIdMiddleware)
    if settings.otel_enabled and (traced := tracing.asgi_middleware()) is not None:
        app.add_middleware(traced[0], **traced[1])  # outermost: the request's server span
    app.state.settings = settings
    app.state.payments = payment_provider
    app.state.storage = build_storage(settings)
    app.state.hub = hub
    app.state.graphql = graphql
    return app
