"""The broadcast hub: `broadcaster`, hardened, behind a tiny API (publish / subscribe).

The backend is chosen by URL as broadcaster does: `memory://` (one process) or
`redis://` / `rediss://`. What this module adds to broadcaster, and why:

- **Supervision** (encode/broadcaster#144): broadcaster's Redis listener dies silently when
  the connection drops and every subscriber then waits forever. Here the pub/sub
  connection is read by a task that also pings it every `heartbeat` seconds; a read error
  or `dead_after` seconds of silence ends the connection. Every subscriber of it is then
  failed with `StreamInterrupted` (its stream ends with an error the client sees; the
  client resumes with a cursor), and the hub reconnects with backoff until Redis is back.
  redis-py's own silent reconnect-and-resubscribe is switched off: it would lose what was
  published during the gap without anyone knowing.
- **The first-subscriber race**: broadcaster subscribes the backend and only then
  registers the queue, so two first subscribers of a channel arriving together lose one
  queue. Here a per-channel lock serialises (un)subscription, the subscriber is registered
  before the backend subscribes, and `subscribe` returns only once Redis has confirmed the
  subscription (so whatever is published from then on is received: callers may read a
  backlog from the database right after, with no gap).
- **Bounded queues**: each subscriber has a queue of `queue_size`; one that falls that far
  behind is dropped (its stream ends with an error) and never slows the others.
- **Publishing never raises**: `publish` returns False on failure (the outbox keeps the
  event for the relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from broadcaster import Broadcast
from broadcaster import Event as BroadcastEvent
from broadcaster._backends.base import BroadcastBackend
from broadcaster._backends.memory import MemoryBackend
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.errors import AccessError

logger = logging.getLogger("app.subscriptions")


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
    subscriber of its channel: `memo` holds what they derive from it once for all
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

    def __init__(self, channel: str, limit: int) -> None:
        self.channel = channel
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


class ConnectionLost(ConnectionError):
    pass


class SupervisedRedisBackend(BroadcastBackend):
    """broadcaster's backend interface over redis-py, with every connection failure
    surfaced to the hub instead of swallowed (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat: float = 1.0,
        dead_after: float = 3.0,
        timeout: float = 2.0,
    ) -> None:
        self._url = url
        self._heartbeat = heartbeat
        self._dead_after = dead_after
        self._timeout = timeout
        # Publishing: its own client; one retry covers a pooled connection that died with
        # a Redis restart.
        self._publisher = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[BroadcastEvent | BaseException] = asyncio.Queue()
        self._confirmations: dict[str, asyncio.Future[None]] = {}

    async def connect(self) -> None:
        # No retries and no health-check reads: a dropped connection must raise, here.
        self._client = aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._pubsub = self._client.pubsub()
        await asyncio.wait_for(self._pubsub.connect(), self._timeout)
        await asyncio.wait_for(self._pubsub.ping(), self._timeout)
        self._reader = asyncio.create_task(self._read(), name="redis-pubsub-reader")

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._fail_confirmations(ConnectionLost("disconnected"))
        for closing in (self._pubsub, self._client, self._publisher):
            if closing is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closing.aclose(), self._timeout)

    async def subscribe(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        confirmed = loop.create_future()
        self._confirmations[channel] = confirmed
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(confirmed), self._timeout)
        finally:
            self._confirmations.pop(channel, None)

    async def unsubscribe(self, channel: str) -> None:
        await asyncio.wait_for(self._pubsub.unsubscribe(channel), self._timeout)

    async def publish(self, channel: str, message: Any) -> None:
        await self._publisher.publish(channel, message)

    async def next_published(self) -> BroadcastEvent:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _fail_confirmations(self, error: BaseException) -> None:
        for future in self._confirmations.values():
            if not future.done():
                future.set_exception(error)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        last_seen = last_ping = loop.time()
        try:
            while True:
                message = await self._pubsub.get_message(timeout=min(0.25, self._heartbeat))
                now = loop.time()
                if message is not None:
                    last_seen = now
                    kind = message["type"]
                    channel = message.get("channel")
                    name = channel.decode() if isinstance(channel, bytes) else channel
                    if kind == "message":
                        self._queue.put_nowait(
                            BroadcastEvent(channel=name, message=message["data"].decode())
                        )
                    elif kind == "subscribe" and name in self._confirmations:
                        future = self._confirmations[name]
                        if not future.done():
                            future.set_result(None)
                if now - last_seen > self._dead_after:
                    raise ConnectionLost(f"no answer from Redis for {now - last_seen:.1f}s")
                if now - last_ping >= self._heartbeat:
                    last_ping = now
                    await asyncio.wait_for(self._pubsub.ping(), self._timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("Redis pub/sub connection lost: %s: %s", type(exc).__name__, exc)
            self._fail_confirmations(exc)
            self._queue.put_nowait(exc)


class _EagerMemoryBackend(MemoryBackend):
    """broadcaster's memory backend, usable for publishing before `connect`."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._published: asyncio.Queue[BroadcastEvent] = asyncio.Queue()

    async def connect(self) -> None:
        pass


class Hub(Broadcast):
    """One process's link to the broadcast medium. Safe to use before `start()`: the
    first subscription starts it, and publishing to Redis needs no listener at all."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        queue_size: int = 256,
        heartbeat: float = 1.0,
        dead_after: float = 3.0,
        timeout: float = 2.0,
    ) -> None:
        self.url = url or "memory://"
        self.prefix = prefix
        self.queue_size = queue_size
        self._heartbeat = heartbeat
        self._dead_after = dead_after
        self._timeout = timeout
        super().__init__(self.url)
        self._channels: dict[str, set[Subscriber]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # per channel, with its users
        self._up = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self.active = False  # started and not closed
        self._users = 0  # app lifespans holding it open
        self.generation = 0  # how many times the medium has (re)connected
        self.interruptions = 0  # connections lost so far

    # -- backend selection (broadcaster's, plus the supervised Redis backend) --------

    def _create_backend(self, url: str) -> BroadcastBackend:
        scheme = urlsplit(url).scheme
        if scheme in ("redis", "rediss"):
            return SupervisedRedisBackend(
                url,
                heartbeat=getattr(self, "_heartbeat", 1.0),
                dead_after=getattr(self, "_dead_after", 3.0),
                timeout=getattr(self, "_timeout", 2.0),
            )
        if scheme == "memory":
            return _EagerMemoryBackend(url)
        return super()._create_backend(url)

    @property
    def is_memory(self) -> bool:
        return urlsplit(self.url).scheme == "memory"

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start supervising (idempotent); does not wait for the medium to be reachable."""
        self.active = True
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._supervise(), name="broadcast-hub")

    async def connect(self) -> None:  # broadcaster's name for it
        await self.start()

    async def open(self) -> None:
        """Start on behalf of an app's lifespan; pair with `release`."""
        self._users += 1
        await self.start()

    async def release(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.close()

    async def close(self) -> None:
        self.active = False
        self._up.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(BaseException):
                await self._supervisor
            self._supervisor = None
        self._fail_all(StreamInterrupted("The server is shutting down; reconnect."))
        with contextlib.suppress(Exception):
            await self._backend.disconnect()
        self._backend = self._create_backend(self.url)

    async def disconnect(self) -> None:  # broadcaster's name for it
        await self.close()

    async def wait_up(self) -> bool:
        """Start if needed and wait (a little) for the medium; False when unreachable."""
        await self.start()
        try:
            await asyncio.wait_for(self._up.wait(), self._timeout)
        except TimeoutError:
            return False
        return True

    async def _supervise(self) -> None:
        delay = 0.1
        while True:
            backend = self._backend
            try:
                await backend.connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "broadcast %s unreachable (%s); retrying in %.1fs",
                    self._safe_url,
                    type(exc).__name__,
                    delay,
                )
                with contextlib.suppress(Exception):
                    await backend.disconnect()
                self._backend = self._create_backend(self.url)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            self.generation += 1
            if self.generation > 1:
                logger.warning("broadcast %s reconnected", self._safe_url)
            self._up.set()
            try:
                while True:
                    event = await backend.next_published()
                    self._fan_out(event)
                    # let the woken subscribers run: a burst must not outrun healthy ones
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                self._up.clear()
                raise
            except Exception as exc:
                self._up.clear()
                self.interruptions += 1
                logger.warning(
                    "broadcast %s lost (%s): ending %d live subscription(s)",
                    self._safe_url,
                    type(exc).__name__,
                    sum(len(s) for s in self._channels.values()),
                )
                self._fail_all(StreamInterrupted())
                with contextlib.suppress(Exception):
                    await backend.disconnect()
                self._backend = self._create_backend(self.url)

    @property
    def _safe_url(self) -> str:
        parts = urlsplit(self.url)
        return (
            f"{parts.scheme}://{parts.hostname or ''}{':' if parts.port else ''}{parts.port or ''}"
        )

    def _fail_all(self, error: StreamInterrupted) -> None:
        channels, self._channels = self._channels, {}
        for subscribers in channels.values():
            for subscriber in subscribers:
                subscriber.fail(error)

    def _fan_out(self, event: BroadcastEvent) -> None:
        subscribers = self._channels.get(event.channel)
        if not subscribers:
            return
        published = Published(event.message)  # one object for all: see Published
        for subscriber in list(subscribers):
            if not subscriber.offer(published):
                subscribers.discard(subscriber)  # too slow: dropped, the others go on
                logger.warning("dropped a slow subscriber of %s", event.channel)

    # -- the API ------------------------------------------------------------------------

    async def publish(self, channel: str, message: Any) -> bool:  # type: ignore[override]
        """Publish to a channel; False (never an exception) when it could not be done."""
        try:
            if self.is_memory:
                await self.start()
            await asyncio.wait_for(
                self._backend.publish(self.prefix + channel, message), self._timeout
            )
        except Exception as exc:
            logger.warning("publish to %s failed: %s: %s", self._safe_url, type(exc).__name__, exc)
            return False
        return True

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscriber]:  # type: ignore[override]
        """Subscribe to a channel. On return the subscription is live (confirmed by the
        medium). Raises BroadcastUnavailable when the medium cannot be reached in time."""
        if not await self.wait_up():
            raise BroadcastUnavailable()
        name = self.prefix + channel
        subscriber = Subscriber(name, self.queue_size)
        lock = self._acquire_lock(name)
        try:
            async with lock:
                backend = await self._add(name, subscriber)
        except BaseException:
            self._release_lock(name)
            raise
        try:
            yield subscriber
        finally:
            subscriber.disarm()
            try:
                async with lock:
                    await self._remove(name, subscriber, backend)
            finally:
                self._release_lock(name)

    def _acquire_lock(self, name: str) -> asyncio.Lock:
        lock, users = self._locks.get(name) or (asyncio.Lock(), 0)
        self._locks[name] = (lock, users + 1)
        return lock

    def _release_lock(self, name: str) -> None:
        lock, users = self._locks[name]
        if users <= 1:
            del self._locks[name]
        else:
            self._locks[name] = (lock, users - 1)

    async def _add(self, name: str, subscriber: Subscriber) -> BroadcastBackend:
        if not self.is_up:
            raise BroadcastUnavailable()
        backend = self._backend
        subscribers = self._channels.get(name)
        if subscribers:
            subscribers.add(subscriber)
            return backend
        # The first subscriber: registered before the backend subscribes (and the lock
        # holds back the next ones until Redis confirmed), so none is ever lost.
        self._channels[name] = {subscriber}
        try:
            await backend.subscribe(name)
        except Exception as exc:
            if self._channels.get(name) is not None:
                self._channels[name].discard(subscriber)
                if not self._channels[name]:
                    del self._channels[name]
            raise BroadcastUnavailable() from exc
        return backend

    async def _remove(self, name: str, subscriber: Subscriber, backend: BroadcastBackend) -> None:
        subscribers = self._channels.get(name)
        if subscribers is None:
            return
        subscribers.discard(subscriber)
        if subscribers:
            return
        del self._channels[name]
        if backend is self._backend and self.is_up:
            with contextlib.suppress(Exception):
                await backend.unsubscribe(name)

    def subscriber_count(self, channel: str) -> int:
        return len(self._channels.get(self.prefix + channel, ()))


# -- one hub per (medium, namespace) in a process ----------------------------------------

_HUBS: dict[tuple[str, str], Hub] = {}


def namespace_for(database_url: str, explicit: str = "") -> str:
    """Channel namespace: explicit, or derived from the database, so every process of one
    deployment shares channels and two deployments on one Redis never cross."""
    if explicit:
        return explicit if explicit.endswith(":") else explicit + ":"
    return "dossier:" + hashlib.sha256(database_url.encode()).hexdigest()[:12] + ":"


def hub_for(settings: Any) -> Hub:
    url = settings.redis_url or "memory://"
    prefix = namespace_for(settings.database_url, settings.broadcast_prefix)
    key = (url, prefix)
    hub = _HUBS.get(key)
    if hub is None:
        hub = Hub(
            url,
            prefix=prefix,
            queue_size=settings.subscription_queue_size,
            heartbeat=settings.redis_heartbeat_seconds,
            dead_after=settings.redis_dead_after_seconds,
        )
        _HUBS[key] = hub
    return hub


def publishing_hubs(default: Hub) -> list[Hub]:
    """Where this process publishes: every active hub, and the default one."""
    hubs = [hub for hub in _HUBS.values() if hub.active]
    if default not in hubs:
        hubs.append(default)
    return hubs
