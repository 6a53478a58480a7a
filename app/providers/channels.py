"""Outgoing channels: email over SMTP (aiosmtplib), SMS and WhatsApp over Twilio's Messages
REST API (httpx), and a log channel for the embedded default.

A sender takes an `Outbound` message and returns a `Sent` receipt, or raises
`TransientSendError` (worth retrying: SMTP 4xx, HTTP 5xx/429, timeouts, connection
refused) or `PermanentSendError` (never retried: SMTP 5xx, HTTP 4xx). Which sender serves a
channel comes from the settings: SMTP when `SMTP_HOST` is set, Twilio when its account SID,
token and a sender number are set, the log otherwise.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import MessageError
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, Protocol

import aiosmtplib
import httpx

from app.models.enums import NotificationChannel
from app.settings import Settings

logger = logging.getLogger("app.notifications.outbox")


@dataclass(frozen=True)
class Outbound:
    """One message to one recipient on one channel, already rendered."""

    channel: NotificationChannel
    recipient: str  # an email address or an E.164 phone number
    text: str  # the email's text part, or the SMS/WhatsApp body
    subject: str = ""
    html: str | None = None
    message_id: str | None = None  # the email Message-ID, deterministic per delivery
    locale: str = "fr"
    # what only the recipient may read (a reset code): never written to a log
    secrets: tuple[str, ...] = ()
    # WhatsApp outside its 24-hour window (app.services.phone.policy): the approved Twilio
    # Content template and its variables (JSON), sent instead of the text
    template_code: str = ""  # the notification's template, which the policy maps
    context: dict[str, Any] = field(default_factory=dict)  # what fills the variables
    content_sid: str | None = None
    content_variables: str | None = None
    # Issue 20: the e-mail's envelope sender (MAIL FROM, a VERP address per delivery that
    # its bounces come back to), and the URL Twilio posts the message's receipts to.
    envelope_from: str | None = None
    status_callback: str | None = None


@dataclass(frozen=True)
class Sent:
    provider: str
    message_id: str | None
    response: dict[str, Any] = field(default_factory=dict)


class SendError(Exception):
    def __init__(self, message: str, *, provider: str, response: dict[str, Any] | None = None):
        super().__init__(message)
        self.provider = provider
        self.response = response or {}


class TransientSendError(SendError):
    """Try again later."""


class PermanentSendError(SendError):
    """Retrying would give the same answer."""


class Sender(Protocol):
    name: str

    async def send(self, message: Outbound) -> Sent: ...

    async def aclose(self) -> None: ...


# --- email ------------------------------------------------------------------------------


def message_domain(settings: Settings) -> str:
    """The right-hand side of our Message-IDs: the sender address's domain."""
    address = parseaddr(settings.smtp_from)[1]
    return address.rpartition("@")[2] or "localhost"


def build_email(message: Outbound, settings: Settings) -> EmailMessage:
    email = EmailMessage()
    email["From"] = settings.smtp_from
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = format_datetime(datetime.now(UTC))
    if message.message_id:
        email["Message-ID"] = message.message_id
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
    email["Content-Language"] = message.locale  # after: going multipart moves Content-*
    return email


def buildable_email(message: Outbound, settings: Settings, provider: str) -> EmailMessage:
    """`build_email`, serialised once as it will be sent. A message that cannot be built
    (a header with CR/LF or NUL from old data, an address the e-mail package refuses)
    never will be: `PermanentSendError` with the reason, not a retry."""
    try:
        email = build_email(message, settings)
        email.as_bytes()
    except (ValueError, TypeError, LookupError, MessageError) as exc:
        raise PermanentSendError(
            f"the e-mail cannot be built: {exc}",
            provider=provider,
            response={"error": "unbuildable", "detail": str(exc)[:500]},
        ) from exc
    return email


