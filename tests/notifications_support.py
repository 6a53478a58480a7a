"""Real peers for the notification channels, and helpers to make events and deliveries.

- `SmtpPeer`: an aiosmtpd server on a loopback port that keeps what it accepted, and can
  be told to answer the next commands with given replies (451, 550, ...).
- `TwilioPeer`: a small HTTP server speaking Twilio's Messages API (form-encoded in, the
  documented JSON out) that records each request and can answer 201, 400 or 500; it also
  serves inbound media behind the account's basic auth (`add_media`), and
  `post_inbound` sends our inbound webhook a message signed as Twilio signs it.
- `emit()`: records an event as a service would (inside `outbox.collecting()` and a
  transaction), so the outbox dispatches it to the notifications consumer after commit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tortoise.transactions import in_transaction
from twilio.request_validator import RequestValidator

from app.auth import viewer_from_token
from app.domain.viewer import Viewer
from app.models import Event, Notification, NotificationDelivery
from app.models.enums import EventType, NotificationChannel, NotificationStatus
from app.services import events, outbox
from app.settings import Settings, get_settings

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-test-token"
TWILIO_FROM = "+15005550006"
TWILIO_WHATSAPP_FROM = "+14155238886"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- SMTP ---------------------------------------------------------------------------------


class _SmtpHandler:
    def __init__(self) -> None:
        self.accepted: list[EmailMessage] = []
        self.attempted: list[EmailMessage] = []  # every DATA received, accepted or not
        self.rcpt_replies: list[str] = []
        self.data_replies: list[str] = []
        self.envelopes: list[Envelope] = []  # issue 20: MAIL FROM and RCPT TO of each accepted

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ARG002
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ARG002
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.attempted.append(message)  # type: ignore[arg-type]
        if self.data_replies:
            return self.data_replies.pop(0)
        self.accepted.append(message)  # type: ignore[arg-type]
        _keep_envelope(self, envelope)
        return "250 2.0.0 Message accepted for delivery"


@dataclass(frozen=True)
class Envelope:
    """What the SMTP dialogue said, apart from the message: MAIL FROM (where bounces go)
    and RCPT TO, and the message's bytes as received."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


def _keep_envelope(handler: _SmtpHandler, envelope: Any) -> None:
    content = envelope.content if isinstance(envelope.content, bytes) else b""
    handler.envelopes.append(
        Envelope(str(envelope.mail_from or ""), tuple(envelope.rcpt_tos), content)
    )


