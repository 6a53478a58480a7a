"""Our Twilio webhook check against Twilio's own algorithm (the `twilio` package's
RequestValidator): a request Twilio signed passes, anything else is refused with 403."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from app.http.twilio_webhook import Refused, twilio_signature, verified_form
from app.settings import get_settings

PARAMS = [
    ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
    ("MessageStatus", "delivered"),
    ("To", "whatsapp:+33612345678"),
    ("Body", "Bonjour, voici ma pièce d'identité"),
    ("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC1/Media/ME1"),
    ("Tag", "b"),
    ("Tag", "a"),
]


def test_our_signature_is_twilios():
    validator = RequestValidator("secret-token")
    for url in (
        "https://api.example.test/webhooks/twilio/status",
        "https://api.example.test/webhooks/twilio/status?delivery=abc&n=2",
    ):
        ours = twilio_signature(url, PARAMS, "secret-token")
        mapping = ImmutableMultiDict(PARAMS)  # repeated names, as a web framework gives them
        assert validator.compute_signature(url, mapping) == ours
        assert validator.validate(url, mapping, ours)
        assert twilio_signature(url, PARAMS, "another-token") != ours


async def _echo(request: Request) -> Response:
    try:
        form = await verified_form(request)
    except Refused as refused:
        return refused.response
    return JSONResponse(form)


def test_only_a_request_signed_as_twilio_signs_it_is_read():
    settings = get_settings()
    token, base = settings.twilio_auth_token, settings.public_api_url
    settings.twilio_auth_token, settings.public_api_url = "hook-token", "https://api.example.test"
    try:
        app = Starlette(routes=[Route("/webhooks/twilio/status", _echo, methods=["POST"])])
        http = TestClient(app)
        url = "https://api.example.test/webhooks/twilio/status?delivery=abc"
        body = urlencode(PARAMS)
        signed = RequestValidator("hook-token").compute_signature(url, ImmutableMultiDict(PARAMS))
        form = {"content-type": "application/x-www-form-urlencoded"}

        def post(headers: dict[str, str], content: str = body, path: str = "?delivery=abc"):
            return http.post(f"/webhooks/twilio/status{path}", content=content, headers=headers)

        ok = post({**form, "x-twilio-signature": signed})
        assert ok.status_code == 200
        assert ok.json()["Tag"] == ["b", "a"]
        assert ok.json()["Body"] == ["Bonjour, voici ma pièce d'identité"]
        refused = [
            post(form),  # unsigned
            post({**form, "x-twilio-signature": signed[:-2] + "AA"}),  # forged
            post({**form, "x-twilio-signature": signed}, body.replace("delivered", "read")),
            post({**form, "x-twilio-signature": signed}, path="?delivery=other"),  # another URL
            post({"content-type": "application/json", "x-twilio-signature": signed}),
        ]
        assert [r.status_code for r in refused] == [403] * 5
        settings.twilio_auth_token = ""  # no token configured: nothing is Twilio's
        assert post({**form, "x-twilio-signature": signed}).status_code == 403
    finally:
        settings.twilio_auth_token, settings.public_api_url = token, base
