"""`POST /webhooks/email/bounces`: the bounces (RFC 3464 DSNs) of our e-mails, as raw MIME.

Which provider: Twilio SendGrid's Inbound Parse, with "POST the raw, full MIME message"
checked, for the bounce domain (its MX pointed at mx.sendgrid.net): it posts
`multipart/form-data` with the message in the `email` field and the SMTP envelope in
`envelope` (JSON). Its destination URL carries the credentials, as HTTP basic auth
(`https://bounces:<EMAIL_BOUNCE_WEBHOOK_SECRET>@api.example.com/webhooks/email/bounces`).
Any mail server can post the same way, or the bare message (`Content-Type:
message/rfc822`), e.g. a Postfix pipe to `curl -u bounces:<secret> --data-binary @-`.

Refused with 403 unless the basic-auth password is EMAIL_BOUNCE_WEBHOOK_SECRET (none set:
everything refused). What is not a DSN, or names no delivery of ours, is acknowledged and
ignored (200: a retry would not change it); a DSN is applied by app.services.bounces.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from app.services import bounces
from app.settings import get_settings

logger = logging.getLogger("app.http.email_bounces")

MAX_MESSAGE_BYTES = 1024 * 1024  # a DSN carries our message back: a few tens of kB


def authorised(request: Request) -> bool:
    secret = get_settings().email_bounce_webhook_secret
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if not secret or scheme.lower() != "basic":
        return False
    try:
        _user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(password.encode(), secret.encode())


async def _message(request: Request) -> tuple[bytes | None, list[str]]:
    """The raw message and the envelope's recipients, from either shape."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=20, max_fields=100, max_part_size=MAX_MESSAGE_BYTES)
        raw = form.get("email")
        data: bytes | None = None
        if isinstance(raw, UploadFile):
            data = await raw.read(MAX_MESSAGE_BYTES + 1)
        elif isinstance(raw, str):
            data = raw.encode()
        envelope = form.get("envelope")
        return data, bounces.envelope_recipients(envelope if isinstance(envelope, str) else None)
    if content_type == "message/rfc822":
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_MESSAGE_BYTES:
                break
        return bytes(body), []
    return None, []


async def email_bounces(request: Request) -> Response:
    if not authorised(request):
        return PlainTextResponse("Forbidden.", 403)
    data, envelope_to = await _message(request)
    if data is None:
        return PlainTextResponse("Send the message as message/rfc822 or the `email` field.", 400)
    if len(data) > MAX_MESSAGE_BYTES:
        return PlainTextResponse("Too large.", 413)
    try:
        report = bounces.parse_report(data)
    except bounces.NotADsn as exc:
        logger.info("inbound e-mail on the bounce path is not a DSN: %s", exc)
        return JSONResponse({"outcome": "not-a-report"})
    try:
        outcome = await bounces.apply_report(report, envelope_to=envelope_to)
    except Exception:
        logger.exception("bounce not recorded")
        return PlainTextResponse("Temporarily unavailable.", 503)
    return JSONResponse({"outcome": outcome.value})
