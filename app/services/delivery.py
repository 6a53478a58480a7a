"""The delivery worker: send what notifications owe on EMAIL, SMS and WHATSAPP.

A pass (`deliver_due`) claims due PENDING deliveries with `FOR UPDATE SKIP LOCKED` and, in
the same short transaction, leases them: `claimed_until` (and `next_attempt_at`) move to
now + `delivery_claim_seconds` and `attempts` grows by one. The sends happen outside any
transaction. Each result is recorded only if the row is still ours (`attempts` unchanged):
- sent -> SENT with provider, provider message id, provider response, `sent_at`;
- transient failure (SMTP 4xx, HTTP 5xx/429, timeouts, refused connections) -> back to
  PENDING with `next_attempt_at` = now + exponential backoff with jitter, until
  `delivery_max_attempts`, then FAILED;
- permanent failure (SMTP 5xx, HTTP 4xx, a template that cannot render, an e-mail that
  cannot be built, e.g. a subject with CR/LF from old data) -> FAILED at once, its reason
  in `last_error`;
- not allowed on its phone channel (app.services.phone.policy: no WhatsApp opt-in, a
  channel opted out, no WhatsApp template outside the 24-hour window) -> FAILED with the
  reason, nothing sent, and an SMS delivery queued instead when SMS may be used.
  in `last_error`, Twilio's error code in `error_code`; a code that says the address will
  never work (an invalid number, not on WhatsApp) tries the client's next channel once, in
  the same transaction (app.services.failover).

Issue 20: each e-mail's envelope sender is its delivery's VERP bounce address
(app.services.bounces) and each SMS/WhatsApp message names its status callback URL
(app.services.receipts): what happens after the send moves the delivery on from SENT.

A worker killed mid-pass leaves leased rows that become due again when the lease ends, so
nothing is lost (a message may then go twice, which the deterministic e-mail Message-ID
`<delivery-id@domain>` lets mail systems collapse). A pass that is cancelled (graceful
shutdown) hands its unsent rows back at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app import metrics
from app.models import Notification, NotificationDelivery
from app.models.enums import NotificationChannel, NotificationStatus
from app.providers.channels import (
    Outbound,
    PermanentSendError,
    Senders,
    Sent,
    TransientSendError,
    message_domain,
)
from app.services import account_links, bounces, failover
from app.services.notifications.rendering import normal_locale, render
from app.services.payments.links import link_url
from app.services.phone import policy
from app.services.privacy.links import export_url
from app.settings import Settings, get_settings

logger = logging.getLogger("app.delivery")


@dataclass
class PassReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0  # not allowed on their phone channel (app.services.phone.policy)
    lost: int = 0  # results not recorded: the lease had expired and someone else took over


def email_message_id(delivery_id: uuid.UUID, settings: Settings) -> str:
    """The same Message-ID for every attempt of one delivery."""
    return f"<{delivery_id}@{message_domain(settings)}>"


def backoff(attempt: int, settings: Settings, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `attempt` (1-based): exponential, capped, half jittered."""
    delay = min(
        settings.delivery_backoff_max_seconds,
        settings.delivery_backoff_seconds * (2 ** max(attempt - 1, 0)),
    )
    return delay / 2 + rng() * delay / 2


