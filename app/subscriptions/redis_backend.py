"""broadcaster's backend interface over redis-py, supervised.

broadcaster's own Redis listener dies silently when the connection drops and every
subscriber then waits forever (encode/broadcaster#144). This backend reads the pub/sub
connection in a task that also pings it every `heartbeat` seconds; a read error or
`dead_after` seconds of silence ends the connection with an error the hub sees (it fails
every subscriber and reconnects). `subscribe` returns only once Redis confirmed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.compat.broadcaster import BroadcastBackend, Event

logger = logging.getLogger("app.subscriptions")


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
        self._queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
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

    async def next_published(self) -> Event:
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
                            Event(channel=name, message=message["data"].decode())
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
