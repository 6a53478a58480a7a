"""The cost limiter when Redis stalls: two processes (two RateLimiter instances on one
private redis-server) must not each hand a viewer a fresh full bucket."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from app.schema.ratelimit import RateLimiter
from tests.ws_support import PrivateRedis, redis_server_binary

pytestmark = pytest.mark.skipif(
    redis_server_binary() is None, reason="redis-server is not installed"
)

CAPACITY = 100
WINDOW = 60  # seconds: refills CAPACITY / WINDOW (1.7) points a second


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis()
    await redis.start()
    try:
        yield redis
    finally:
        await redis.stop()


async def _stall(redis: PrivateRedis, how: str) -> None:
    if how == "paused":  # connections stay open, nothing answers (as under load)
        await redis.command("CLIENT", "PAUSE", "4000", "ALL")
    else:
        await redis.kill()


async def _spend_all(limiters: list[RateLimiter], key: str, attempts: int = 400) -> int:
    """Points the limiters serve together, one at a time, round robin, until all refuse."""
    served = 0
    for _ in range(attempts):
        progress = False
        for limiter in limiters:
            if (await limiter.take(key, 1)).allowed:
                served += 1
                progress = True
        if not progress:
            break
    return served


@pytest.mark.parametrize("how", ["paused", "killed"])
async def test_a_stall_does_not_give_each_process_a_full_bucket(private_redis, how, caplog):
    first = RateLimiter(private_redis.url, CAPACITY, WINDOW)
    second = RateLimiter(private_redis.url, CAPACITY, WINDOW)
    key = f"user:{uuid.uuid4().hex}"
    assert (await first.take(key, 60)).allowed
    assert (await second.take(key, 20)).allowed  # both have seen the viewer through Redis
    spent_at = time.monotonic()
    left = CAPACITY - 80
    await _stall(private_redis, how)
    with caplog.at_level(logging.WARNING, logger="app.ratelimit"):
        served = await _spend_all([first, second], key)
    # Tolerance: what the bucket refills, at the full rate, while this runs (a second or
    # so: each instance waits out one 0.25 s timeout), plus 1 for the fraction of a point.
    refill = (time.monotonic() - spent_at) * CAPACITY / WINDOW + 1
    assert served <= left + refill, f"{served} points served of the {left} left"
    assert served >= 2  # still serving: each process has its share
    assert "falls back to memory" in caplog.text


async def test_a_viewer_neither_process_has_seen_gets_at_most_one_bucket(private_redis):
    limiters = [RateLimiter(private_redis.url, CAPACITY, WINDOW) for _ in range(2)]
    for limiter in limiters:  # each has talked to Redis (about somebody else)
        assert (await limiter.take(f"user:{uuid.uuid4().hex}", 1)).allowed
    started = time.monotonic()
    await _stall(private_redis, "paused")
    served = await _spend_all(limiters, f"user:{uuid.uuid4().hex}")
    refill = (time.monotonic() - started) * CAPACITY / WINDOW + 1
    assert served <= CAPACITY + refill  # not CAPACITY per process
    assert served >= 2


async def test_a_costly_operation_still_fits_a_full_share(private_redis):
    limiter = RateLimiter(private_redis.url, CAPACITY, WINDOW, fallback_share=0.25)
    assert (await limiter.take("user:warm", 1)).allowed
    await _stall(private_redis, "killed")
    assert (await limiter.take("user:big", 60)).allowed  # dearer than a 25-point share
    refused = await limiter.take("user:big", 1)  # ...which it left in debt
    assert not refused.allowed
    assert refused.retry_after > 60 / WINDOW  # 35 points short at a quarter of the rate


async def test_redis_is_the_truth_again_once_it_answers(private_redis):
    first = RateLimiter(private_redis.url, CAPACITY, WINDOW, down_seconds=0.2)
    second = RateLimiter(private_redis.url, CAPACITY, WINDOW, down_seconds=0.2)
    key = f"user:{uuid.uuid4().hex}"
    assert (await first.take(key, 1)).allowed
    await private_redis.kill()
    assert await _spend_all([first], key) > 0  # memory, during the outage
    await private_redis.start()  # same port, empty
    await asyncio.sleep(0.3)  # past down_seconds
    # Shared again: what one spends, the other sees.
    assert (await first.take(key, CAPACITY)).allowed
    assert not (await second.take(key, CAPACITY / 2)).allowed


async def test_without_redis_memory_is_the_exact_store():
    limiter = RateLimiter("", CAPACITY, WINDOW)
    assert await _spend_all([limiter], "user:alone", attempts=CAPACITY + 10) == CAPACITY


async def test_two_deployments_on_one_redis_do_not_share_buckets(private_redis):
    """Rate-limit keys live under the deployment's prefix (BROADCAST_PREFIX, or the one
    derived from DATABASE_URL), as the pub/sub topics and the login throttle do."""
    from app.services.throttle import deployment_prefix
    from app.settings import Settings

    ours = deployment_prefix(Settings(broadcast_prefix="firm-a"))
    theirs = deployment_prefix(Settings(database_url="sqlite://./var/other.sqlite3"))
    assert ours != theirs
    day = 24 * 3600  # a point refills in 14 minutes: an empty bucket stays empty here
    first = RateLimiter(private_redis.url, CAPACITY, day, key_prefix=ours)
    second = RateLimiter(private_redis.url, CAPACITY, day, key_prefix=theirs)
    key = f"user:{uuid.uuid4().hex}"
    assert (await first.take(key, CAPACITY)).allowed
    assert not (await first.take(key, 1)).allowed  # the first deployment's bucket is empty
    assert (await second.take(key, CAPACITY)).allowed  # the other's is full: not shared
    keys = sorted(k.decode() for k in await private_redis.command("KEYS", "*ratelimit:*"))
    assert keys == sorted([f"{ours}ratelimit:{key}", f"{theirs}ratelimit:{key}"])
