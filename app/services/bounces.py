"""E-mail bounces: a VERP envelope sender per delivery, and the DSNs that come back to it.

Every e-mail goes out with the envelope sender (MAIL FROM, which the receiving side keeps
as Return-Path and sends its bounces to) `<local>+<token>@<domain>`, from
EMAIL_BOUNCE_ADDRESS `<local>@<domain>`. The token is the delivery id and an HMAC of it
(app.services.signed_links.mac, purpose "email-bounce"): only we can make one, so nobody can
fail someone else's deliveries by sending a bounce naming them; a DSN whose recipient
carries no valid token is ignored.

A delivery status notification (RFC 3464: `multipart/report; report-type=delivery-status`,
its `message/delivery-status` part one block per recipient with `Action` and `Status`) is
read with the standard library's `email` package:
- `Action: failed`, `Status: 5.x.x` (a hard bounce): the delivery goes FAILED with the
  status code (`error_code`) and the diagnostic (`last_error`); the address is flagged on
  the profile (`email_bounced_address`, `email_bounced_at`, `email_bounce_reason`), so
  e-mail is not used again while the login address is that one; the client's next channel
  (SMS) is tried once (app.services.failover);
- `Action: failed`, `Status: 4.x.x` (the sending MTA gave up on a temporary failure): the
  delivery goes FAILED and fails over the same way (the message did not arrive), but the
  address is not flagged;
- `Action: delayed` (a soft bounce, still being retried): recorded on the delivery
  (`provider_status` "delayed", `error_code`, `last_error`), its state unchanged;
- anything else (delivered, relayed, expanded) is no bounce: ignored.
The same DSN twice changes nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses
from enum import StrEnum

from tortoise.transactions import in_transaction

from app.models import Notification, NotificationDelivery, Profile
from app.models.enums import NotificationChannel, NotificationStatus
from app.services import failover
from app.services.signed_links import mac
from app.settings import Settings, get_settings

logger = logging.getLogger("app.delivery.bounces")

PURPOSE = "email-bounce"
TOKEN_MAC_CHARS = 20  # 80 bits of HMAC: the local part stays under 64 characters
_TOKEN = re.compile(
    rf"[^@\s<>+]+\+([0-9a-f]{{32}})-([0-9a-f]{{{TOKEN_MAC_CHARS}}})@[^@\s<>]+", re.IGNORECASE
)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
MAX_REASON = 1000


# --- the address ------------------------------------------------------------------------


def _token_mac(delivery_id: uuid.UUID) -> str:
    return mac(PURPOSE, delivery_id.hex)[:TOKEN_MAC_CHARS]


def bounce_address(delivery_id: uuid.UUID, settings: Settings | None = None) -> str | None:
    """The envelope sender of one delivery's e-mail, or None (EMAIL_BOUNCE_ADDRESS unset)."""
    base = (settings or get_settings()).email_bounce_address.strip()
    local, at, domain = base.rpartition("@")
    if not at or not local or not domain:
        return None
    return f"{local}+{delivery_id.hex}-{_token_mac(delivery_id)}@{domain}"


def delivery_of(address: str) -> uuid.UUID | None:
    """The delivery a bounce address names, if its token is ours."""
    found = _TOKEN.fullmatch(address.strip().strip("<>"))
    if found is None:
        return None
    delivery_id = uuid.UUID(found.group(1).lower())
    if not hmac.compare_digest(_token_mac(delivery_id), found.group(2).lower()):
        return None
    return delivery_id


# --- the report ---------------------------------------------------------------------------


class NotADsn(ValueError):
    """Not a delivery status notification (RFC 3464)."""


