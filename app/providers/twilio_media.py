"""The media of an inbound SMS/MMS or WhatsApp message, fetched from Twilio.

Twilio's webhook gives `MediaUrl0..N` (under api.twilio.com, answered with the file or a
redirect to its storage) and `MediaContentType0..N`. We fetch them with the account's
basic auth (httpx drops it on a redirect to another host), read at most `limit` bytes
while they arrive, and only from Twilio's API address (`TWILIO_API_BASE`): a signed
webhook is Twilio's, but a URL elsewhere is never fetched.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.settings import Settings


class MediaRefused(Exception):
    """Not fetched, or not completely: the reason is the message."""


@dataclass(frozen=True)
class Media:
    content: bytes
    content_type: str


def from_twilio(url: str, settings: Settings) -> bool:
    base = settings.twilio_api_base.rstrip("/") + "/"
    return url.startswith(base)


async def fetch_media(url: str, *, limit: int, settings: Settings) -> Media:
    if not from_twilio(url, settings):
        raise MediaRefused("not a Twilio media address")
    try:
        async with (
            httpx.AsyncClient(
                auth=(settings.twilio_account_sid, settings.twilio_auth_token),
                timeout=settings.twilio_timeout_seconds,
                follow_redirects=True,
                max_redirects=3,
            ) as client,
            client.stream("GET", url) as reply,
        ):
            if reply.status_code != 200:
                raise MediaRefused(f"Twilio answered HTTP {reply.status_code}")
            declared = reply.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise MediaRefused("the file is too large")
            body = bytearray()
            async for chunk in reply.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise MediaRefused("the file is too large")
            content_type = reply.headers.get("content-type", "").split(";")[0].strip()
    except httpx.HTTPError as exc:
        raise MediaRefused(f"could not be fetched ({type(exc).__name__})") from exc
    return Media(bytes(body), content_type.lower())
