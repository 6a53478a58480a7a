"""What every Twilio webhook of ours does first: read the form and check that Twilio sent it.

Twilio signs each request it makes (status callbacks, inbound messages) with the account's
auth token: `X-Twilio-Signature` is the base64 HMAC-SHA1 of the full URL it called followed
by every POST parameter, sorted by name, as name and value concatenated
(https://www.twilio.com/docs/usage/security#validating-requests). The URL is the one
configured in Twilio's console, built from PUBLIC_API_URL (what Twilio sees, not what a
proxy forwards to us), with the query string as sent. Anything else answers 403 and does
nothing: no token configured, no header, a wrong signature, a body that is not a form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.settings import get_settings

MAX_FORM_BYTES = 64 * 1024  # a Twilio callback is a few hundred bytes; media are URLs


def twilio_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """Twilio's signature of a POST to `url` with these form parameters (each name once,
    sorted, followed by its distinct values sorted: as Twilio's own validator builds it)."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def public_url(request: Request) -> str:
    """The URL Twilio called: PUBLIC_API_URL, our path, the query as sent."""
    url = get_settings().public_api_url.rstrip("/") + request.url.path
    return f"{url}?{request.url.query}" if request.url.query else url


class Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def verified_form(request: Request) -> dict[str, list[str]]:
    """The request's form parameters (name -> values, in order) once its signature is
    Twilio's, else Refused (403, nothing read further)."""
    token = get_settings().twilio_auth_token
    given = request.headers.get("x-twilio-signature", "")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not token or not given or content_type != "application/x-www-form-urlencoded":
        raise Refused(PlainTextResponse("Forbidden.", 403))
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Refused(PlainTextResponse("Too large.", 413))

    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise Refused(PlainTextResponse("Forbidden.", 403)) from None
    expected = twilio_signature(public_url(request), pairs, token)
    if not hmac.compare_digest(expected, given):
        raise Refused(PlainTextResponse("Forbidden.", 403))
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form