class SmtpPeer:
    """aiosmtpd on 127.0.0.1:port; `start()`/`stop()` to take it up and down."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = _SmtpHandler()
        self.controller: Controller | None = None

    def start(self) -> SmtpPeer:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def accepted(self) -> list[EmailMessage]:
        return self.handler.accepted

    @property
    def attempted(self) -> list[EmailMessage]:
        return self.handler.attempted

    def answer_data(self, *replies: str) -> None:
        self.handler.data_replies.extend(replies)

    def answer_rcpt(self, *replies: str) -> None:
        self.handler.rcpt_replies.extend(replies)

    @property
    def envelopes(self) -> list[Envelope]:
        return self.handler.envelopes

    def reset(self) -> None:
        self.handler.accepted.clear()
        self.handler.attempted.clear()
        self.handler.envelopes.clear()
        self.handler.rcpt_replies.clear()
        self.handler.data_replies.clear()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML bodies of a multipart/alternative message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None, "expected a text part"
    assert html is not None, "expected an HTML part"
    return text.get_content(), html.get_content()


# --- Twilio -------------------------------------------------------------------------------


@dataclass
class TwilioRequest:
    path: str
    authorization: str
    content_type: str
    form: dict[str, str]
    status: int


@dataclass
class TwilioPeer:
    url: str = ""
    requests: list[TwilioRequest] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)  # statuses to answer next, then 201
    plan_by_to: dict[str, list[int]] = field(default_factory=dict)  # the same, per To number
    held: asyncio.Event | None = None  # while set up and not released, requests hang
    # inbound media (issue 20): path -> (bytes, content type), see add_media
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_requests: list[TwilioRequest] = field(default_factory=list)
    # issue 20: the messages accepted with a StatusCallback, by sid (see send_statuses)
    accepted_messages: dict[str, dict[str, str]] = field(default_factory=dict)

    def hold(self) -> None:
        """Stop answering (a hanging provider) until `release()`."""
        self.held = asyncio.Event()

    def release(self) -> None:
        if self.held is not None:
            self.held.set()
            self.held = None

    def reset(self) -> None:
        self.release()
        self.requests.clear()
        self.plan.clear()
        self.plan_by_to.clear()
        self.media.clear()
        self.media_requests.clear()

    @property
    def sent(self) -> list[TwilioRequest]:
        """Requests answered 201 (what Twilio would have sent)."""
        return [r for r in self.requests if r.status == 201]

    def expected_authorization(self) -> str:
        return "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()


def _twilio_app(peer: TwilioPeer) -> Starlette:
    async def create_message(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        planned = peer.plan_by_to.get(form.get("To", "")) or peer.plan
        status = planned.pop(0) if planned else 201
        record = TwilioRequest(
            path=request.url.path,
            authorization=request.headers.get("authorization", ""),
            content_type=request.headers.get("content-type", ""),
            form=form,
            status=status,
        )
        peer.requests.append(record)
        if peer.held is not None:
            await peer.held.wait()
        if status == 201:
            sid = "SM" + secrets.token_hex(16)
            _remember_message(peer, sid, request.path_params["sid"], form)
            return JSONResponse(
                {
                    "sid": sid,
                    "account_sid": request.path_params["sid"],
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "body": form.get("Body"),
                    "status": "queued",
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "uri": f"/2010-04-01/Accounts/{request.path_params['sid']}/Messages/{sid}.json",
                },
                status_code=201,
            )
        if status < 500:
            return JSONResponse(
                {
                    "code": 21211,
                    "message": f"The 'To' number {form.get('To')} is not a valid phone number.",
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                    "status": status,
                },
                status_code=status,
            )
        return JSONResponse({"message": "Service unavailable", "status": status}, status)

    return Starlette(
        routes=[
            Route("/2010-04-01/Accounts/{sid}/Messages.json", create_message, methods=["POST"]),
            _media_route(peer),
        ]
    )


# --- Twilio: inbound messages (issue 20) -----------------------------------------------


def add_media(peer: TwilioPeer, content: bytes, content_type: str) -> str:
    """Serve `content` as the media of an inbound message; returns its MediaUrl."""
    message_sid = "MM" + secrets.token_hex(16)
    path = (
        f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{message_sid}/Media/ME{secrets.token_hex(16)}"
    )
    peer.media[path] = (content, content_type)
    return peer.url + path


def _media_route(peer: TwilioPeer) -> Route:
    """GET a medium as Twilio serves it: with the account's basic auth, else 401."""

    async def get_media(request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        found = peer.media.get(request.url.path)
        status = 401 if authorization != peer.expected_authorization() else 200
        status = 404 if status == 200 and found is None else status
        peer.media_requests.append(TwilioRequest(request.url.path, authorization, "", {}, status))
        if status != 200 or found is None:
            return Response(status_code=status)
        content, content_type = found
        return Response(content, media_type=content_type)

    return Route("/2010-04-01/Accounts/{sid}/Messages/{message}/Media/{media}", get_media)


def inbound_params(
    from_number: str,
    body: str,
    *,
    whatsapp: bool = False,
    media: Sequence[tuple[str, str]] = (),
    message_sid: str | None = None,
) -> list[tuple[str, str]]:
    """The form Twilio POSTs for an incoming SMS or WhatsApp message."""
    prefix = "whatsapp:" if whatsapp else ""
    to = TWILIO_WHATSAPP_FROM if whatsapp else TWILIO_FROM
    sid = message_sid or "SM" + secrets.token_hex(16)
    params = [
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", TWILIO_SID),
        ("From", prefix + from_number),
        ("To", prefix + to),
        ("Body", body),
        ("NumMedia", str(len(media))),
        ("NumSegments", "1"),
        ("ApiVersion", "2010-04-01"),
    ]
    for n, (url, content_type) in enumerate(media):
        params += [(f"MediaUrl{n}", url), (f"MediaContentType{n}", content_type)]
    if whatsapp:
        params += [("ProfileName", "Camille"), ("WaId", from_number.lstrip("+"))]
    return params


async def post_inbound(
    http: httpx.AsyncClient,
    params: list[tuple[str, str]],
    *,
    token: str = TWILIO_TOKEN,
    path: str = "/webhooks/twilio/inbound",
    signature: str | None = None,
) -> httpx.Response:
    """POST an inbound message to our webhook, signed as Twilio signs it: its own
    RequestValidator over the public URL (PUBLIC_API_URL + path) and the form."""
    url = get_settings().public_api_url.rstrip("/") + path
    signed = RequestValidator(token).compute_signature(url, ImmutableMultiDict(params))
    return await http.post(
        path,
        content=urlencode(params),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature if signature is not None else signed,
        },
    )


