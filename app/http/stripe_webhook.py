"""`POST /webhooks/stripe`: raw body → verify → dedupe → dispatch table → services.

Each Stripe event id is recorded in `stripe_events` in the same transaction as its
effects, so an event is handled at most once however often (and however concurrently)
Stripe delivers it. Stripe delivers in no particular order: an event that comes before
the state it applies to (a refund before its payment's completion) is kept in the same
transaction and applied when that state arrives (app.services.payments.deferred).
Unknown types are acknowledged and ignored. A database outage answers 503 so Stripe
retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import orjson
import stripe
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import JSONResponse
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.models import StripeEvent
from app.services import outbox
from app.services.payments.errors import UnmatchedEvent
from app.services.payments.failures import payment_failed
from app.services.payments.fulfilment import fulfil
from app.services.payments.refunds import charge_refunded

logger = logging.getLogger("app.http.stripe_webhook")


class Outcome(StrEnum):
    PROCESSED = "processed"
    DEFERRED = "deferred"  # kept until the state it applies to arrives (services.payments.deferred)
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    UNMATCHED = "unmatched"


# A handler gets the event's object and the event; it answers DEFERRED when it kept the
# event for later, else None (processed).
Handler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[Outcome | None]]


async def _session_completed(session: dict[str, Any], _event: dict[str, Any]) -> None:
    # Delayed methods (bank transfers, SEPA) complete unpaid, and are fulfilled on
    # `checkout.session.async_payment_succeeded`.
    if session.get("payment_status") in ("paid", "no_payment_required"):
        await fulfil(session)


async def _async_payment_succeeded(session: dict[str, Any], _event: dict[str, Any]) -> None:
    await fulfil(session)


async def _session_failed(session: dict[str, Any], _event: dict[str, Any]) -> None:
    metadata = session.get("metadata") or {}
    order_id = metadata.get("order_id") or session.get("client_reference_id")
    await payment_failed(
        order_id, reason=session.get("status") or "failed", session_id=session.get("id")
    )


async def _intent_failed(intent: dict[str, Any], _event: dict[str, Any]) -> None:
    order_id = (intent.get("metadata") or {}).get("order_id")
    error = (intent.get("last_payment_error") or {}).get("code") or "payment_failed"
    await payment_failed(order_id, reason=error)


async def _charge_refunded(charge: dict[str, Any], event: dict[str, Any]) -> Outcome | None:
    # Partial or full: the charge's cumulative `amount_refunded` is what counts.
    return None if await charge_refunded(charge, event=event) else Outcome.DEFERRED


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": _async_payment_succeeded,
    "checkout.session.expired": _session_failed,
    "checkout.session.async_payment_failed": _session_failed,
    "payment_intent.payment_failed": _intent_failed,
    "charge.refunded": _charge_refunded,
}


class _Duplicate(Exception):
    pass


async def handle_event(
    event: dict[str, Any],
    *,
    defer: Callable[[Callable[[], Awaitable[None]]], None] | None = None,
) -> Outcome:
    """Apply one (already verified) Stripe event at most once. Also used by the dummy
    provider's checkout page, so local payments take exactly this path. `defer`: run the
    outbox dispatch later (after the answer is sent) instead of before returning."""
    event_id, event_type = str(event["id"]), str(event["type"])
    if await StripeEvent.filter(stripe_event_id=event_id).exists():
        return Outcome.DUPLICATE
    handler = HANDLERS.get(event_type)
    obj = (event.get("data") or {}).get("object") or {}
    outcome: Outcome | None = None
    async with outbox.collecting(defer=defer):
        try:
            async with in_transaction():
                try:
                    await StripeEvent.create(stripe_event_id=event_id, type=event_type)
                except IntegrityError:
                    raise _Duplicate from None
                if handler is not None:
                    outcome = await handler(obj, event)
        except _Duplicate:
            return Outcome.DUPLICATE
        except UnmatchedEvent as exc:
            logger.warning("stripe event %s (%s) ignored: %s", event_id, event_type, exc)
            try:
                await StripeEvent.create(stripe_event_id=event_id, type=event_type)
            except IntegrityError:
                return Outcome.DUPLICATE
            return Outcome.UNMATCHED
    if handler is None:
        logger.info("stripe event %s of unhandled type %s acknowledged", event_id, event_type)
        return Outcome.IGNORED
    if outcome == Outcome.DEFERRED:
        logger.info("stripe event %s (%s) kept until its payment", event_id, event_type)
    return outcome or Outcome.PROCESSED


class SignatureError(Exception):
    pass


def verify(payload: bytes, header: str | None, secret: str, tolerance: int) -> dict[str, Any]:
    """Stripe's signature check, plus the future-timestamp check stripe-python skips."""
    if not header or not secret:
        raise SignatureError("missing signature")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), header, secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise SignatureError(str(exc)) from exc
    timestamps = [p.split("=", 1)[1] for p in header.split(",") if p.strip().startswith("t=")]
    try:
        timestamp = int(timestamps[0])
    except (IndexError, ValueError) as exc:
        raise SignatureError("malformed timestamp") from exc
    if abs(time.time() - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance zone")
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise SignatureError("body is not JSON") from exc
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise SignatureError("not an event object")
    return event


async def _read_capped(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def stripe_webhook(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    payload = await _read_capped(request, settings.webhook_max_body_bytes)
    if payload is None:
        return JSONResponse({"error": "payload too large"}, status_code=413)
    try:
        event = verify(
            payload,
            request.headers.get("stripe-signature"),
            settings.stripe_webhook_secret,
            settings.stripe_webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        logger.warning("stripe webhook refused: %s", exc)
        return JSONResponse({"error": "invalid signature"}, status_code=400)
    # Stripe wants a fast 2xx: with DISPATCH_AFTER_RESPONSE the notifications and live
    # updates of the event go out once the answer is sent (the relay covers a crash).
    later = BackgroundTasks()
    defer = later.add_task if settings.dispatch_after_response else None
    try:
        outcome = await handle_event(event, defer=defer)
    except Exception:
        # Whatever failed (database down, a bug), nothing was committed for this event:
        # a 5xx makes Stripe deliver it again later, so it is never lost.
        logger.exception("stripe event %s not processed; Stripe will retry", event.get("id"))
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
    return JSONResponse({"received": True, "outcome": outcome.value}, background=later)