@dataclass(frozen=True)
class RecipientStatus:
    recipient: str | None  # Final-Recipient's address
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # "5.1.1"
    diagnostic: str | None

    @property
    def hard(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")

    @property
    def reason(self) -> str:
        text = f"{self.status} {self.diagnostic or ''}".strip()
        return text[:MAX_REASON]


@dataclass(frozen=True)
class Report:
    addressed_to: list[str]  # where the DSN was sent (its To, Delivered-To, ... headers)
    recipients: list[RecipientStatus]

    @property
    def bounce(self) -> RecipientStatus | None:
        """What the report says of our message: a failure first, else a delay."""
        for action in ("failed", "delayed"):
            for recipient in self.recipients:
                if recipient.action == action:
                    return recipient
        return None


ADDRESS_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


def parse_report(raw: bytes) -> Report:
    message = message_from_bytes(raw, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        raise NotADsn("not a multipart/report")
    if str(message.get_param("report-type") or "").lower() != "delivery-status":
        raise NotADsn("not a delivery-status report")
    addressed = [a for _n, a in getaddresses(_all(message, ADDRESS_HEADERS)) if a]
    recipients: list[RecipientStatus] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block is about the message, the rest recipients
            if not isinstance(block, Message):
                continue
            status = _STATUS.search(str(block.get("Status", "")))
            if status is None:
                continue
            recipients.append(
                RecipientStatus(
                    recipient=_typed_address(block.get("Final-Recipient")),
                    action=str(block.get("Action", "")).strip().lower(),
                    status=status.group(0),
                    diagnostic=_clean(block.get("Diagnostic-Code")),
                )
            )
    if not recipients:
        raise NotADsn("no recipient with a status")
    return Report(addressed_to=addressed, recipients=recipients)


def _all(message: Message, names: tuple[str, ...]) -> list[str]:
    return [str(v) for name in names for v in (message.get_all(name) or [])]


def _typed_address(value: object) -> str | None:
    """`rfc822; camille@example.com` -> the address."""
    if not value:
        return None
    _kind, _, address = str(value).partition(";")
    return (address or str(value)).strip() or None


def _clean(value: object) -> str | None:
    if not value:
        return None
    return " ".join(str(value).split())[:MAX_REASON]


# --- applying it --------------------------------------------------------------------------


class Outcome(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"  # the same bounce again
    UNKNOWN = "unknown"  # no valid token, or no such e-mail delivery
    IGNORED = "ignored"  # not a bounce (delivered, relayed)


def delivery_named(report: Report, envelope_to: Sequence[str] = ()) -> uuid.UUID | None:
    """The delivery whose VERP address the DSN came to (the envelope first)."""
    for address in (*envelope_to, *report.addressed_to):
        found = delivery_of(address)
        if found is not None:
            return found
    return None


def envelope_recipients(envelope: str | None) -> list[str]:
    """SendGrid's `envelope` field: {"to": [...], "from": "..."}."""
    if not envelope:
        return []
    try:
        value = json.loads(envelope)
    except ValueError:
        return []
    to = value.get("to") if isinstance(value, dict) else None
    return [str(a) for a in to] if isinstance(to, list) else []


async def apply_report(
    report: Report, *, envelope_to: Sequence[str] = (), now: datetime | None = None
) -> Outcome:
    delivery_id = delivery_named(report, envelope_to)
    if delivery_id is None:
        return Outcome.UNKNOWN
    bounce = report.bounce
    if bounce is None:
        return Outcome.IGNORED
    now = now or datetime.now(UTC)
    async with in_transaction():
        row = (
            await NotificationDelivery.filter(id=delivery_id, channel=NotificationChannel.EMAIL)
            .select_for_update()
            .first()
        )
        if row is None:
            return Outcome.UNKNOWN
        if bounce.action == "delayed":
            return await _delayed(row, bounce)
        if row.status == NotificationStatus.FAILED and row.error_code == bounce.status:
            return Outcome.UNCHANGED
        await NotificationDelivery.filter(id=row.id).update(
            status=NotificationStatus.FAILED,
            provider_status="bounced",
            error_code=bounce.status,
            last_error=f"bounced: {bounce.reason}",
            failed_at=row.failed_at or now,
            claimed_until=None,
        )
        if bounce.hard:
            await _flag(row, bounce, now)
        if row.status != NotificationStatus.FAILED:  # the first failure of this e-mail
            await failover.fail_over(row, f"e-mail bounced: {bounce.reason}", now=now)
    logger.info("delivery %s: bounced %s (%s)", row.id, bounce.status, bounce.action)
    return Outcome.APPLIED


async def _delayed(row: NotificationDelivery, bounce: RecipientStatus) -> Outcome:
    reason = f"delayed: {bounce.reason}"
    if row.provider_status == "delayed" and row.last_error == reason:
        return Outcome.UNCHANGED
    if row.status == NotificationStatus.FAILED:
        return Outcome.UNCHANGED  # a delay reported after the failure adds nothing
    await NotificationDelivery.filter(id=row.id).update(
        provider_status="delayed", error_code=bounce.status, last_error=reason
    )
    return Outcome.APPLIED


async def _flag(row: NotificationDelivery, bounce: RecipientStatus, now: datetime) -> None:
    """A hard bounce: the address is not used again (until the client's address changes)."""
    user_id = await Notification.filter(id=row.notification_id).values_list("user_id", flat=True)
    if not user_id or user_id[0] is None:
        return
    await Profile.filter(id=user_id[0]).update(
        email_bounced_address=row.recipient.strip().lower(),
        email_bounced_at=now,
        email_bounce_reason=bounce.reason,
    )
