"""`/metrics` (Prometheus's text format) and the ASGI middleware that feeds it and the logs.

The scrape is authorised by METRICS_TOKEN (`Authorization: Bearer …`, compared in constant
time; 401 otherwise). Without a token, `/metrics` answers 404 in production (off until
configured) and is open in development and tests. The database-wide gauges (outbox lag,
delivery backlog) and the pool's use are read at scrape time: one indexed query each,
nothing per request.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logs, metrics
from app.compat.tortoise import pool_use
from app.security import bearer_token
from app.services import gauges
from app.settings import Settings

logger = logging.getLogger("app.metrics")


def _authorised(request: Request, settings: Settings) -> Response | None:
    """None when the scrape may proceed, else the refusal."""
    if not settings.metrics_token:
        if settings.metrics_open:
            return None
        return PlainTextResponse("Not Found", status_code=404)
    try:
        sent = bearer_token(request.headers.get("authorization")) or ""
    except Exception:  # a malformed header is no token
        sent = ""
    if sent and hmac.compare_digest(sent.encode(), settings.metrics_token.encode()):
        return None
    return PlainTextResponse(
        "A valid METRICS_TOKEN is required (Authorization: Bearer <token>).",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


async def refresh_gauges() -> None:
    """The scrape-time values; a database that does not answer leaves them as they were
    (the scrape still answers: the process's own counters are worth having then)."""
    try:
        from tortoise import connections

        client = connections.get("default")
        use = pool_use(client)
        if use is not None:
            open_, idle, ceiling = use
            metrics.DB_POOL.labels("open").set(open_)
            metrics.DB_POOL.labels("idle").set(idle)
            metrics.DB_POOL.labels("in_use").set(open_ - idle)
            metrics.DB_POOL.labels("max").set(ceiling)
        metrics.OUTBOX_LAG.set(await gauges.outbox_lag_seconds())
        for channel, waiting in (await gauges.delivery_backlog()).items():
            metrics.DELIVERY_BACKLOG.labels(channel).set(waiting)
    except Exception as exc:  # report, never fail, a scrape
        logger.warning("metrics: database gauges not refreshed: %s", type(exc).__name__)


async def metrics_endpoint(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    refusal = _authorised(request, settings)
    if refusal is not None:
        return refusal
    await refresh_gauges()
    return Response(
        generate_latest(REGISTRY),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )


def metrics_app(settings: Settings) -> Starlette:
    """A Starlette app serving only `/metrics` (the worker's own endpoint)."""
    app = Starlette(routes=[Route("/metrics", metrics_endpoint, methods=["GET"])])
    app.state.settings = settings
    return app


class Observability:
    """ASGI middleware, inside the request-id one: the request id for every log line of the
    request (app.logs), and the open WebSockets counted (accepted until closed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.get("state") or {}
        token = logs.request_id.set(state.get("request_id"))
        try:
            if kind == "http":
                await self.app(scope, receive, send)
            else:
                await self._websocket(scope, receive, send)
        finally:
            logs.request_id.reset(token)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def sending(message: Message) -> None:
            nonlocal accepted
            kind = message["type"]
            if kind == "websocket.accept" and not accepted:
                accepted = True
                metrics.OPEN_WEBSOCKETS.inc()
            elif kind == "websocket.close" and accepted:
                accepted = False
                metrics.OPEN_WEBSOCKETS.dec()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if accepted:  # closed by the client, or the app ended without a close
                metrics.OPEN_WEBSOCKETS.dec()