def outbound(
    delivery: NotificationDelivery, notification: Notification, settings: Settings
) -> Outbound:
    payload = notification.payload or {}
    locale = normal_locale(payload.get("locale"))
    context = dict(payload.get("context") or {})
    channel = NotificationChannel(delivery.channel)
    url = (payload.get("channelUrls") or {}).get(channel.value)
    if url:
        context["action_url"] = url
    secrets: tuple[str, ...] = ()
    if context.get("account_token_id") and context.get("purpose"):
        # a reset or invitation: its link and code, derived now, exist only in the e-mail
        context["action_url"], context["code"] = account_links.secrets_for(
            str(context["account_token_id"]), str(context["purpose"])
        )
        secrets = (context["action_url"], context["code"])
    elif context.get("payment_link_id"):
        # a payment link: derived now, it exists only in the message
        context["action_url"] = link_url(
            str(context["payment_link_id"]), bool(context.get("existing_client"))
        )
        secrets = (context["action_url"],)
    elif context.get("data_export_id") and context.get("expires_at"):
        # a data-export archive: its signed link, derived now, exists only in the e-mail
        context["action_url"] = export_url(
            str(context["data_export_id"]), datetime.fromisoformat(str(context["expires_at"]))
        )
        secrets = (context["action_url"],)
    rendered = render(notification.template_code, locale, context)
    if channel == NotificationChannel.EMAIL:
        return Outbound(
            envelope_from=bounces.bounce_address(delivery.id, settings),
            channel=channel,
            recipient=delivery.recipient,
            subject=email_subject(rendered.title, context),
            text=rendered.text,
            html=rendered.html,
            message_id=email_message_id(delivery.id, settings),
            locale=locale,
            secrets=secrets,
        )
    return Outbound(
        channel=channel,
        recipient=delivery.recipient,
        text=rendered.sms,
        locale=locale,
        secrets=secrets,
        template_code=notification.template_code,
        context=context,
        status_callback=status_callback(delivery.id, settings),
    )


def status_callback(delivery_id: uuid.UUID, settings: Settings) -> str | None:
    """Where Twilio posts this message's receipts (app.http.twilio_status): the signature
    Twilio sends covers this very URL."""
    if not settings.twilio_status_callbacks:
        return None
    base = settings.public_api_url.rstrip("/")
    return f"{base}/webhooks/twilio/status?delivery={delivery_id}"


def email_subject(title: str, context: dict[str, Any]) -> str:
    """The title, with the dossier's case number when the e-mail is about a dossier (an
    agent or a client finds the thread by it)."""
    reference = str(context.get("reference") or "")
    if not reference or reference in title:
        return title
    return f"{title} [{reference}]"


async def claim(now: datetime, limit: int, settings: Settings) -> list[NotificationDelivery]:
    """Lease up to `limit` due deliveries; other workers skip them (SKIP LOCKED) and, once
    committed, no longer see them as due until the lease ends."""
    lease_end = now + timedelta(seconds=settings.delivery_claim_seconds)
    async with in_transaction():
        rows = list(
            await NotificationDelivery.filter(
                status=NotificationStatus.PENDING, next_attempt_at__lte=now
            )
            .order_by("next_attempt_at", "id")
            .limit(limit)
            .select_for_update(skip_locked=True)
        )
        if not rows:
            return []
        await NotificationDelivery.filter(id__in=[r.id for r in rows]).update(
            claimed_until=lease_end, next_attempt_at=lease_end, attempts=F("attempts") + 1
        )
    for row in rows:
        row.attempts += 1
        row.claimed_until = lease_end
    return rows


async def _record(delivery: NotificationDelivery, **changes: Any) -> bool:
    """Write a result if the row is still ours (same attempt, still pending)."""
    updated = await NotificationDelivery.filter(
        id=delivery.id, status=NotificationStatus.PENDING, attempts=delivery.attempts
    ).update(claimed_until=None, **changes)
    if not updated:
        logger.warning("delivery %s: lease lost before its result was recorded", delivery.id)
    return bool(updated)


async def _record_after_receipt(delivery: NotificationDelivery, sent: Sent) -> bool:
    """A receipt came before the send's own result (app.services.receipts) and moved the
    delivery on: keep its state, fill in what the send returned."""
    if not sent.message_id:
        return False
    updated = await NotificationDelivery.filter(
        id=delivery.id,
        attempts=delivery.attempts,
        provider_message_id=sent.message_id,
        status__not=NotificationStatus.PENDING,
    ).update(claimed_until=None, provider=sent.provider, provider_response=sent.response)
    return bool(updated)


