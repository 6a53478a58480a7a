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
  registers the queue, so two first subscribers of a topic arriving together lose one
  queue. Here a per-topic lock serialises (un)subscription, the subscriber is registered
  before the backend subscribes, and `subscribe` returns only once Redis has confirmed the
  subscription (so whatever is published from then on is received: callers may read a
  backlog from the database right after, with no gap).
- **Bounded queues**: each subscriber has a queue of `queue_size`; one that falls that far
  behind is dropped (its stream ends with an error) and never slows the others.
- **Publishing never raises**: `publish` returns False on failure (the outbox keeps the
  event for the relay).

The subscriber queue and the stream errors are in `app.subscriptions.queue`, the
supervised Redis backend in `app.subscriptions.redis_backend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from app import metrics
from app.compat.broadcaster import BroadcastBackend, Event, memory_backend
from app.subscriptions.queue import (
    BroadcastUnavailable,
    Published,
    StreamInterrupted,
    Subscriber,
)
from app.subscriptions.redis_backend import SupervisedRedisBackend

logger = logging.getLogger("app.subscriptions")


class Hub:
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
        self._backend: BroadcastBackend = self._create_backend(self.url)
        self._topics: dict[str, set[Subscriber]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # per topic, with its users
        self._up = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self.active = False  # started and not closed
        self._users = 0  # app lifespans holding it open
        self.generation = 0  # how many times the medium has (re)connected
        self.interruptions = 0  # connections lost so far

    # -- backend selection: the supervised Redis backend, or broadcaster's memory one --

    def _create_backend(self, url: str) -> BroadcastBackend:
        scheme = urlsplit(url).scheme
        if scheme in ("redis", "rediss"):
            return SupervisedRedisBackend(
                url,
                heartbeat=self._heartbeat,
                dead_after=self._dead_after,
                timeout=self._timeout,
            )
        if scheme == "memory":
            return memory_backend(url)
        raise ValueError(f"unsupported broadcast URL scheme: {scheme!r} (redis://, memory://)")

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
                    sum(len(s) for s in self._topics.values()),
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
        topics, self._topics = self._topics, {}
        for subscribers in topics.values():
            for subscriber in subscribers:
                subscriber.fail(error)

    def _fan_out(self, event: Event) -> None:
        subscribers = self._topics.get(event.channel)
        if not subscribers:
            return
        published = Published(event.message)  # one object for all: see Published
        handed = 0
        for subscriber in list(subscribers):
            if subscriber.offer(published):
                handed += 1
            else:
                subscribers.discard(subscriber)  # too slow: dropped, the others go on
                logger.warning("dropped a slow subscriber of %s", event.channel)
                metrics.LIVE_DROPPED.labels(metrics.topic_kind(event.channel)).inc()
        if handed:
            metrics.LIVE_DELIVERED.labels(metrics.topic_kind(event.channel)).inc(handed)

    # -- the API ------------------------------------------------------------------------

    async def publish(self, topic: str, message: Any) -> bool:
        """Publish to a topic; False (never an exception) when it could not be done."""
        try:
            if self.is_memory:
                await self.start()
            await asyncio.wait_for(
                self._backend.publish(self.prefix + topic, message), self._timeout
            )
        except Exception as exc:
            logger.warning("publish to %s failed: %s: %s", self._safe_url, type(exc).__name__, exc)
            return False
        metrics.LIVE_PUBLISHED.labels(metrics.topic_kind(topic)).inc()
        return True

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscriber]:
        """Subscribe to a topic. On return the subscription is live (confirmed by the
        medium). Raises BroadcastUnavailable when the medium cannot be reached in time."""
        if not await self.wait_up():
            raise BroadcastUnavailable()
        name = self.prefix + topic
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
        subscribers = self._topics.get(name)
        if subscribers:
            subscribers.add(subscriber)
            return backend
        # The first subscriber: registered before the backend subscribes (and the lock
        # holds back the next ones until Redis confirmed), so none is ever lost.
        self._topics[name] = {subscriber}
        try:
            await backend.subscribe(name)
        except Exception as exc:
            if self._topics.get(name) is not None:
                self._topics[name].discard(subscriber)
                if not self._topics[name]:
                    del self._topics[name]
            raise BroadcastUnavailable() from exc
        return backend

    async def _remove(self, name: str, subscriber: Subscriber, backend: BroadcastBackend) -> None:
        subscribers = self._topics.get(name)
        if subscribers is None:
            return
        subscribers.discard(subscriber)
        if subscribers:
            return
        del self._topics[name]
        if backend is self._backend and self.is_up:
            with contextlib.suppress(Exception):
                await backend.unsubscribe(name)

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(self.prefix + topic, ()))


# -- one hub per (medium, namespace) in a process ----------------------------------------

_HUBS: dict[tuple[str, str], Hub] = {}


def namespace_for(database_url: str, explicit: str = "") -> str:
    """Topic namespace: explicit, or derived from the database, so every process of one
    deployment shares topics and two deployments on one Redis never cross."""
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