# --- Twilio status callbacks (issue 20: delivery receipts) --------------------------------


def _remember_message(peer: TwilioPeer, sid: str, account_sid: str, form: dict[str, str]) -> None:
    """Keep what Twilio keeps of an accepted message to call its StatusCallback later."""
    peer.accepted_messages[sid] = {"AccountSid": account_sid, **form}


def status_callback_form(
    peer: TwilioPeer, sid: str, status: str, error_code: str | None = None
) -> list[tuple[str, str]]:
    """The parameters Twilio posts to a message's StatusCallback
    (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status)."""
    message = peer.accepted_messages[sid]
    form = [
        ("AccountSid", message["AccountSid"]),
        ("ApiVersion", "2010-04-01"),
        ("From", message.get("From", "")),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", message.get("To", "")),
    ]
    if message.get("To", "").startswith("whatsapp:"):
        form.append(("ChannelPrefix", "whatsapp"))
    if error_code is not None:
        form.append(("ErrorCode", error_code))
    return form


def twilio_signed(url: str, form: list[tuple[str, str]], token: str = TWILIO_TOKEN) -> str:
    """X-Twilio-Signature as Twilio computes it: the `twilio` package's own validator."""
    from starlette.datastructures import ImmutableMultiDict
    from twilio.request_validator import RequestValidator

    return RequestValidator(token).compute_signature(url, ImmutableMultiDict(form))


async def send_statuses(
    peer: TwilioPeer,
    sid: str,
    *statuses: str | tuple[str, str],
    via: Any = None,
    token: str = TWILIO_TOKEN,
) -> list[int]:
    """POST one status callback per status (`"delivered"`, or `("undelivered", "30005")`
    with its ErrorCode), in the order given, to the StatusCallback the message named,
    signed as Twilio signs them. `via`: an httpx client (the app over ASGI) to post through;
    without it, over the network. The answers' status codes."""
    import httpx

    url = peer.accepted_messages[sid]["StatusCallback"]
    codes = []
    async with contextlib.AsyncExitStack() as stack:
        http = via or await stack.enter_async_context(httpx.AsyncClient())
        for status in statuses:
            name, code = status if isinstance(status, tuple) else (status, None)
            form = status_callback_form(peer, sid, name, code)
            reply = await http.post(
                url,
                content=urlencode(form),
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "x-twilio-signature": twilio_signed(url, form, token),
                    "user-agent": "TwilioProxy/1.1",
                },
            )
            codes.append(reply.status_code)
    return codes


