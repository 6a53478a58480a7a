"""Authentication failure throttling (app/services/throttle.py): the policy on Redis (a
private redis-server) and on memory alone (REDIS_URL empty), two processes sharing
Redis, and what a process does alone while Redis stalls."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from app.services import throttle
from app.services.throttle import Throttle, Throttled
from app.settings import get_settings
from app.subscriptions.hub import namespace_for
from tests.ws_support import PrivateRedis, redis_server_binary

pytestmark = pytest.mark.skipif(
    redis_server_binary() is None, reason="redis-server is not installed"
)

START = 1_750_000_000.0


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis()
    await redis.start()
    try:
        yield redis
    finally:
        await redis.stop()


@pytest.fixture(params=["redis", "memory"])
async def store(request) -> AsyncIterator[str]:
    """The Redis URL of a Throttle: a private server's, or empty (memory is the store)."""
    if request.param == "memory":
        yield ""
        return
    redis = PrivateRedis()
    await redis.start()
    try:
        yield redis.url
    finally:
        await redis.stop()


def _account() -> str:
    return f"account:{uuid.uuid4().hex}@example.com"


async def _retry_after(t: Throttle, keys: list[str], scope: str = "login") -> int | None:
    try:
        await t.check(scope, keys)
    except Throttled as exc:
        return exc.retry_after
    return None


async def _fail(t: Throttle, keys: list[str], times: int, scope: str = "login") -> None:
    for _ in range(times):
        await t.failed(scope, keys)


async def test_five_failures_lock_the_account_for_a_while(store):
    clock = Clock()
    t = Throttle(store, clock=clock)
    me = [_account()]
    await _fail(t, me, 4)
    assert await _retry_after(t, me) is None
    await t.failed("login", me)
    assert await _retry_after(t, me) == 60
    clock.advance(0.5)
    assert await _retry_after(t, me) == 60  # whole seconds, rounded up
    clock.advance(59)
    assert await _retry_after(t, me) == 1
    clock.advance(0.5)
    assert await _retry_after(t, me) is None
    # another scope and another account are not affected
    assert await _retry_after(t, me, scope="reset") is None
    assert await _retry_after(t, [_account()]) is None


async def test_the_address_limit_is_separate_and_larger(store):
    t = Throttle(store, clock=Clock())
    address = "address:203.0.113.7"
    for _ in range(19):  # nineteen accounts tried once each from one address
        await t.failed("login", [_account(), address])
    assert await _retry_after(t, [_account(), address]) is None
    await t.failed("login", [_account(), address])
    assert await _retry_after(t, [_account(), address]) == 60  # any account from there
    assert await _retry_after(t, [_account(), "address:198.51.100.1"]) is None


async def test_a_success_clears_the_failures(store):
    t = Throttle(store, clock=Clock())
    me = [_account()]
    await _fail(t, me, 4)
    await t.succeeded("login", me)
    await _fail(t, me, 4)
    assert await _retry_after(t, me) is None  # 8 failures, but 4 since the success
    await t.failed("login", me)
    assert await _retry_after(t, me) == 60
    await t.succeeded("login", me)  # a lockout too
    assert await _retry_after(t, me) is None


async def test_each_failure_over_the_limit_doubles_the_delay(store):
    clock = Clock()
    t = Throttle(store, clock=clock)
    me = [_account()]
    await _fail(t, me, 5)
    delays = [await _retry_after(t, me)]
    for _ in range(5):
        clock.advance(delays[-1])  # wait it out, then fail again
        assert await _retry_after(t, me) is None
        await t.failed("login", me)
        delays.append(await _retry_after(t, me))
    assert delays == [60, 120, 240, 480, 900, 900]  # capped at the window
    # A whole window without a lockout: forgiven, the next failure does not lock.
    clock.advance(900 + 900)
    await t.failed("login", me)
    assert await _retry_after(t, me) is None


async def test_two_processes_count_the_same_failures(private_redis):
    clock = Clock()
    first = Throttle(private_redis.url, clock=clock)
    second = Throttle(private_redis.url, clock=clock)
    me = [_account()]
    await _fail(first, me, 3)
    await _fail(second, me, 2)
    assert await _retry_after(first, me) == 60
    assert await _retry_after(second, me) == 60
    await second.succeeded("login", me)
    assert await _retry_after(first, me) is None