class SmtpSender:
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: Outbound) -> Sent:
        s = self.settings
        email = buildable_email(message, s, self.name)
        try:
            _errors, reply = await aiosmtplib.send(
                email,
                sender=message.envelope_from,  # None: the From header's address
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password or None,
                start_tls=bool(s.smtp_starttls),
                timeout=s.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            response: dict[str, Any] = {
                "refused": [
                    {"recipient": r.recipient, "code": r.code, "message": r.message}
                    for r in exc.recipients
                ]
            }
            error = TransientSendError if all(400 <= c < 500 for c in codes) else PermanentSendError
            raise error(
                f"recipient refused: {codes}", provider=self.name, response=response
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            response = {"code": exc.code, "message": exc.message}
            error = TransientSendError if 400 <= exc.code < 500 else PermanentSendError
            if exc.code < 400:  # an unexpected positive reply mid-dialogue: try again
                error = TransientSendError
            raise error(
                f"SMTP {exc.code} {exc.message}", provider=self.name, response=response
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:  # connect, timeout, disconnect
            raise TransientSendError(
                f"{type(exc).__name__}: {exc}",
                provider=self.name,
                response={"error": type(exc).__name__},
            ) from exc
        return Sent(self.name, message.message_id, {"reply": reply})

    async def aclose(self) -> None:
        return None


# --- SMS and WhatsApp -------------------------------------------------------------------


def whatsapp(number: str) -> str:
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def twilio_form(message: Outbound, to: str, sender: str) -> dict[str, str]:
    """The Messages resource's form: the text as `Body`, or (WhatsApp outside its window)
    an approved template as `ContentSid` + `ContentVariables`."""
    if message.content_sid:
        return {
            "To": to,
            "From": sender,
            "ContentSid": message.content_sid,
            "ContentVariables": message.content_variables or "{}",
        }
    return {"To": to, "From": sender, "Body": message.text}


class TwilioSender:
    """Twilio's Messages resource: POST form-encoded To/From/Body (or ContentSid and
    ContentVariables) with basic auth."""

    name = "twilio"

    def __init__(self, settings: Settings, channel: NotificationChannel) -> None:
        self.settings = settings
        self.channel = channel
        self._client = httpx.AsyncClient(
            base_url=settings.twilio_api_base.rstrip("/"),
            auth=(settings.twilio_account_sid, settings.twilio_auth_token),
            timeout=settings.twilio_timeout_seconds,
        )

    def _from(self) -> str:
        s = self.settings
        if self.channel == NotificationChannel.WHATSAPP:
            return whatsapp(s.twilio_whatsapp_from or s.twilio_from_number)
        return s.twilio_from_number

    async def send(self, message: Outbound) -> Sent:
        to = message.recipient
        if self.channel == NotificationChannel.WHATSAPP:
            to = whatsapp(to)
        path = f"/2010-04-01/Accounts/{self.settings.twilio_account_sid}/Messages.json"
        data = twilio_form(message, to, self._from())
        if message.status_callback:  # delivery receipts (app.http.twilio_status)
            data["StatusCallback"] = message.status_callback
        try:
            reply = await self._client.post(path, data=data)
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken replies
            raise TransientSendError(
                f"{type(exc).__name__}: {exc}",
                provider=self.name,
                response={"error": type(exc).__name__},
            ) from exc
        try:
            body: dict[str, Any] = reply.json()
        except ValueError:
            body = {"text": reply.text[:1000]}
        response = {"status": reply.status_code, "body": body}
        if reply.is_success:
            return Sent(self.name, body.get("sid"), response)
        detail = f"HTTP {reply.status_code}: {body.get('message') or body.get('text') or ''}"
        # 429 (rate limited) and 5xx are worth another try; any other 4xx is final.
        if reply.status_code >= 500 or reply.status_code in (408, 429):
            raise TransientSendError(detail, provider=self.name, response=response)
        raise PermanentSendError(detail, provider=self.name, response=response)

    async def aclose(self) -> None:
        await self._client.aclose()


# --- the log (embedded default) ---------------------------------------------------------


# A link's query string is where its credential lives (register?token=…,
# reset-password?token=…, signed downloads' expires=…&signature=…).
_QUERY_STRING = re.compile(r"""(https?://[^\s?#"'<>]+)\?[^\s"'<>]+""")
REDACTED = "[redacted]"


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` without the query strings of its links and without `secrets`."""
    text = _QUERY_STRING.sub(rf"\1?{REDACTED}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class LogSender:
    """Writes the message to the log instead of sending it (SMTP/Twilio not configured).

    In development the log is the mailbox, links and codes included (`reveal`); anywhere
    else (production allows it only with ALLOW_LOGGED_EMAIL / ALLOW_LOGGED_TEXTS) the
    links' query strings and the message's secrets are redacted: logs are read by more
    people, and kept longer, than a mailbox."""

    name = "log"

    def __init__(self, *, reveal: bool = False) -> None:
        self.reveal = reveal

    async def send(self, message: Outbound) -> Sent:
        text = message.text if self.reveal else redact(message.text, message.secrets)
        if message.channel == NotificationChannel.EMAIL:
            logger.info(
                "EMAIL to %s [%s] %s\nSubject: %s\n\n%s",
                message.recipient,
                message.locale,
                message.message_id,
                message.subject,
                text,
            )
        else:
            logger.info(
                "%s to %s [%s]: %s",
                message.channel.value,
                message.recipient,
                message.locale,
                text,
            )
        return Sent(self.name, message.message_id, {"logged": True})

    async def aclose(self) -> None:
        return None


class Senders:
    """The sender of each channel for one worker pass; close it when done."""

    def __init__(self, settings: Settings) -> None:
        log = LogSender(reveal=settings.env == "development")
        self.by_channel: dict[NotificationChannel, Sender] = {
            NotificationChannel.EMAIL: SmtpSender(settings) if settings.smtp_host else log,
            NotificationChannel.SMS: log,
            NotificationChannel.WHATSAPP: log,
        }
        if settings.twilio_configured:
            for channel in (NotificationChannel.SMS, NotificationChannel.WHATSAPP):
                self.by_channel[channel] = TwilioSender(settings, channel)

    def for_channel(self, channel: NotificationChannel) -> Sender:
        return self.by_channel[channel]

    async def aclose(self) -> None:
        for sender in set(self.by_channel.values()):
            await sender.aclose()
