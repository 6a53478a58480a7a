"""A subscriber's bounded queue and the errors that end a live stream.

The hub (`app.subscriptions.hub`) hands each message it receives, as one `Published`
object, to every `Subscriber` of its topic; a subscriber that falls `limit` messages
behind is failed (`SubscriberTooSlow`) and never slows the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from app.errors import AccessError


class StreamInterrupted(AccessError):
    """A live stream ended early; resubscribe (with a cursor where there is one). An
    AccessError so that clients get it with its `extensions.code`, never masked."""

    code = "STREAM_INTERRUPTED"
    default_message = "Live updates were interrupted; subscribe again to resume."


class BroadcastUnavailable(StreamInterrupted):
    default_message = "Live updates are unavailable right now; try again shortly."


class SubscriberTooSlow(StreamInterrupted):
    default_message = "You fell too far behind the live updates; subscribe again to resume."


class Published:
    """One message as received from the medium, handed as the same object to every
    subscriber of its topic: `memo` holds what they derive from it once for all
    (its decoded data, the objects built from it, their execution results; see
    app.subscriptions.sharing)."""

    __slots__ = ("memo", "raw")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.memo: dict[Any, Any] = {}


_TIMED_OUT = object()


class Subscriber:
    """One subscriber's bounded queue. `get()` returns the next message (a str) or raises
    the error the subscription was ended with, once the queue is drained; `next()` the
    same as the shared `Published` object, or None after `within` seconds."""

    def __init__(self, topic: str, limit: int) -> None:
        self.topic = topic
        self._limit = limit
        self._items: deque[Published] = deque()
        self._waiter: asyncio.Future[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None  # a `next(within)` deadline
        self._error: StreamInterrupted | None = None

    @property
    def failed(self) -> bool:
        return self._error is not None

    @property
    def ready(self) -> bool:
        """A message is waiting."""
        return bool(self._items)

    def offer(self, message: Published | str) -> bool:
        if self._error is not None:
            return False
        if len(self._items) >= self._limit:
            self._items.clear()  # nothing more for a dropped subscriber: fail at once
            self.fail(SubscriberTooSlow())
            return False
        self._items.append(message if isinstance(message, Published) else Published(message))
        self._wake()
        return True

    def fail(self, error: StreamInterrupted) -> None:
        if self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pop(self) -> Published:
        """The next message, when `ready`."""
        return self._items.popleft()

    async def next(self, within: float | None = None) -> Published | None:
        while True:
            if self._items:
                return self._items.popleft()
            if self._error is not None:
                raise self._error
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            if within is not None:
                self._arm(loop, loop.time() + within)
            try:
                await waiter
            finally:
                self._waiter = None
            timed_out = waiter.result() is _TIMED_OUT and within is not None
            if timed_out and not self._items and self._error is None:
                return None

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """A timer waking the waiter at `deadline`. One waiting for the same deadline
        (the access re-check's, mostly) is kept: no timer per message."""
        timer = self._timer
        if timer is not None:
            if abs(timer.when() - deadline) < 0.001:
                return
            timer.cancel()
        self._timer = loop.call_at(deadline, self._expire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(_TIMED_OUT)

    async def get(self) -> str:
        published = await self.next()
        assert published is not None  # no timeout
        return published.raw