async def test_counters_live_under_the_deployment_namespace(private_redis, monkeypatch):
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    get_settings.cache_clear()
    throttle.get_throttle.cache_clear()
    try:
        settings = get_settings()
        me = _account()
        await throttle.failed("reset", [me])
        name = namespace_for(settings.database_url, settings.broadcast_prefix)
        name += f"throttle:reset:{me}"
        assert await private_redis.command("EXISTS", name) == 1
        ttl = await private_redis.command("TTL", name)
        assert 0 < ttl <= settings.auth_failure_window_seconds
    finally:
        await throttle.get_throttle().aclose()
        monkeypatch.undo()
        get_settings.cache_clear()
        throttle.get_throttle.cache_clear()


async def test_the_process_wide_throttle_follows_the_settings(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("AUTH_FAILURES_PER_ACCOUNT", "2")
    get_settings.cache_clear()
    throttle.get_throttle.cache_clear()
    try:
        me = [_account()]
        await throttle.check("two-factor", me)
        await throttle.failed("two-factor", me)
        await throttle.check("two-factor", me)
        await throttle.failed("two-factor", me)
        with pytest.raises(Throttled) as locked:
            await throttle.check("two-factor", me)
        assert locked.value.retry_after == 60
        await throttle.succeeded("two-factor", me)
        await throttle.check("two-factor", me)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        throttle.get_throttle.cache_clear()


# --- Redis stalls -------------------------------------------------------------------------


async def _stall(redis: PrivateRedis, how: str) -> None:
    if how == "paused":  # connections stay open, nothing answers (as under load)
        await redis.command("CLIENT", "PAUSE", "5000", "ALL")
    else:
        await redis.kill()


async def _failures_until_locked(t: Throttle, keys: list[str], most: int = 50) -> int:
    for failures in range(most):
        if await _retry_after(t, keys) is not None:
            return failures
        await t.failed("login", keys)
    return most


@pytest.mark.parametrize("how", ["paused", "killed"])
async def test_a_stall_does_not_give_each_process_the_full_budget(private_redis, how, caplog):
    clock = Clock()
    first = Throttle(private_redis.url, clock=clock)
    second = Throttle(private_redis.url, clock=clock)
    for t in (first, second):  # both have been talking to Redis
        await t.failed("login", [_account()])
    me = [_account()]
    await _stall(private_redis, how)
    with caplog.at_level(logging.WARNING, logger="app.throttle"):
        allowed = [await _failures_until_locked(t, me) for t in (first, second)]
    # Each process alone allows a share of the 5 (at least 1), both together at most 5.
    assert all(1 <= n < 5 for n in allowed), allowed
    assert sum(allowed) <= 5, allowed
    warnings = [r for r in caplog.records if r.name == "app.throttle"]
    assert len(warnings) == 2  # once per process and outage, not once per call
    assert "Redis does not answer" in warnings[0].getMessage()


async def test_a_long_outage_warns_once(private_redis, caplog):
    t = Throttle(private_redis.url, clock=Clock(), down_seconds=0.05)
    await private_redis.kill()
    with caplog.at_level(logging.INFO, logger="app.throttle"):
        for _ in range(3):  # Redis is asked again each time, and still does not answer
            await asyncio.sleep(0.06)
            await t.failed("login", [_account()])
        await private_redis.start()
        await asyncio.sleep(0.06)
        await t.failed("login", [_account()])
    messages = [r.getMessage() for r in caplog.records if r.name == "app.throttle"]
    assert len(messages) == 2, messages
    assert "Redis does not answer" in messages[0]
    assert "Redis answers again" in messages[1]


async def test_a_lockout_redis_reported_holds_through_a_stall(private_redis):
    clock = Clock()
    t = Throttle(private_redis.url, clock=clock)
    me, nearly = [_account()], [_account()]
    await _fail(t, me, 5)
    await _fail(t, nearly, 4)
    clock.advance(30)
    await _stall(private_redis, "paused")
    assert await _retry_after(t, me) == 30
    await t.failed("login", nearly)  # the 5th, counted in memory: locked as in Redis
    assert await _retry_after(t, nearly) == 60


async def test_redis_is_the_truth_again_once_it_answers(private_redis):
    clock = Clock()
    first = Throttle(private_redis.url, clock=clock, down_seconds=0.2)
    second = Throttle(private_redis.url, clock=clock, down_seconds=0.2)
    me = [_account()]
    await private_redis.kill()
    await first.failed("login", me)
    await private_redis.start()  # same port, empty
    await asyncio.sleep(0.3)  # past down_seconds
    await _fail(first, me, 4)
    assert await _retry_after(first, me) is None  # Redis counts again (without the stall)
    await second.failed("login", me)  # ...and both count in Redis again
    assert await _retry_after(first, me) == 60