async def _record_failure(
    delivery: NotificationDelivery, now: datetime, settings: Settings, **changes: Any
) -> bool:
    """FAILED for good, and, when the provider's code says the address will never work,
    the client's next channel tried once: both in one transaction."""
    code = changes.get("error_code")
    async with in_transaction():
        if not await _record(delivery, **changes):
            return False
        if failover.is_permanent(code):
            await failover.fail_over(
                delivery,
                f"{delivery.channel} refused: Twilio error {code}",
                now=now,
                bad_number=str(code) in failover.BAD_NUMBER_CODES,
                settings=settings,
            )
    return True


def error_code(response: dict[str, Any] | None) -> str | None:
    """Twilio's error code in a refused request's answer (`{"code": 21211, ...}`)."""
    body = (response or {}).get("body")
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if code not in (None, "") else None


async def _release(deliveries: list[NotificationDelivery], now: datetime) -> None:
    """Hand unsent claims back (graceful shutdown): due again now, attempt not counted."""
    for delivery in deliveries:
        await NotificationDelivery.filter(
            id=delivery.id, status=NotificationStatus.PENDING, attempts=delivery.attempts
        ).update(claimed_until=None, next_attempt_at=now, attempts=F("attempts") - 1)


async def deliver_due(
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
    limit: int | None = None,
    rng: Callable[[], float] = random.random,
) -> PassReport:
    """One pass: claim due deliveries, send them, record each result.

    `now` fixes the clock (tests); by default the real time is read at each step.
    """
    settings = settings or get_settings()

    def clock() -> datetime:
        return now or datetime.now(UTC)

    report = PassReport()
    claimed = await claim(clock(), limit or settings.delivery_batch_size, settings)
    report.claimed = len(claimed)
    if not claimed:
        return report
    by_id = {
        n.id: n
        for n in await Notification.filter(id__in=list({d.notification_id for d in claimed}))
    }
    consents = await policy.load(
        n
        for d in claimed
        if d.channel in (NotificationChannel.SMS, NotificationChannel.WHATSAPP)
        and (n := by_id.get(d.notification_id)) is not None
    )
    senders = Senders(settings)
    gate = asyncio.Semaphore(max(1, settings.delivery_concurrency))
    pending = {d.id: d for d in claimed}

    async def one(delivery: NotificationDelivery) -> None:
        async with gate:
            outcome = await _send_one(delivery, by_id, senders, settings, consents, clock())
            await _apply(delivery, outcome, report, settings, clock(), rng)
            pending.pop(delivery.id, None)

    try:
        results = await asyncio.gather(*(one(d) for d in claimed), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):  # e.g. the database went away mid-pass
                logger.error("delivery result not recorded", exc_info=result)
    except asyncio.CancelledError:
        await asyncio.shield(_release(list(pending.values()), clock()))
        raise
    finally:
        await senders.aclose()
    return report


@dataclass
class _Outcome:
    sent: Sent | None = None
    error: Exception | None = None
    permanent: bool = False
    skip: policy.Skip | None = None


async def _send_one(
    delivery: NotificationDelivery,
    by_id: dict[uuid.UUID, Notification],
    senders: Senders,
    settings: Settings,
    consents: policy.Consents,
    now: datetime,
) -> _Outcome:
    notification = by_id.get(delivery.notification_id)
    try:
        if notification is None:
            raise PermanentSendError("notification is gone", provider="none")
        message = outbound(delivery, notification, settings)
        allowed = policy.decide(message, policy.profile_of(notification), consents, settings, now)
        if isinstance(allowed, policy.Skip):
            return _Outcome(skip=allowed)
        message = allowed
    except PermanentSendError as exc:
        return _Outcome(error=exc, permanent=True)
    except Exception as exc:  # a template that cannot render will not render next time
        logger.exception("delivery %s: cannot render", delivery.id)
        return _Outcome(error=exc, permanent=True)
    sender = senders.for_channel(NotificationChannel(delivery.channel))
    try:
        return _Outcome(sent=await sender.send(message))
    except PermanentSendError as exc:
        return _Outcome(error=exc, permanent=True)
    except TransientSendError as exc:
        return _Outcome(error=exc)
    except Exception as exc:  # unknown trouble: retry, bounded by the attempt limit
        logger.exception("delivery %s: unexpected send failure", delivery.id)
        return _Outcome(error=exc)


