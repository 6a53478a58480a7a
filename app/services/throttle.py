"""Failure counting for authentication attempts (login, password reset, invitation,
two-factor codes), per key: `account:<email>`, `address:<ip>`, …

Policy. A key may fail `AUTH_FAILURES_PER_ACCOUNT` times (keys `account:…`, and any
other prefix) or `AUTH_FAILURES_PER_ADDRESS` times (keys `address:…`) within
`AUTH_FAILURE_WINDOW_SECONDS` (a sliding window over the failures' times). The failure
that reaches the limit locks the key for a minute; each further failure locks it again
for double the last delay, up to the window, until the key has stayed unlocked for a
whole window (then the delay is forgotten). Failures are forgotten as they leave the
window, and `succeeded` forgets failures and delay. `check` raises
`Throttled(retry_after)` (whole seconds until the key unlocks, at least 1) while any of
the keys is locked; it counts nothing itself.

Store. Redis when configured (`REDIS_URL`), so every process counts the same failures:
one Lua script per call, atomic over all the call's keys, under
`<deployment namespace>throttle:<scope>:<key>` (the namespace is the pub/sub one,
`BROADCAST_PREFIX` or derived from `DATABASE_URL`, so two deployments on one Redis never
share counters) and expiring once nothing in it counts any more. Without Redis (the
embedded default, one process) process memory is the store and the policy is exact.

When Redis is configured but slow or down (one attempt within 0.25 s; then it is left
alone for 5 s, and a warning is logged once per outage), each process counts alone in
its memory. It must not grant each account the full budget: with N processes behind a
load balancer an attacker would get N times the guesses, and a stall is easy to cause
under load. So, in fallback, each limit becomes `AUTH_FALLBACK_SHARE` of itself (at
least 1 failure: 5 → 1 per account, 20 → 5 per address by default), so that up to
1/share processes (four) together allow no more than the full limit; and each key
starts from what Redis last told this process about it (failures, lockout, delay: a
bounded mirror of its answers), so a key locked or nearly locked in Redis stays so
during the stall rather than starting fresh. The cost is that during an outage a user
who mistypes once may be asked to wait a minute; a lockout is conservative, a fresh
budget per process is not. When Redis answers again it is the truth again: the memory
counts are dropped (what happened during the stall is not written back).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from app import clock as app_clock
from app.settings import Settings, get_settings

logger = logging.getLogger("app.throttle")

BASE_DELAY_SECONDS = 60  # the first lockout; each further failure over the limit doubles it
REDIS_TIMEOUT = 0.25  # seconds: one attempt, then memory
REDIS_DOWN_SECONDS = 5.0  # after a failure, Redis is not asked again for this long
MEMORY_KEYS = 100_000  # keys kept in memory (store or fallback), then the oldest go
KNOWN_KEYS = 50_000  # keys whose last Redis state a process mirrors

# KEYS: the counters; ARGV: now (ms), window (ms), base delay (ms), then each key's limit.
# State per key, a hash: f = failure times (ms, comma-separated, the latest `limit`),
# d = the last lockout's delay (ms, 0: none), u = locked until (ms).
# Returns {f, d, u} per key (strings). Mirrored by `_fail` below.
FAIL_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local out = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 + i])
  local state = redis.call('HMGET', key, 'f', 'd', 'u')
  local kept = {}
  if state[1] then
    for t in string.gmatch(state[1], '[^,]+') do
      local at = tonumber(t)
      if at > now - window then kept[#kept + 1] = at end
    end
  end
  kept[#kept + 1] = now
  while #kept > limit do table.remove(kept, 1) end
  local delay = tonumber(state[2]) or 0
  local untl = tonumber(state[3]) or 0
  if delay > 0 and now >= untl + window then delay = 0 end
  if #kept >= limit or delay > 0 then
    if delay == 0 then delay = base else delay = math.min(delay * 2, window) end
    untl = now + delay
  end
  local times = {}
  for j, at in ipairs(kept) do times[j] = string.format('%d', at) end
  local f = table.concat(times, ',')
  local d = string.format('%d', delay)
  local u = string.format('%d', untl)
  redis.call('HSET', key, 'f', f, 'd', d, 'u', u)
  redis.call('PEXPIRE', key, window + math.max(0, untl - now))
  out[#out + 1] = f
  out[#out + 1] = d
  out[#out + 1] = u
end
return out
"""

# KEYS: the counters. Returns {f, d, u} per key ('' / '0' when absent).
READ_LUA = """
local out = {}
for _, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'f', 'd', 'u')
  out[#out + 1] = state[1] or ''
  out[#out + 1] = state[2] or '0'
  out[#out + 1] = state[3] or '0'
end
return out
"""


