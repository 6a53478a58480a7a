"""Request bodies are capped while they arrive, before anything parses or spools them.

Starlette spools multipart files to disk with no cap and uvicorn has no body limit, so
this ASGI middleware counts the bytes itself: a declared `Content-Length` over the cap
gets 413 at once, without reading a byte; a body sent without one (chunked) or with a
false one is cut off the moment the count passes the cap, and answered 413. Multipart
requests (uploads) get the upload cap, every other request the general one.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("app.http.body_limits")


class BodyTooLarge(Exception):
    """Raised from `receive` when the body passes the cap; turned into a 413."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, headers: Headers) -> int:
        content_type = headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            return self.max_upload_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limit_for(headers)
        declared = headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                await PlainTextResponse("Invalid Content-Length.", 400)(scope, receive, send)
                return
            if size > limit:
                await _too_large(limit)(scope, receive, send)
                return

        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            logger.info("request body over %d bytes refused: %s", limit, scope.get("path"))
            if not started:
                await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> PlainTextResponse:
    return PlainTextResponse(
        f"Request body too large (limit {limit} bytes).",
        status_code=413,
        headers={"connection": "close"},
    )
