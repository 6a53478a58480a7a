"""Live streams: what a subscription yields, independent of GraphQL.

- `AccessGuard` re-checks the viewer while a stream runs: the token's expiry ends it on
  time, and every `recheck_seconds` the token is verified again against the database (a
  deactivated agent or a changed password ends it). Checks happen between events and on
  a timer, never once per event per subscriber.
- `message_stream` replays the messages after a cursor from the database, then goes live,
  with no gap and no duplicate: it subscribes to the channel first (confirmed by the
  medium), then reads the backlog, then drains live messages, skipping what it already
  sent. Publication order is not commit order, so each live message carries the id of the
  message before it in the dossier; one that arrives ahead of its predecessor waits
  (briefly) for it, and the database fills the gap if it does not come.
- `event_stream` relays one channel's events, dropping duplicates by id (the relay may
  publish an event twice).

A live message is decoded once for all the subscribers of its channel (`live_data`), so
that what they build from it, and its execution, can be shared (app.subscriptions.sharing).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import jwt

from app.auth import viewer_from_token
from app.errors import Unauthenticated
from app.services import messages as message_service
from app.subscriptions import topics
from app.subscriptions.hub import Hub
from app.subscriptions.publisher import decode, message_data, sender_names
from app.subscriptions.queue import Published, Subscriber
from app.subscriptions.sharing import LiveData

PAGE = 100
GAP_WAIT_SECONDS = 1.0


class RecentIds:
    """A bounded set of recently seen ids; `add` tells whether an id is new."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, value: str) -> bool:
        if value in self._ids:
            return False
        self._ids[value] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