class Throttled(Exception):
    """A key is locked: try again in `retry_after` whole seconds (at least 1)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed attempts; try again in {retry_after} s.")
        self.retry_after = retry_after


@dataclass(frozen=True)
class State:
    """One key's counters, times in milliseconds (as in Redis)."""

    failures: tuple[int, ...] = ()
    delay: int = 0
    until: int = 0

    def retry_after(self, now: int) -> int | None:
        """Whole seconds until unlocked (at least 1), or None when not locked."""
        if self.until <= now:
            return None
        return max(1, math.ceil((self.until - now) / 1000))

    def expires(self, window: int) -> int:
        """When nothing in it counts any more."""
        last = self.failures[-1] if self.failures else 0
        return max(last + window, self.until + window if self.delay else 0)


def _fail(state: State, now: int, limit: int, window: int, base: int) -> State:
    """One more failure (exactly what FAIL_LUA does in Redis)."""
    kept = (*(at for at in state.failures if at > now - window), now)[-limit:]
    delay, until = state.delay, state.until
    if delay > 0 and now >= until + window:  # unlocked for a whole window: forgiven
        delay = 0
    if len(kept) >= limit or delay > 0:  # over the limit, or locked not long ago
        delay = base if delay == 0 else min(delay * 2, window)
        until = now + delay
    return State(kept, delay, until)


def _parse(flat: Sequence[Any]) -> list[State]:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    states = []
    for i in range(0, len(flat), 3):
        times = text(flat[i])
        states.append(
            State(
                tuple(int(t) for t in times.split(",")) if times else (),
                int(text(flat[i + 1]) or 0),
                int(text(flat[i + 2]) or 0),
            )
        )
    return states


@dataclass
class Memory:
    """Key → State, bounded: past `size` keys, the expired ones go, then the oldest."""

    size: int
    window: int
    states: OrderedDict[str, State] = field(default_factory=OrderedDict)

    def get(self, key: str) -> State | None:
        return self.states.get(key)

    def put(self, key: str, state: State, now: int) -> None:
        self.states[key] = state
        self.states.move_to_end(key)
        if len(self.states) > self.size:
            for old in [k for k, s in self.states.items() if s.expires(self.window) <= now]:
                del self.states[old]
            while len(self.states) > self.size:
                self.states.popitem(last=False)

    def pop(self, key: str) -> None:
        self.states.pop(key, None)

    def clear(self) -> None:
        self.states.clear()


