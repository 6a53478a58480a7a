"""Delivery receipts: Twilio's status callbacks moving SMS and WhatsApp deliveries on.

Each message the worker sends names `PUBLIC_API_URL/webhooks/twilio/status?delivery=<id>`
as its `StatusCallback` (app.services.delivery.outbound); Twilio posts there, signed, each
time the message's status changes (app.http.twilio_status). A receipt finds its delivery
by the id in the URL, cross-checked against the `MessageSid` stored when it was sent (a
receipt of an earlier attempt's message, another sid, is ignored), or, without an id, by
the `MessageSid` alone (idx_deliveries_provider_message_id).

Twilio's MessageStatus -> our states, ranked; a delivery only moves up the ranks:

    PENDING 0 < SENT 1 (accepted, scheduled, queued, sending, sent)
              < FAILED, UNDELIVERED 2 < DELIVERED 3 < READ 4

- idempotent: the same callback twice changes nothing (the state is already there, its
  time already set);
- order-tolerant: a late "sent" never overwrites "delivered" or "read"; "delivered" after
  "read" keeps READ and only records when it was delivered;
- a failure after "delivered"/"read" is ignored: the carrier (WhatsApp) told us the handset
  has it, which a late or contradictory failure cannot undo; "delivered" after a failure
  wins (it did arrive), the failure's error code kept for the record. A failover already
  made for that failure is not taken back: the client may get the notice twice, never
  zero times.
- the time of each state is recorded once (`sent_at`, `delivered_at`, `read_at`,
  `failed_at`), when we were told, even when the state itself does not move (a "delivered"
  arriving after "read");
- FAILED / UNDELIVERED with a permanent error code (app.services.failover) tries the
  client's next channel once, in the same transaction.

A receipt may arrive before the worker recorded the send (Twilio can be that fast): the
delivery is still PENDING, the receipt moves it on and stores the sid; the worker's own
record then only fills in what the send returned (app.services.delivery).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from app.models import NotificationDelivery
from app.models.enums import NotificationChannel, NotificationStatus
from app.services import failover

logger = logging.getLogger("app.delivery.receipts")

S = NotificationStatus
TWILIO_STATES: dict[str, NotificationStatus] = {
    "accepted": S.SENT,
    "scheduled": S.SENT,
    "queued": S.SENT,
    "sending": S.SENT,
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.READ,
    "failed": S.FAILED,
    "undelivered": S.UNDELIVERED,
}
RANK: dict[NotificationStatus, int] = {
    S.PENDING: 0,
    S.SENT: 1,
    S.FAILED: 2,
    S.UNDELIVERED: 2,
    S.DELIVERED: 3,
    S.READ: 4,
}
FAILURES = frozenset({S.FAILED, S.UNDELIVERED})
# When each state was told (the first time).
TIME_OF = {S.SENT: "sent_at", S.DELIVERED: "delivered_at", S.READ: "read_at"}


class Outcome(StrEnum):
    APPLIED = "applied"  # something changed
    UNCHANGED = "unchanged"  # already known (a repeat), or outranked (a late "sent")
    UNKNOWN = "unknown"  # no such delivery (or not ours: another sid)
    IGNORED = "ignored"  # a status we do not track


@dataclass(frozen=True)
class Receipt:
    message_sid: str
    status: str  # Twilio's MessageStatus
    error_code: str | None = None  # Twilio's ErrorCode
    delivery_id: uuid.UUID | None = None  # from the StatusCallback URL

    @classmethod
    def from_form(cls, form: dict[str, list[str]], delivery: str | None) -> Receipt:
        def one(name: str) -> str:
            return (form.get(name) or [""])[0].strip()

        try:
            delivery_id = uuid.UUID(delivery) if delivery else None
        except ValueError:
            delivery_id = None
        code = one("ErrorCode")
        return cls(
            message_sid=one("MessageSid") or one("SmsSid"),
            status=(one("MessageStatus") or one("SmsStatus")).lower(),
            error_code=code if code and code != "0" else None,
            delivery_id=delivery_id,
        )


async def apply_receipt(receipt: Receipt, *, now: datetime | None = None) -> Outcome:
    """Record one status callback (in one transaction, the delivery locked)."""
    state = TWILIO_STATES.get(receipt.status)
    if state is None or not receipt.message_sid:
        return Outcome.IGNORED
    now = now or datetime.now(UTC)
    async with in_transaction():
        row = await _find(receipt)
        if row is None:
            return Outcome.UNKNOWN
        current = NotificationStatus(row.status)
        changes: dict[str, Any] = {}
        if not row.provider_message_id:
            changes |= {"provider_message_id": receipt.message_sid, "provider": "twilio"}
        moves = RANK[state] > RANK[current]
        # each state's time, once (a late "sent" adds nothing a receipt must keep)
        first_time = state in TIME_OF and getattr(row, TIME_OF[state]) is None
        if first_time and (moves or state != S.SENT):
            changes[TIME_OF[state]] = now
        if moves:
            changes |= {"status": state, "provider_status": receipt.status}
            if state in FAILURES:
                changes |= {
                    "failed_at": row.failed_at or now,
                    "error_code": receipt.error_code,
                    "last_error": f"Twilio: {receipt.status}"
                    + (f" (error {receipt.error_code})" if receipt.error_code else ""),
                }
        if not changes:
            return Outcome.UNCHANGED
        await NotificationDelivery.filter(id=row.id).update(**changes)
        if moves and state in FAILURES and failover.is_permanent(receipt.error_code):
            code = str(receipt.error_code)
            await failover.fail_over(
                row,
                f"{row.channel} {receipt.status}: Twilio error {code}",
                now=now,
                bad_number=code in failover.BAD_NUMBER_CODES,
            )
    logger.info(
        "delivery %s: receipt %s (%s) -> %s",
        row.id,
        receipt.status,
        receipt.error_code or "-",
        state if moves else current,
    )
    return Outcome.APPLIED


async def _find(receipt: Receipt) -> NotificationDelivery | None:
    phone = (NotificationChannel.SMS, NotificationChannel.WHATSAPP)
    if receipt.delivery_id is not None:
        row = (
            await NotificationDelivery.filter(id=receipt.delivery_id, channel__in=phone)
            .select_for_update()
            .first()
        )
        if row is not None and row.provider_message_id not in (None, receipt.message_sid):
            logger.warning(
                "delivery %s: receipt for %s, but it was sent as %s: ignored",
                row.id,
                receipt.message_sid,
                row.provider_message_id,
            )
            return None
        return row
    return (
        await NotificationDelivery.filter(
            provider_message_id=receipt.message_sid, channel__in=phone
        )
        .select_for_update()
        .first()
    )
