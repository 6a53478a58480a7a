"""The events table is the outbox.

`events.record` writes an event in the caller's transaction and remembers its id for the
current operation. When the operation is over (all its transactions committed),
`collecting()` hands those ids to `dispatch`, which claims the still-unprocessed rows and
runs every registered consumer on them (subscriptions' publisher, notifications). Anything
not dispatched then — a crash, a consumer failure, a rolled-back phantom — is picked up
by the worker's relay (`dispatch()` without ids). Consumers dedupe by event id.

An HTTP request hands its dispatch to run once its answer is sent (DISPATCH_AFTER_RESPONSE,
the default): the client waits for the commit only. The events of operations that finish
while a dispatch is running go out together in the next one (one transaction, one claim,
one query per table for the notifications and live updates of the whole batch), so under
load a process dispatches in batches instead of one event at a time. `drain()` waits for
the dispatches handed over in this process (graceful shutdown; tests).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
                defer(_deferred(pending))
            else:
                await dispatch_together(pending)


# --- dispatching in the background, together ---------------------------------------------


@dataclass
class _Dispatcher:
    """This event loop's dispatches: queued, the one running, and those promised to run
    once a response is sent."""

    queue: list[tuple[list[uuid.UUID], asyncio.Future[None]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    promised: set[int] = field(default_factory=set)
    tickets: itertools.count = field(default_factory=itertools.count)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def update(self) -> None:
        if self.queue or self.task is not None or self.promised:
            self.idle.clear()
        else:
            self.idle.set()


_dispatchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Dispatcher] = (
    weakref.WeakKeyDictionary()
)


def _dispatcher() -> _Dispatcher:
    loop = asyncio.get_running_loop()
    found = _dispatchers.get(loop)
    if found is None:
        found = _dispatchers[loop] = _Dispatcher()
        found.update()
    return found


def _deferred(ids: list[uuid.UUID]) -> Callable[[], Awaitable[None]]:
    """The job that dispatches `ids` once run; `drain()` waits for it from now on (until it
    has run, or is dropped unrun: a response never sent leaves its events to the relay)."""
    state = _dispatcher()
    key = next(state.tickets)
    state.promised.add(key)
    state.update()

    def release() -> None:
        state.promised.discard(key)
        state.update()

    async def job() -> None:
        try:
            await dispatch_together(ids)
        finally:
            release()

    weakref.finalize(job, release)
    return job


async def dispatch_together(ids: Sequence[uuid.UUID]) -> None:
    """Dispatch these events with whatever else is waiting in this process; returns once
    they are (or the attempt failed: the relay retries). Never raises."""
    state = _dispatcher()
    if state.task is not None and asyncio.current_task() is state.task:
        await dispatch_quietly(ids)  # from inside a dispatch: no waiting for ourselves
        return
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    state.queue.append((list(ids), done))
    if state.task is None:
        state.task = asyncio.create_task(_run(state), name="outbox-dispatch")
    state.update()
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        if done.cancelled():  # the dispatcher was cancelled: the relay will retry
            return
        raise  # we were cancelled; the dispatch goes on without us


async def _run(state: _Dispatcher) -> None:
    batch: list[tuple[list[uuid.UUID], asyncio.Future[None]]] = []
    try:
        while state.queue:
            batch, state.queue = state.queue, []
            ids = list(dict.fromkeys(i for part, _ in batch for i in part))
            for start in range(0, len(ids), RELAY_BATCH):
                await dispatch_quietly(ids[start : start + RELAY_BATCH])
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
            batch = []
    finally:
        for _, done in [*batch, *state.queue]:
            if not done.done():
                done.cancel()
        state.queue = []
        state.task = None
        state.update()


async def drain(within: float | None = None) -> bool:
    """Wait until the dispatches handed over in this process (queued, running, or due once
    a response is sent) are over; False if `within` seconds ran out first (what is left is the
    relay's: nothing is lost, live updates and notifications are later)."""
    state = _dispatcher()
    try:
        await asyncio.wait_for(state.idle.wait(), within)
    except TimeoutError:
        return False
    return True


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
