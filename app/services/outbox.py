"""The events table is the outbox.

`events.record` writes an event in the caller's transaction and remembers its id for the
current operation. When the operation is over (all its transactions committed),
`collecting()` hands those ids to `dispatch`, which claims the still-unprocessed rows and
runs every registered consumer on them (subscriptions' publisher, notifications). Anything
not dispatched then — a crash, a consumer failure, a rolled-back phantom — is picked up
by the worker's relay (`dispatch()` without ids). Consumers dedupe by event id.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from app.models import Event

logger = logging.getLogger("app.outbox")

Consumer = Callable[[Sequence[Event]], Awaitable[None]]
CONSUMERS: list[tuple[str, Consumer]] = []
_pending: contextvars.ContextVar[list[uuid.UUID] | None] = contextvars.ContextVar(
    "pending_events", default=None
)
RELAY_BATCH = 200
RELAY_GRACE = timedelta(seconds=5)  # leave fresh events to the request that made them


def register_consumer(name: str, consumer: Consumer) -> None:
    if all(existing != name for existing, _ in CONSUMERS):
        CONSUMERS.append((name, consumer))


def track(event_id: uuid.UUID) -> None:
    pending = _pending.get()
    if pending is not None:
        pending.append(event_id)


@asynccontextmanager
async def collecting(
    *, defer: Callable[[Callable[[], Awaitable[None]]], None] | None = None
) -> AsyncIterator[list[uuid.UUID]]:
    """Collect the events recorded inside the block; dispatch them when it ends, or hand
    the dispatch to `defer` (e.g. to run once an HTTP response has been sent: the client
    has its answer at the commit, the dispatch follows; the relay covers a crash)."""
    pending: list[uuid.UUID] = []
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)
        if pending:
            if defer is not None:

                async def later() -> None:
                    await dispatch_quietly(pending)

                defer(later)
            else:
                await dispatch_quietly(pending)


async def dispatch_quietly(ids: Sequence[uuid.UUID]) -> None:
    try:
        await dispatch(ids)
    except Exception:  # never fail the request: the relay will retry
        logger.exception("dispatch of %d event(s) failed; the relay will retry", len(ids))


async def dispatch(ids: Sequence[uuid.UUID] | None = None, *, limit: int = RELAY_BATCH) -> int:
    """Claim unprocessed events (these ids, or the oldest ones) and run the consumers.

    Returns how many events were processed. A consumer failure leaves the batch
    unprocessed for a later retry.
    """
    async with in_transaction():
        queryset = Event.filter(processed_at=None)
        if ids is not None:
            queryset = queryset.filter(id__in=list(ids))
        else:
            queryset = queryset.filter(created_at__lt=datetime.now(UTC) - RELAY_GRACE)
        batch = list(
            await queryset.order_by("created_at", "id")
            .limit(limit)
            .select_for_update(skip_locked=True)
        )
        if not batch:
            return 0
        for name, consumer in CONSUMERS:
            try:
                await consumer(batch)
            except Exception:
                logger.exception("outbox consumer %s failed on %d event(s)", name, len(batch))
                raise
        now = datetime.now(UTC)
        await Event.filter(id__in=[e.id for e in batch]).update(processed_at=now)
    return len(batch)
