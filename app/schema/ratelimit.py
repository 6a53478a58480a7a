"""Per-user rate limiting by query cost: a token bucket per viewer (or per client address
when anonymous), kept in Redis so every process shares it, and in process memory when
Redis is not configured or does not answer (the limit keeps working, per process).

An operation's cost is its node budget count (see app/schema/limits.py), at least 1.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.errors import AccessError

logger = logging.getLogger("app.ratelimit")

# KEYS[1] bucket; ARGV capacity, refill per second, cost, now (ms).
# Returns {allowed (0/1), milliseconds until enough tokens}.
TOKEN_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) / 1000 * rate)
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
return {allowed, wait}
"""


@dataclass
class Decision:
    allowed: bool
    retry_after: float  # seconds


class MemoryBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, cost: float, capacity: float, rate: float, now: float) -> Decision:
        tokens, at = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return Decision(True, 0.0)
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > 100_000:  # bound memory: forget the oldest buckets
            for old in sorted(self._buckets, key=lambda k: self._buckets[k][1])[:50_000]:
                del self._buckets[old]
        return Decision(False, (cost - tokens) / rate)


class RateLimiter:
    """Redis when configured and answering; process memory otherwise."""

    def __init__(self, redis_url: str, capacity: int, per_seconds: int) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / per_seconds
        self.memory = MemoryBuckets()
        self._redis = None
        self._script = None
        self._redis_down_until = 0.0
        if redis_url:
            import redis.asyncio as redis

            self._redis = redis.from_url(
                redis_url, socket_timeout=0.25, socket_connect_timeout=0.25
            )
            self._script = self._redis.register_script(TOKEN_BUCKET_LUA)

    async def take(self, key: str, cost: float) -> Decision:
        now = time.time()
        if self._script is not None and now >= self._redis_down_until:
            try:
                allowed, wait_ms = await self._script(
                    keys=[f"ratelimit:{key}"],
                    args=[self.capacity, self.rate, cost, int(now * 1000)],
                )
                return Decision(bool(allowed), int(wait_ms) / 1000)
            except Exception as exc:  # Redis down or slow: keep limiting, in process
                logger.warning("rate limiter falls back to memory: %s", exc)
                self._redis_down_until = now + 5
        return self.memory.take(key, cost, self.capacity, self.rate, now)


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