def quick_redis(redis_url: str) -> Any:
    """A Redis client for a guard on the request path (this throttle, the cost limiter):
    one attempt within REDIS_TIMEOUT, one retry for a pooled connection a Redis restart
    closed, never a retry on a timeout (the default retries three times: a stall would
    cost each request a second)."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return redis.from_url(
        redis_url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


def _wall_clock() -> float:
    return app_clock.now().timestamp()


class Throttle:
    """The failure counters of one process: Redis when configured and answering, memory
    otherwise (see the module docstring)."""

    def __init__(
        self,
        redis_url: str = "",
        *,
        per_account: int = 5,
        per_address: int = 20,
        window_seconds: int = 900,
        base_delay_seconds: int = BASE_DELAY_SECONDS,
        fallback_share: float = 0.25,
        key_prefix: str = "",
        clock: Callable[[], float] = _wall_clock,
        down_seconds: float = REDIS_DOWN_SECONDS,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window_seconds * 1000
        self.base = min(base_delay_seconds, window_seconds) * 1000
        self.fallback_share = fallback_share
        self.key_prefix = key_prefix
        self._clock = clock
        self._down_seconds = down_seconds
        self._memory = Memory(MEMORY_KEYS, self.window)  # the store, or a stall's counts
        self._known = Memory(KNOWN_KEYS, self.window)  # what Redis last said
        self._down_until = 0.0  # time.monotonic()
        self._down = False  # in an outage (warned; memory holds its counts)
        self._redis: Any = None
        self._fail_script: Any = None
        self._read_script: Any = None
        if redis_url:
            self._redis = quick_redis(redis_url)
            self._fail_script = self._redis.register_script(FAIL_LUA)
            self._read_script = self._redis.register_script(READ_LUA)

    # -- policy ------------------------------------------------------------------------

    def limit_for(self, key: str, *, fallback: bool = False) -> int:
        limit = self.per_address if key.startswith("address:") else self.per_account
        if fallback:
            return max(1, math.floor(limit * self.fallback_share))
        return limit

    def redis_key(self, scope: str, key: str) -> str:
        return f"{self.key_prefix}throttle:{scope}:{key}"

    def _now(self) -> int:
        return int(self._clock() * 1000)

    # -- the three calls ---------------------------------------------------------------

    async def check(self, scope: str, keys: Sequence[str]) -> None:
        """Raise Throttled when any of `keys` is locked now."""
        if not keys:
            return
        now = self._now()
        names = [self.redis_key(scope, k) for k in keys]
        states = await self._redis_call(self._read_script, names, [], now)
        if states is None:
            states = [self._local(name) or State() for name in names]
        waits = [w for s in states if (w := s.retry_after(now)) is not None]
        if waits:
            raise Throttled(max(waits))

    async def failed(self, scope: str, keys: Sequence[str]) -> None:
        """Count one failure against each of `keys` (locking those that reach their limit)."""
        if not keys:
            return
        now = self._now()
        names = [self.redis_key(scope, k) for k in keys]
        limits = [self.limit_for(k) for k in keys]
        args = [now, self.window, self.base, *limits]
        if await self._redis_call(self._fail_script, names, args, now) is not None:
            return
        fallback = self._redis is not None
        for key, name in zip(keys, names, strict=True):
            limit = self.limit_for(key, fallback=fallback)
            state = _fail(self._local(name) or State(), now, limit, self.window, self.base)
            self._memory.put(name, state, now)

    async def succeeded(self, scope: str, keys: Sequence[str]) -> None:
        """Forget the failures (and any lockout) of `keys`."""
        if not keys:
            return
        names = [self.redis_key(scope, k) for k in keys]
        for name in names:
            self._memory.pop(name)
            self._known.pop(name)
        if self._redis is not None and self._redis_usable():
            try:
                await self._redis.delete(*names)
            except Exception as exc:
                self._mark_down(exc)
            else:
                self._mark_up()

    # -- Redis, and the memory behind it -----------------------------------------------

    def _local(self, name: str) -> State | None:
        """The memory state of a key; in a stall, seeded from Redis' last answer."""
        state = self._memory.get(name)
        if state is None and self._redis is not None:
            state = self._known.get(name)
        return state

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._down_until

    async def _redis_call(
        self, script: Any, names: list[str], args: list[int], now: int
    ) -> list[State] | None:
        """The keys' states as Redis answers them (mirrored), or None: use memory."""
        if self._redis is None or not self._redis_usable():
            return None
        try:
            states = _parse(await script(keys=names, args=args))
        except Exception as exc:  # slow or down: count in memory, conservatively
            self._mark_down(exc)
            return None
        self._mark_up()
        for name, state in zip(names, states, strict=True):
            if state == State():
                self._known.pop(name)
            else:
                self._known.put(name, state, now)
        return states

    def _mark_down(self, exc: Exception) -> None:
        self._down_until = time.monotonic() + self._down_seconds
        if not self._down:
            self._down = True
            logger.warning(
                "authentication throttle: Redis does not answer (%r); counting failures in "
                "this process with %s of each limit until it does",
                exc,
                self.fallback_share,
            )

    def _mark_up(self) -> None:
        if self._down:
            self._down = False
            self._memory.clear()
            logger.info("authentication throttle: Redis answers again")

    async def forget_all(self) -> int:
        """Forget every counter of this deployment (an operator lifting every lockout;
        the tests, between cases): memory, and the keys under the prefix in Redis."""
        self._memory.clear()
        self._known.clear()
        if self._redis is None:
            return 0
        names = [name async for name in self._redis.scan_iter(match=self.redis_key("*", "*"))]
        if names:
            await self._redis.delete(*names)
        return len(names)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def deployment_prefix(settings: Settings) -> str:
    """The deployment's Redis namespace: the same as the pub/sub hub's
    (`app.subscriptions.hub.namespace_for`, which this layer may not import)."""
    if settings.broadcast_prefix:
        explicit = settings.broadcast_prefix
        return explicit if explicit.endswith(":") else explicit + ":"
    return "dossier:" + hashlib.sha256(settings.database_url.encode()).hexdigest()[:12] + ":"


@lru_cache(maxsize=1)
def get_throttle() -> Throttle:
    """The process's throttle, from the settings (tests: `get_throttle.cache_clear()`)."""
    settings = get_settings()
    return Throttle(
        settings.redis_url,
        per_account=settings.auth_failures_per_account,
        per_address=settings.auth_failures_per_address,
        window_seconds=settings.auth_failure_window_seconds,
        fallback_share=settings.auth_fallback_share,
        key_prefix=deployment_prefix(settings),
    )


async def check(scope: str, keys: Sequence[str]) -> None:
    """Raise Throttled when any of `keys` is locked for `scope` now."""
    await get_throttle().check(scope, keys)


async def failed(scope: str, keys: Sequence[str]) -> None:
    """Count one failure of `scope` against each of `keys`."""
    await get_throttle().failed(scope, keys)


async def succeeded(scope: str, keys: Sequence[str]) -> None:
    """Forget the `scope` failures of `keys`."""
    await get_throttle().succeeded(scope, keys)