async def _apply(
    delivery: NotificationDelivery,
    outcome: _Outcome,
    report: PassReport,
    settings: Settings,
    now: datetime,
    rng: Callable[[], float],
) -> None:
    if outcome.skip is not None:
        await _skipped(delivery, outcome.skip, report, now)
        return
    if outcome.sent is not None:
        ok = await _record(
            delivery,
            status=NotificationStatus.SENT,
            provider=outcome.sent.provider,
            provider_message_id=outcome.sent.message_id,
            provider_response=outcome.sent.response,
            sent_at=now,
            last_error=None,
        )
        ok = ok or await _record_after_receipt(delivery, outcome.sent)
        report.sent += ok
        report.lost += not ok
        metrics.DELIVERIES_SENT.labels(delivery.channel).inc()
        return
    error = outcome.error
    metrics.DELIVERY_FAILURES.labels(
        delivery.channel, "permanent" if outcome.permanent else "transient"
    ).inc()
    provider = getattr(error, "provider", None)
    response = getattr(error, "response", None) or {"error": type(error).__name__}
    message = str(error)[:2000]
    if outcome.permanent or delivery.attempts >= settings.delivery_max_attempts:
        ok = await _record_failure(
            delivery,
            now,
            settings,
            status=NotificationStatus.FAILED,
            provider=provider,
            provider_response=response,
            failed_at=now,
            last_error=message,
            error_code=error_code(response) if outcome.permanent else None,
        )
        logger.warning(
            "delivery %s (%s to %s) failed after %d attempt(s): %s",
            delivery.id,
            delivery.channel,
            delivery.recipient,
            delivery.attempts,
            message,
        )
        report.failed += ok
    else:
        retry_at = now + timedelta(seconds=backoff(delivery.attempts, settings, rng))
        ok = await _record(
            delivery,
            provider=provider,
            provider_response=response,
            next_attempt_at=retry_at,
            last_error=message,
        )
        logger.info(
            "delivery %s (%s) attempt %d failed, retry at %s: %s",
            delivery.id,
            delivery.channel,
            delivery.attempts,
            retry_at.isoformat(),
            message,
        )
        report.retrying += ok
    report.lost += not ok


async def _skipped(
    delivery: NotificationDelivery, skip: policy.Skip, report: PassReport, now: datetime
) -> None:
    """Not allowed on its channel: FAILED with the reason, and the fallback queued."""
    response = {"skipped": skip.code, "fallback": skip.fallback.value if skip.fallback else None}
    reason = skip.reason + (f"; sent by {skip.fallback.value} instead" if skip.fallback else "")
    ok = await _record(
        delivery,
        status=NotificationStatus.FAILED,
        provider="policy",
        provider_response=response,
        failed_at=now,
        last_error=reason,
    )
    report.skipped += ok
    report.lost += not ok
    if ok:
        logger.info("delivery %s (%s) not sent: %s", delivery.id, delivery.channel, reason)
        if skip.fallback is not None:  # the client's next channel, as for a failed send
            await failover.fail_over(delivery, reason, now=now)


MAX_PASSES_PER_RUN = 20  # then the job loop gets a chance to notice a shutdown


async def run(settings: Settings | None = None) -> int:
    """The worker job: passes until the due backlog is drained (or MAX_PASSES_PER_RUN);
    returns how many were sent."""
    settings = settings or get_settings()
    sent = 0
    for _ in range(MAX_PASSES_PER_RUN):
        report = await deliver_due(settings=settings)
        sent += report.sent
        if report.claimed < settings.delivery_batch_size:
            break
    return sent
