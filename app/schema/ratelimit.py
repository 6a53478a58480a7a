"""Per-user rate limiting by query cost: a token bucket per viewer (or per client address
when anonymous), kept in Redis so every process shares it, and in process memory when
Redis is not configured (then memory is the store: the limit is exact, one process).

When Redis is configured but slow or down (one attempt within 0.25 s, then it is left
alone for 5 s), each process limits alone, and must not hand every viewer a fresh full
bucket: N processes would then multiply everyone's budget by N during a stall. Each
process therefore remembers, per viewer it served (a bounded number), the level Redis
last reported, and starts the viewer's memory bucket at `fallback_share` of it (of a
full bucket for a viewer it has not seen), refilled at `fallback_share` of the rate. Up
to 1/share processes together then spend no more than what Redis said was left (one
full bucket for a viewer none of them has seen); an operation dearer than a share still
fits once that share is full, leaving it in debt. What memory spent is not written back
when Redis answers again: Redis is the truth from then on, and the memory buckets are
dropped, so the next stall starts from Redis' level again.

An operation's cost is its node budget count (see app/schema/limits.py), at least 1.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.errors import AccessError
from app.services.throttle import quick_redis

logger = logging.getLogger("app.ratelimit")

REDIS_DOWN_SECONDS = 5.0  # after a failure, Redis is not asked again for this long
KNOWN_LEVELS = 50_000  # viewers whose last Redis level a process remembers

# KEYS[1] bucket; ARGV capacity, refill per second, cost, now (ms).
# Returns {allowed (0/1), milliseconds until enough tokens, tokens left (a string: Lua
# numbers become integers on the way out)}.
TOKEN_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) / 1000 * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, wait, tostring(tokens)}
"""


@dataclass
class Decision:
    allowed: bool
    retry_after: float  # seconds


class MemoryBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def clear(self) -> None:
        self._buckets.clear()

    def take(
        self,
        key: str,
        cost: float,
        capacity: float,
        rate: float,
        now: float,
        start: float | None = None,
        in_debt: bool = False,
    ) -> Decision:
        """`start`: the level of a bucket not yet in memory (default: full). `in_debt`: an
        operation dearer than the capacity is allowed from a full bucket, which it leaves
        below zero (so it refills for longer) instead of never fitting."""
        tokens, at = self._buckets.get(key, (capacity if start is None else start, now))
        tokens = min(capacity, tokens + max(0.0, now - at) * rate)
        need = min(cost, capacity) if in_debt else cost
        if tokens >= need:
            self._buckets[key] = (tokens - cost, now)
            return Decision(True, 0.0)
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > 100_000:  # bound memory: forget the oldest buckets
            for old in sorted(self._buckets, key=lambda k: self._buckets[k][1])[:50_000]:
                del self._buckets[old]
        return Decision(False, (need - tokens) / rate)


class RateLimiter:
    """Redis when configured and answering; process memory otherwise (a share of the
    budget when Redis is configured but does not answer: see the module docstring)."""

    def __init__(
        self,
        redis_url: str,
        capacity: int,
        per_seconds: int,
        *,
        fallback_share: float = 0.25,
        down_seconds: float = REDIS_DOWN_SECONDS,
        clock: Callable[[], float] = time.time,
        key_prefix: str = "",
    ) -> None:
        # The deployment's Redis namespace (app.services.throttle.deployment_prefix): two
        # deployments sharing a Redis database never share a bucket.
        self.key_prefix = key_prefix
        self.capacity = float(capacity)
        self.rate = capacity / per_seconds
        self.fallback_share = min(1.0, max(fallback_share, 1e-9))
        self.memory = MemoryBuckets()
        self._clock = clock
        self._down_seconds = down_seconds
        # key -> (tokens Redis reported, when): the seed of a fallback bucket
        self._known: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._falling_back = False  # memory buckets hold a stall's spending
        self._redis = None
        self._script = None
        self._redis_down_until = 0.0
        if redis_url:
            self._redis = quick_redis(redis_url)
            self._script = self._redis.register_script(TOKEN_BUCKET_LUA)

    def redis_key(self, key: str) -> str:
        return f"{self.key_prefix}ratelimit:{key}"

    async def take(self, key: str, cost: float) -> Decision:
        now = self._clock()
        if self._script is None:  # no Redis configured: memory is the store
            return self.memory.take(key, cost, self.capacity, self.rate, now)
        if time.monotonic() >= self._redis_down_until:
            try:
                allowed, wait_ms, tokens = await self._script(
                    keys=[self.redis_key(key)],
                    args=[self.capacity, self.rate, cost, int(now * 1000)],
                )
            except Exception as exc:  # Redis down or slow: keep limiting, in process
                logger.warning(
                    "rate limiter falls back to memory (%s of each budget) for %s s: %r",
                    self.fallback_share,
                    self._down_seconds,
                    exc,
                )
                self._redis_down_until = time.monotonic() + self._down_seconds
            else:
                if self._falling_back:  # Redis is back: it is the truth again
                    self._falling_back = False
                    self.memory.clear()
                self._remember(key, float(tokens), now)
                return Decision(bool(allowed), int(wait_ms) / 1000)
        self._falling_back = True
        return self.memory.take(
            key,
            cost,
            self.capacity * self.fallback_share,
            self.rate * self.fallback_share,
            now,
            start=self._fallback_start(key, now),
            # an operation dearer than the share fits once the share is full, in debt
            in_debt=True,
        )

    def _remember(self, key: str, tokens: float, now: float) -> None:
        self._known[key] = (tokens, now)
        self._known.move_to_end(key)
        if len(self._known) > KNOWN_LEVELS:
            self._known.popitem(last=False)

    def _fallback_start(self, key: str, now: float) -> float:
        """A share of the level Redis last reported, refilled since (full if unknown)."""
        known = self._known.get(key)
        if known is None:
            level = self.capacity
        else:
            tokens, at = known
            level = min(self.capacity, tokens + max(0.0, now - at) * self.rate)
        return level * self.fallback_share


class RateLimited(AccessError):
    code = "RATE_LIMITED"
    default_message = "Too many requests; slow down."


def rate_limit(limiter: RateLimiter) -> type[SchemaExtension]:
    class RateLimit(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            context = self.execution_context
            request_context = context.context
            if context.operation_type in (
                OperationType.QUERY,
                OperationType.MUTATION,
            ) and hasattr(request_context, "viewer"):
                try:
                    viewer = await request_context.viewer()
                except Exception:  # a bad token, or the database is down: counted by
                    viewer = None  # address; the resolver then reports it (masked if unexpected)
                if viewer is not None:
                    key = f"{viewer.kind}:{viewer.actor_id}"
                else:
                    client = getattr(request_context.request, "client", None)
                    key = f"ip:{client.host if client else 'unknown'}"
                cost = max(1, getattr(context, "node_cost", 1))
                decision = await limiter.take(key, cost)
                if not decision.allowed:
                    retry = max(1, math.ceil(decision.retry_after))
                    context.result = ExecutionResult(
                        data=None,
                        errors=[
                            GraphQLError(
                                f"Too many requests; retry in {retry} s.",
                                extensions={"code": "RATE_LIMITED", "retryAfter": retry},
                            )
                        ],
                    )
            yield

    return RateLimit