class AccessGuard:
    def __init__(
        self,
        token: str,
        *,
        recheck_seconds: float,
        extra_check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._token = token
        self._recheck = max(recheck_seconds, 0.05)
        self._extra_check = extra_check
        try:  # verified when the connection was accepted; only the expiry is read here
            claims = jwt.decode(token, options={"verify_signature": False})
            self._expires_at = float(claims["exp"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            self._expires_at = 0.0
        # The first check comes after a random 50-100 % of the interval: subscriptions
        # opened together (a reconnect wave, a deploy) do not all hit the database at the
        # same instant, every interval (the soak of `make bench` saw 1,000 at once).
        self._next_check = time.monotonic() + self._recheck * random.uniform(0.5, 1.0)

    def also_check(self, check: Callable[[], Awaitable[None]]) -> None:
        """Re-check `check` with the token, every `recheck_seconds` (a member's access to
        a dossier, which removing them ends): it raises to end the stream."""
        previous = self._extra_check

        async def both() -> None:
            if previous is not None:
                await previous()
            await check()

        self._extra_check = both

    def _seconds_left(self) -> float:
        until_check = self._next_check - time.monotonic()
        until_expiry = self._expires_at - time.time()
        return max(0.0, min(until_check, until_expiry))

    async def verify(self) -> None:
        if time.time() >= self._expires_at:
            raise Unauthenticated("Your session has expired; log in again.")
        if time.monotonic() >= self._next_check:
            await viewer_from_token(self._token)  # raises Unauthenticated
            if self._extra_check is not None:
                await self._extra_check()
            self._next_check = time.monotonic() + self._recheck

    async def next(self, subscriber: Subscriber, max_wait: float | None = None) -> Published | None:
        """The subscriber's next message; None when `max_wait` passed first. Raises when
        access is lost or the subscription was ended."""
        if (
            subscriber.ready
            and (max_wait is None or max_wait > 0)
            and time.monotonic() < self._next_check
            and time.time() < self._expires_at
        ):
            return subscriber.pop()  # nothing to check yet: what `verify` would allow
        deadline = None if max_wait is None else time.monotonic() + max_wait
        while True:
            await self.verify()
            wait = self._seconds_left()
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(wait, remaining)
            published = await subscriber.next(within=max(wait, 0.001))
            if published is not None:
                return published


def live_data(published: Published) -> tuple[str, dict[str, Any]]:
    """A published message decoded, once for all its subscribers (`LiveData`)."""
    decoded = published.memo.get(live_data)
    if decoded is None:
        kind, raw_data = decode(published.raw)
        data = LiveData(raw_data)
        data.origin = published.memo
        decoded = published.memo[live_data] = (kind, data)
    return decoded


async def event_stream(
    hub: Hub, guard: AccessGuard, channel: str, *, kind: str
) -> AsyncIterator[dict[str, Any]]:
    seen = RecentIds()
    async with hub.subscribe(channel) as subscriber:
        while True:
            published = await guard.next(subscriber)
            if published is None:  # pragma: no cover - no max_wait here
                continue
            got, data = live_data(published)
            if got != kind:
                continue
            if seen.add(str(data.get("eventId") or data.get("id"))):
                yield data


Key = tuple[datetime, str]


def _key(created_at: str | datetime, message_id: Any) -> Key:
    when = created_at if isinstance(created_at, datetime) else datetime.fromisoformat(created_at)
    return when, str(message_id)


class _Chain:
    """Delivery state of one message stream: the last message sent, and live messages
    that arrived ahead of their predecessor."""

    def __init__(self, last: Key | None) -> None:
        self.last = last
        self.pending: dict[str | None, dict[str, Any]] = {}

    @property
    def last_id(self) -> str | None:
        return self.last[1] if self.last else None

    def is_old(self, data: dict[str, Any]) -> bool:
        return self.last is not None and _key(data["createdAt"], data["id"]) <= self.last

    def sent(self, data: dict[str, Any]) -> None:
        self.last = _key(data["createdAt"], data["id"])

    def accept(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        if self.is_old(data):
            return []
        if data.get("previousId") != self.last_id:
            self.pending[data.get("previousId")] = data
            return []
        out = [data]
        self.sent(data)
        return out + self.flush()

    def flush(self) -> list[dict[str, Any]]:
        out = []
        for stale in [k for k, v in self.pending.items() if self.is_old(v)]:
            del self.pending[stale]
        while self.last_id in self.pending:
            data = self.pending.pop(self.last_id)
            out.append(data)
            self.sent(data)
        return out


async def _from_database(dossier_id: uuid.UUID, chain: _Chain) -> AsyncIterator[dict[str, Any]]:
    """Every committed message after the chain's last one, oldest first, page by page."""
    while True:
        after = (chain.last[0], uuid.UUID(chain.last[1])) if chain.last else None
        rows = await message_service.messages_after(dossier_id, after, limit=PAGE)
        names = await sender_names(rows)
        previous = chain.last_id
        for row in rows:
            data = message_data(row, names, previous)
            previous = data["id"]
            chain.sent(data)
            yield data
        if len(rows) < PAGE:
            return


async def message_stream(
    hub: Hub,
    guard: AccessGuard,
    dossier_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    *,
    from_now: bool = False,
) -> AsyncIterator[dict[str, Any]]:
    """Messages of a dossier after `after` (or, with from_now, after the latest one at
    the start), then live ones."""
    if from_now:
        latest = await message_service.latest_message(dossier_id)
        after = (latest.created_at, latest.id) if latest else None
    chain = _Chain(_key(after[0], after[1]) if after else None)
    async with hub.subscribe(topics.dossier_messages(dossier_id)) as subscriber:
        # Subscribed (confirmed) before reading: whatever commits from now on arrives live.
        async for data in _from_database(dossier_id, chain):
            yield data
        gap_since: float | None = None
        while True:
            max_wait = None
            if chain.pending:
                gap_since = gap_since if gap_since is not None else time.monotonic()
                max_wait = max(0.0, gap_since + GAP_WAIT_SECONDS - time.monotonic())
            published = await guard.next(subscriber, max_wait=max_wait)
            if published is None or len(chain.pending) > hub.queue_size:
                # a predecessor never came (or too many wait): the database has them all
                async for data in _from_database(dossier_id, chain):
                    yield data
                for data in chain.flush():
                    yield data
            else:
                kind, data = live_data(published)
                if kind == "message":
                    for ready in chain.accept(data):
                        yield ready
            if not chain.pending:
                gap_since = None