async def serve_twilio(peer: TwilioPeer) -> tuple[uvicorn.Server, asyncio.Task]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            _twilio_app(peer),
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "the Twilio stand-in did not start"
    peer.url = f"http://127.0.0.1:{port}"
    return server, task


# --- settings -----------------------------------------------------------------------------


def peer_settings(
    smtp: SmtpPeer | None = None, twilio: TwilioPeer | None = None, **extra: Any
) -> Settings:
    """The app's settings pointed at the local peers (channels left empty go to the log)."""
    update: dict[str, Any] = {
        "smtp_host": "",
        "twilio_account_sid": "",
        "twilio_auth_token": "",
        "twilio_from_number": "",
        "twilio_whatsapp_from": "",
        "smtp_timeout_seconds": 5.0,
        "twilio_timeout_seconds": 5.0,
    }
    if smtp is not None:
        update |= {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_starttls": False}
    if twilio is not None:
        update |= {
            "twilio_api_base": twilio.url,
            "twilio_account_sid": TWILIO_SID,
            "twilio_auth_token": TWILIO_TOKEN,
            "twilio_from_number": TWILIO_FROM,
            "twilio_whatsapp_from": TWILIO_WHATSAPP_FROM,
        }
    return get_settings().model_copy(update=update | extra)


# --- events and deliveries ----------------------------------------------------------------


async def viewer(account) -> Viewer:
    return await viewer_from_token(account.token)


async def emit(
    entity_type: str,
    entity_id: uuid.UUID,
    event_type: EventType,
    *,
    actor: Viewer | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """Record an event the way services do; it is dispatched when the block ends."""
    async with outbox.collecting(), in_transaction():
        return await events.record(entity_type, entity_id, event_type, actor=actor, payload=payload)


async def notifications_of(event: Event) -> list[Notification]:
    return list(await Notification.filter(event_id=event.id).order_by("created_at", "id"))


async def channels_of(notification: Notification) -> dict[NotificationChannel, str]:
    rows = await NotificationDelivery.filter(notification_id=notification.id)
    return {NotificationChannel(d.channel): d.recipient for d in rows}


FULL_CONTEXT = {
    "name": "Camille",
    "action_url": "http://app.test/dossiers/1",
    "product": "Residence permit",
    "dossier_ref": "PV-2030-000042",
    "reference": "PV-2030-000042",
    "client": "Camille",
    "actor": "Agent Smith",
    "step": "Identity",
    "document": "Passport",
    "reason": "Blurry",
    "amount": 150000,
    "currency": "eur",
    "expires_at": "2030-03-12T10:00:00+00:00",
    "expires_on": "2030-06-30",
    "days_left": 30,
    "purge_on": "2031-01-15",
    "file_count": 3,
    "preview": "Hello",
    "count": 1,
    "code": "12345678",
    "email": "camille@example.com",
    "data_export_id": "",
    "text": "Your appointment is on Tuesday.",  # chat_reply: an agent's answer (issue 20)
}


async def pending_deliveries(
    count: int,
    channel: NotificationChannel,
    *,
    profile_id: uuid.UUID,
    recipient=lambda i: f"+3361{i:07d}",
    template: str = "dossier_completed",
    locale: str = "fr",
) -> list[NotificationDelivery]:
    """`count` notifications with one PENDING delivery each (as the consumer leaves them)."""
    notifications = [
        Notification(
            user_id=profile_id,
            title=f"n{i}",
            message="m",
            template_code=template,
            payload={"locale": locale, "context": {**FULL_CONTEXT, "dossier_ref": f"R{i}"}},
        )
        for i in range(count)
    ]
    await Notification.bulk_create(notifications)
    now = datetime.now(UTC)
    deliveries = [
        NotificationDelivery(
            notification_id=n.id,
            channel=channel,
            recipient=recipient(i),
            status=NotificationStatus.PENDING,
            next_attempt_at=now,
        )
        for i, n in enumerate(notifications)
    ]
    await NotificationDelivery.bulk_create(deliveries)
    return deliveries
