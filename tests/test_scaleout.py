"""Fan-out through Redis: outages and scale-out, for real.

- Redis killed mid-stream, then restarted: subscriptions end loudly (never a silent hang),
  mutations keep working (the messages are saved, their events wait for the relay), and a
  client resuming with its cursor gets everything sent meanwhile, once.
- Only the pub/sub connection killed (`CLIENT KILL TYPE pubsub`), and a Redis that stops
  answering (`CLIENT PAUSE`): detected within seconds, the hub reconnects by itself.
- Two uvicorn processes behind one Redis: what is sent through one reaches a subscriber
  of the other.

Each Redis-killing test starts a redis-server of its own on a free port (never the shared
one) and points a separately built app at it. They need Redis and a database two processes
can share, so they run on the PostgreSQL backend only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.models import Event, Message
from app.services import outbox
from app.settings import get_settings
from app.subscriptions import topics
from app.subscriptions.hub import namespace_for
from tests.factories import PASSWORD, Account, make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.test_chat import MESSAGE_ADDED, SEND
from tests.ws_support import (
    WAIT,
    Feed,
    PrivateRedis,
    error_codes_of,
    free_port,
    redis_server_binary,
    serve,
    settings_with,
    wait_until,
    ws_session,
)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed"),
]


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis()
    await redis.start()
    try:
        yield redis
    finally:
        await redis.stop()


async def _send(http: httpx.AsyncClient, account: Account, dossier_id, content: str) -> dict:
    variables = {"input": {"dossierId": str(dossier_id), "content": content}}
    result = (await gql(http, SEND, variables, token=account.token))["sendMessage"]
    assert result["userErrors"] == []
    return result


@contextlib.asynccontextmanager
async def _resumed(
    url: str, token: str, dossier_id, after: str, expect: int, within: float = 10
) -> AsyncIterator[tuple[Feed, list[str]]]:
    """Resubscribe with `after` until the server takes it (while Redis is away it refuses,
    loudly), and read the `expect` replayed messages; yields the live feed and their ids."""
    deadline = time.monotonic() + within
    variables = {"dossierId": str(dossier_id), "after": after}
    while True:
        async with ws_session(url, token) as session:
            feed = Feed(session, MESSAGE_ADDED, variables).start()
            items, ended = await feed.collect(expect)
            if ended is None:
                try:
                    yield feed, [i["messageAdded"]["node"]["id"] for i in items]
                finally:
                    await feed.stop()
                return
            await feed.stop()
        assert error_codes_of(ended.error) == ["STREAM_INTERRUPTED"], ended.error
        if time.monotonic() > deadline:
            raise AssertionError(f"could not resubscribe within {within}s")
        await asyncio.sleep(0.2)


async def test_redis_killed_mid_stream_then_restarted(private_redis):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    async with (
        serve(settings_with(redis_url=private_redis.url)) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
        ws_session(server.ws_url, agent.token) as session,
    ):
        hub = server.app.state.hub
        channel = topics.dossier_messages(dossier.id)
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        await wait_until(lambda: hub.subscriber_count(channel) == 1)
        first = await _send(http, owner, dossier.id, "before the outage")
        got = (await feed.next())["messageAdded"]
        assert got["node"]["id"] == first["message"]["id"]

        await private_redis.kill()
        killed = time.monotonic()
        items, ended = await feed.until_end(within=WAIT)
        assert items == []
        assert error_codes_of(ended.error) == ["STREAM_INTERRUPTED"]  # loud, not a hang
        assert time.monotonic() - killed < 3

        # Redis is down: sending still works, the messages are saved; their events wait.
        during = [await _send(http, owner, dossier.id, f"during {i}") for i in range(3)]
        ids = [d["message"]["id"] for d in during]
        assert await Message.filter(id__in=ids).count() == 3
        # Their dispatches run once each answer is sent: wait until they have been tried.
        assert await outbox.drain(within=WAIT)
        waiting = await Event.filter(entity_id__in=ids, processed_at=None, published_at=None)
        assert len(waiting) == 3

        await private_redis.start()
        async with _resumed(server.ws_url, agent.token, dossier.id, got["cursor"], expect=3) as (
            resumed,
            replayed,
        ):
            assert replayed == ids  # everything sent meanwhile, in order, once
            after = await _send(http, owner, dossier.id, "after the outage")
            live = (await resumed.next())["messageAdded"]["node"]["id"]
            assert live == after["message"]["id"]
            # The relay publishes what was not published; the subscriber drops repeats.
            assert await outbox.dispatch([e.id for e in waiting]) == 3
            assert await Event.filter(entity_id__in=ids, processed_at=None).count() == 0
            assert await Event.filter(entity_id__in=ids, published_at=None).count() == 0
            assert await resumed.quiet(0.5) == []


async def test_the_pubsub_connection_alone_killed(private_redis):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    async with (
        serve(settings_with(redis_url=private_redis.url)) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
        ws_session(server.ws_url, owner.token) as session,
    ):
        hub = server.app.state.hub
        channel = topics.dossier_messages(dossier.id)
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        await wait_until(lambda: hub.subscriber_count(channel) == 1)
        first = await _send(http, agent, dossier.id, "one")
        cursor = (await feed.next())["messageAdded"]["cursor"]
        generation = hub.generation

        killed = await private_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 1
        # Sent right away: Redis is up, so the publish succeeds, but nobody listens.
        lost_live = await _send(http, agent, dossier.id, "two")
        items, ended = await feed.until_end(within=WAIT)
        assert error_codes_of(ended.error) == ["STREAM_INTERRUPTED"]
        assert [i["messageAdded"]["node"]["id"] for i in items] in (
            [],
            [lost_live["message"]["id"]],
        )
        await wait_until(lambda: hub.is_up and hub.generation > generation, what="reconnect")

        async with _resumed(server.ws_url, owner.token, dossier.id, cursor, expect=1) as (
            resumed,
            replayed,
        ):
            assert replayed == [lost_live["message"]["id"]]
            third = await _send(http, agent, dossier.id, "three")
            assert (await resumed.next())["messageAdded"]["node"]["id"] == third["message"]["id"]
        assert first["message"]["id"] != third["message"]["id"]


async def test_a_silent_redis_is_detected_by_the_heartbeat(private_redis):
    owner = await make_client()
    dossier = await make_dossier(owner)
    settings = settings_with(
        redis_url=private_redis.url, redis_heartbeat_seconds=0.2, redis_dead_after_seconds=1.0
    )
    async with serve(settings) as server, ws_session(server.ws_url, owner.token) as session:
        hub = server.app.state.hub
        channel = topics.dossier_messages(dossier.id)
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        await wait_until(lambda: hub.subscriber_count(channel) == 1)
        # The connection stays open but Redis stops answering (as a network partition).
        await private_redis.command("CLIENT", "PAUSE", "3000", "ALL")
        paused = time.monotonic()
        _items, ended = await feed.until_end(within=WAIT)
        assert error_codes_of(ended.error) == ["STREAM_INTERRUPTED"]
        assert time.monotonic() - paused < 2.5
        await wait_until(lambda: hub.is_up, within=10, what="reconnected after the pause")


# --- two processes ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _uvicorn_process(database_url: str, redis_url: str) -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1", "--port", str(port)),
        *("--log-level", "warning", "--timeout-graceful-shutdown", "2"),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    async def healthy() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"uvicorn exited: {(await process.stderr.read()).decode()}")  # type: ignore[union-attr]
        try:
            async with httpx.AsyncClient(base_url=url, timeout=1) as probe:
                return (await probe.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await wait_until(healthy, within=30, what=f"uvicorn on {port}")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _subscribers(redis_url: str, channel: str) -> int:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        return dict(await client.pubsub_numsub(channel)).get(channel.encode(), 0)
    finally:
        await client.aclose()


async def test_two_processes_share_live_updates(database_url, backend):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    channel = namespace_for(database_url) + topics.dossier_messages(dossier.id)
    async with (
        _uvicorn_process(database_url, backend.redis_url) as first,
        _uvicorn_process(database_url, backend.redis_url) as second,
    ):
        for subscriber_url, sender_url, author, reader in (
            (first, second, owner, agent),
            (second, first, agent, owner),
        ):
            ws_url = subscriber_url.replace("http://", "ws://") + "/graphql"
            async with (
                ws_session(ws_url, reader.token) as session,
                httpx.AsyncClient(base_url=sender_url) as http,
            ):
                feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
                try:
                    # live on the subscriber's process before sending through the other one
                    await wait_until(
                        lambda: _subscribers(backend.redis_url, channel), what="subscribed"
                    )
                    sent = await _send(http, author, dossier.id, f"via {sender_url}")
                    got = (await feed.next())["messageAdded"]["node"]
                    assert got["id"] == sent["message"]["id"]
                    assert got["content"] == f"via {sender_url}"
                finally:
                    await feed.stop()

            async def gone() -> bool:
                return await _subscribers(backend.redis_url, channel) == 0

            await wait_until(gone, what="unsubscribed")


LOGIN = """
mutation($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) { token userErrors { code retryAfter } }
}
"""


async def _login_codes(http: httpx.AsyncClient, email: str, password: str) -> list[str]:
    response = await http.post(
        "/graphql", json={"query": LOGIN, "variables": {"email": email, "password": password}}
    )
    return [e["code"] for e in response.json()["data"]["login"]["userErrors"]]


async def test_two_processes_share_login_lockouts(database_url, backend):
    """Failures counted by either process lock the account, then the address, on both."""
    settings = get_settings()
    victim, bystander = await make_client(), await make_client()
    async with (
        _uvicorn_process(database_url, backend.redis_url) as first,
        _uvicorn_process(database_url, backend.redis_url) as second,
        httpx.AsyncClient(base_url=first) as a,
        httpx.AsyncClient(base_url=second) as b,
    ):
        for n in range(settings.auth_failures_per_account):
            http = (a, b)[n % 2]
            assert await _login_codes(http, victim.email, "wrong-guess-123") == [
                "INVALID_CREDENTIALS"
            ]
        for http in (a, b):  # locked everywhere, even with the right password
            assert await _login_codes(http, victim.email, PASSWORD) == ["RATE_LIMITED"]
        assert await _login_codes(a, bystander.email, PASSWORD) == []  # others unaffected

        left = settings.auth_failures_per_address - settings.auth_failures_per_account
        for n in range(left):  # one address guessing other accounts, through both
            http = (b, a)[n % 2]
            assert await _login_codes(http, f"guess-{n}@example.com", "wrong-guess-123") == [
                "INVALID_CREDENTIALS"
            ]
        for http in (a, b):
            assert await _login_codes(http, bystander.email, PASSWORD) == ["RATE_LIMITED"]
