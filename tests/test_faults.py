"""Faults, for real, with "nothing lost" checked in the database afterwards.

- PostgreSQL crashed and restarted under chat load (a private cluster, never the shared
  one): requests fail fast and masked during the outage, then succeed again with no app
  restart; a Stripe webhook answers 503 during the outage and is processed once after;
  every acknowledged message is stored once with its event, and the worker's relay leaves
  no event unprocessed.
- Database connections killed with `pg_terminate_backend` mid-traffic: the same.
- Redis (a private redis-server) frozen with SIGSTOP, then killed and restarted, during a
  chat: sending keeps working, subscriptions end loudly and resume from their cursor with no
  gap and no duplicate, and the relay drains the backlog (every event published and
  processed).
- SMTP and Twilio both down (connection refused), then back: each delivery sent once.
- SIGTERM to a real server holding 50 WebSockets: each client gets close code 1012, the
  process exits within its 10 s grace period, and the backlog is intact.
- The worker killed with -9 mid-batch: its claims expire and a second worker sends each
  delivery exactly once.

All under the `faults` marker, in this one file, so they run one after the other
(`pytest -m faults`); every wait is bounded. Those that need PostgreSQL, redis-server or
the PostgreSQL server binaries are skipped without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.models import Event, Message, NotificationDelivery
from app.models.enums import EventType, NotificationChannel, NotificationStatus
from app.services import outbox
from app.services.delivery import deliver_due
from app.subscriptions import topics
from tests import stripe_support as ss
from tests.factories import make_agent, make_client, make_dossier
from tests.faults_support import (
    Attempt,
    ChatLoad,
    PrivatePostgres,
    SlowTwilio,
    app_command,
    app_env,
    ask,
    free_port,
    is_masked_failure,
    login,
    postgres_bin,
    serve_in_loop,
    web_process,
    worker_process,
)
from tests.notifications_support import (
    TWILIO_SID,
    SmtpPeer,
    TwilioPeer,
    _twilio_app,
    peer_settings,
    pending_deliveries,
)
from tests.test_chat import MESSAGE_ADDED
from tests.ws_support import (
    WAIT,
    Feed,
    PrivateRedis,
    error_codes_of,
    redis_server_binary,
    serve,
    settings_with,
    wait_until,
    ws_session,
)

pytestmark = pytest.mark.faults
needs_cluster = pytest.mark.skipif(
    postgres_bin() is None, reason="the PostgreSQL server binaries (initdb, pg_ctl) are missing"
)
needs_redis_server = pytest.mark.skipif(
    redis_server_binary() is None, reason="redis-server is not installed"
)
FAST = 3.0  # seconds: the longest a request may take to fail while PostgreSQL is down
RECOVERY = 5.0  # seconds after PostgreSQL is back by which every request succeeds again
PROTOCOL = "graphql-transport-ws"
report = logging.getLogger("tests.faults").warning  # the figures, in the test log


# --- invariants ---------------------------------------------------------------------------


async def _fetch(database_url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def assert_messages_kept(database_url: str, attempts: list[Attempt], prefix: str) -> None:
    """Every acknowledged message is stored once, with what was sent; every stored message
    has exactly one MESSAGE_SENT event (nothing half-written by a failed request)."""
    rows = await _fetch(
        database_url, "SELECT id::text, content FROM messages WHERE content LIKE $1", prefix + "-%"
    )
    stored = {row["id"]: row["content"] for row in rows}
    assert all(n == 1 for n in Counter(stored.values()).values()), "a message stored twice"
    acknowledged = {a.message_id: a.content for a in attempts if a.ok}
    assert acknowledged, "no message was acknowledged"
    for message_id, content in acknowledged.items():
        assert stored.get(message_id) == content, f"acknowledged {content} is not stored"
    events = await _fetch(
        database_url,
        "SELECT entity_id::text AS id, count(*) AS n FROM events "
        "WHERE event_type = 'MESSAGE_SENT' AND entity_id::text = ANY($1::text[]) GROUP BY 1",
        list(stored),
    )
    assert {row["id"]: row["n"] for row in events} == dict.fromkeys(stored, 1)
    sent = {a.content for a in attempts}
    assert set(stored.values()) <= sent  # nothing invented


async def assert_relay_drains(database_url: str, within: float = 20) -> None:
    """The real worker's relay leaves no event unprocessed or unpublished."""
    env = app_env(DATABASE_URL=database_url)
    sql = "SELECT count(*) AS n FROM events WHERE processed_at IS NULL OR published_at IS NULL"
    async with worker_process(env) as worker:

        async def drained() -> bool:
            assert worker.process.returncode is None, worker.output()
            return (await _fetch(database_url, sql))[0]["n"] == 0

        await wait_until(drained, within=within, what="the relay to drain the backlog")
        assert await worker.stop() == 0


def assert_failures_masked_and_fast(attempts: list[Attempt]) -> list[Attempt]:
    failed = [a for a in attempts if not a.ok]
    for attempt in failed:
        assert is_masked_failure(attempt), (attempt.status, attempt.body, attempt.error)
        assert attempt.seconds < FAST, f"a request took {attempt.seconds:.1f}s to fail"
    return failed


# --- a private PostgreSQL cluster and a database on it ------------------------------------


@dataclass
class FaultsDatabase:
    cluster: PrivatePostgres
    name: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        await pg.create()
        await pg.start()
        yield pg
    finally:
        await pg.destroy()


@pytest.fixture(scope="module")
async def faults_db(cluster: PrivatePostgres) -> FaultsDatabase:
    """A database on the private cluster, migrated and seeded with the demo world by the
    app's own commands."""
    name = f"faults_{uuid.uuid4().hex[:8]}"
    await cluster.execute(f'CREATE DATABASE "{name}"')
    db = FaultsDatabase(cluster, name)
    env = app_env(DATABASE_URL=db.url)
    await app_command("migrate", env=env)
    await app_command("seed", env=env)
    return db


async def _demo(http: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    tokens = {who: await login(http, f"{who}@demo.test") for who in ("client", "agent", "admin")}
    data = await ask(http, tokens["client"], "{ dossiers(first: 1) { nodes { id } } }")
    return tokens, data["dossiers"]["nodes"][0]["id"]


CREATE_LINK = """
mutation($input: CreatePaymentLinkInput!) {
  createPaymentLink(input: $input) { paymentLink { token } userErrors { code } }
}
"""
REGISTER = """
mutation($input: RegisterWithPaymentLinkInput!) {
  registerWithPaymentLink(input: $input) { order { id } userErrors { code message } }
}
"""


async def _order_awaiting_payment(
    http: httpx.AsyncClient, admin_token: str, stand_in: Any
) -> tuple[str, dict[str, Any]]:
    """A prospect registered through a payment link; returns the order and the signed-able
    `checkout.session.completed` event Stripe would send once they paid."""
    product = await ask(http, admin_token, '{ product(code: "RESIDENCE_PERMIT") { id } }')
    email = f"prospect-{uuid.uuid4().hex[:8]}@example.com"
    link_input = {
        "productId": product["product"]["id"],
        "prospectEmail": email,
        "prospectName": "Pat",
    }
    link = (await ask(http, admin_token, CREATE_LINK, {"input": link_input}))["createPaymentLink"]
    registration = {
        "token": link["paymentLink"]["token"],
        "fullName": "Pat Prospect",
        "phone": "06 12 34 56 78",
        "password": "a-good-password",
    }
    registered = (await ask(http, None, REGISTER, {"input": registration}))[
        "registerWithPaymentLink"
    ]
    assert registered["userErrors"] == [], registered
    order_id = registered["order"]["id"]
    session = next(s for s in stand_in.sessions.values() if s["client_reference_id"] == order_id)
    paid = {
        **session,
        "payment_status": "paid",
        "status": "complete",
        "payment_intent": f"pi_{uuid.uuid4().hex[:16]}",
    }
    return order_id, ss.event("checkout.session.completed", paid)


async def _post_event(http: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    body = ss.dumps(event)
    headers = {"stripe-signature": ss.sign(body), "content-type": "application/json"}
    return await http.post("/webhooks/stripe", content=body, headers=headers)


@pytest.mark.postgres
@needs_cluster
async def test_postgresql_crashed_and_restarted_under_load(faults_db, stand_in, backend):
    pg = faults_db.cluster
    env = app_env(
        DATABASE_URL=faults_db.url,
        REDIS_URL=backend.redis_url,
        STRIPE_SECRET_KEY="sk_test_" + "k" * 24,
        STRIPE_WEBHOOK_SECRET=ss.WEBHOOK_SECRET,
        STRIPE_API_BASE=stand_in.url,
    )
    async with (
        web_process(env) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        contextlib.AsyncExitStack() as cleanup,
    ):
        cleanup.push_async_callback(pg.ensure_running)  # whatever happens below
        tokens, dossier_id = await _demo(http)
        order_id, paid = await _order_awaiting_payment(http, tokens["admin"], stand_in)
        load = ChatLoad(server.url, dossier_id, [tokens["client"], tokens["agent"]])
        await cleanup.enter_async_context(load)
        await wait_until(lambda: load.ok_since(0) >= 10, what="traffic")

        await pg.stop("immediate")  # a crash: no checkpoint, recovery at restart
        down = time.monotonic()
        during = await _post_event(http, paid)
        assert during.status_code == 503  # Stripe will deliver it again
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("error")
        await asyncio.sleep(2.0)  # the outage, under load
        restarting = time.monotonic()
        await pg.start()
        up = time.monotonic()

        # Stripe retries (with backoff); the first attempts may meet dead pooled connections.
        outcomes = []
        for _ in range(10):
            retried = await _post_event(http, paid)
            outcomes.append(retried.status_code)
            if retried.status_code == 200:
                break
            await asyncio.sleep(0.3)
        assert outcomes[-1] == 200, outcomes
        assert retried.json()["outcome"] == "processed"
        assert (await _post_event(http, paid)).json()["outcome"] == "duplicate"
        await wait_until(lambda: load.ok_since(up + RECOVERY) >= 10, within=15, what="recovery")
        attempts = await load.stop()
        assert server.process.returncode is None  # the same process all along
        assert (await http.get("/readyz")).status_code == 200

    outage = [a for a in attempts if down < a.started and a.started + a.seconds < restarting]
    assert outage, "no request was made during the outage"
    assert not any(a.ok for a in outage), [
        (round(a.started - down, 2), round(a.seconds, 2)) for a in outage if a.ok
    ]
    failed = assert_failures_masked_and_fast(attempts)
    assert len(failed) >= len(outage)
    late = [a for a in attempts if a.started >= up + RECOVERY]
    assert late, "no request after the recovery"
    assert all(a.ok for a in late), [a.body for a in late if not a.ok][:3]
    first_ok = min(a.started for a in attempts if a.started >= up and a.ok)
    assert first_ok - up < RECOVERY
    report(
        "PostgreSQL crash: %d requests, %d failed (slowest failure %.2fs), outage %.1fs, "
        "first success %.2fs after restart, webhook attempts after restart %s",
        len(attempts),
        len(failed),
        max(a.seconds for a in failed),
        up - down,
        first_ok - up,
        outcomes,
    )

    await assert_messages_kept(faults_db.url, attempts, load.prefix)
    order = (
        await _fetch(
            faults_db.url,
            "SELECT status, dossier_id FROM orders WHERE id = $1",
            uuid.UUID(order_id),
        )
    )[0]
    assert order["status"] == "PAID"
    assert order["dossier_id"] is not None
    handled = await _fetch(
        faults_db.url,
        "SELECT count(*) AS n FROM stripe_events WHERE stripe_event_id = $1",
        paid["id"],
    )
    assert handled[0]["n"] == 1
    opened = await _fetch(
        faults_db.url,
        "SELECT count(*) AS n FROM events WHERE event_type = 'DOSSIER_CREATED' AND entity_id = $1",
        order["dossier_id"],
    )
    assert opened[0]["n"] == 1  # one dossier, opened once
    await assert_relay_drains(faults_db.url)


@pytest.mark.postgres
@needs_cluster
async def test_connections_killed_mid_traffic(faults_db, backend):
    env = app_env(DATABASE_URL=faults_db.url, REDIS_URL=backend.redis_url)
    async with (
        web_process(env) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        contextlib.AsyncExitStack() as cleanup,
    ):
        tokens, dossier_id = await _demo(http)
        load = ChatLoad(server.url, dossier_id, [tokens["client"], tokens["agent"]], gap=0.0)
        await cleanup.enter_async_context(load)
        await wait_until(lambda: load.ok_since(0) >= 10, what="traffic")
        killed = 0
        for _ in range(3):
            rows = await faults_db.cluster.execute(
                "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE datname = $1",
                faults_db.name,
            )
            killed += sum(1 for row in rows if row["done"])
            await asyncio.sleep(0.4)
        last_kill = time.monotonic()
        await wait_until(lambda: load.ok_since(last_kill + 1) >= 10, within=10, what="recovery")
        attempts = await load.stop()
        assert server.process.returncode is None

    assert killed >= 3  # the app's connections, every round
    failed = assert_failures_masked_and_fast(attempts)
    report(
        "pg_terminate_backend: %d backends killed, %d requests, %d failed",
        killed,
        len(attempts),
        len(failed),
    )
    late = [a for a in attempts if a.started >= last_kill + 1]
    assert late, "no request after the recovery"
    assert all(a.ok for a in late), [a.body for a in late if not a.ok][:3]
    await assert_messages_kept(faults_db.url, attempts, load.prefix)
    await assert_relay_drains(faults_db.url)


# --- Redis frozen, killed and restarted during a chat -------------------------------------


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis()
    await redis.start()
    try:
        yield redis
    finally:
        with contextlib.suppress(ProcessLookupError):
            if redis.process is not None:
                os.kill(redis.process.pid, signal.SIGCONT)
        await redis.stop()


SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id } cursor userErrors { code message } }
}
"""


@contextlib.asynccontextmanager
async def _resume(
    url: str, token: str, dossier_id: str, after: str, expect: int, within: float = 15
) -> AsyncIterator[tuple[Feed, list[dict[str, Any]]]]:
    """Subscribe again with `after` until the server takes it (while Redis is away it
    refuses, loudly), and read the `expect` messages it replays first."""
    deadline = time.monotonic() + within
    while True:
        async with ws_session(url, token) as session:
            feed = Feed(session, MESSAGE_ADDED, {"dossierId": dossier_id, "after": after}).start()
            items, ended = await feed.collect(expect, within=WAIT)
            if ended is None:
                try:
                    yield feed, [i["messageAdded"] for i in items]
                finally:
                    await feed.stop()
                return
            await feed.stop()
        assert error_codes_of(ended.error) == ["STREAM_INTERRUPTED"], ended.error
        assert time.monotonic() < deadline, f"could not resubscribe within {within}s"
        await asyncio.sleep(0.2)


@pytest.mark.postgres
@needs_redis_server
async def test_redis_frozen_then_killed_during_chat(private_redis):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    dossier_id = str(dossier.id)
    settings = settings_with(
        redis_url=private_redis.url, redis_heartbeat_seconds=0.2, redis_dead_after_seconds=1.0
    )
    sent: list[str] = []
    latencies: dict[str, float] = {}

    async with (
        serve(settings) as server,
        httpx.AsyncClient(base_url=server.http_url, timeout=15) as http,
    ):
        hub = server.app.state.hub
        channel = topics.dossier_messages(dossier.id)

        async def send(text: str) -> dict[str, Any]:
            started = time.monotonic()
            variables = {"input": {"dossierId": dossier_id, "content": text}}
            data = await ask(http, agent.token, SEND, variables)
            latencies[text] = time.monotonic() - started
            result = data["sendMessage"]
            assert result["userErrors"] == [], result
            sent.append(result["message"]["id"])
            return result

        # 1. live, then Redis frozen (SIGSTOP): connections stay open, nothing answers
        async with ws_session(server.ws_url, owner.token) as session:
            feed = Feed(session, MESSAGE_ADDED, {"dossierId": dossier_id}).start()
            await wait_until(lambda: hub.subscriber_count(channel) == 1, what="live")
            await send("before")
            cursor = (await feed.next())["messageAdded"]["cursor"]
            assert private_redis.process is not None
            os.kill(private_redis.process.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                frozen = [await send(f"frozen {i}") for i in range(3)]
                _items, ended = await feed.until_end(within=WAIT)
                assert error_codes_of(ended.error) == ["STREAM_INTERRUPTED"]  # loud
                assert time.monotonic() - frozen_at < 12
                # Their dispatches (after each answer) have been tried while Redis is frozen.
                assert await outbox.drain(within=WAIT)
            finally:
                os.kill(private_redis.process.pid, signal.SIGCONT)
            await feed.stop()
        assert all(latencies[f"frozen {i}"] < 5 for i in range(3)), latencies

        # 2. resumed with the cursor: the messages sent while frozen, in order, once
        frozen_ids = [f["message"]["id"] for f in frozen]
        async with _resume(server.ws_url, owner.token, dossier_id, cursor, 3) as (resumed, got):
            assert [g["node"]["id"] for g in got] == frozen_ids
            cursor = got[-1]["cursor"]
            # 3. then Redis killed: sending still works, the stream ends loudly
            await private_redis.kill()
            down = [await send(f"down {i}") for i in range(3)]
            _items, ended = await resumed.until_end(within=WAIT)
            assert error_codes_of(ended.error) == ["STREAM_INTERRUPTED"]
            assert await outbox.drain(within=WAIT)  # tried while Redis is down
        assert all(latencies[f"down {i}"] < 5 for i in range(3)), latencies

        # 4. Redis back: resumed again, no gap, no duplicate, then live
        await private_redis.start()
        down_ids = [d["message"]["id"] for d in down]
        async with _resume(server.ws_url, owner.token, dossier_id, cursor, 3) as (resumed, got):
            assert [g["node"]["id"] for g in got] == down_ids
            after = await send("after")
            live = (await resumed.next())["messageAdded"]["node"]["id"]
            assert live == after["message"]["id"]

            # 5. the relay drains the backlog: what could not be published is, now
            backlog = await Event.filter(entity_id__in=sent, published_at=None).count()
            assert backlog >= 6  # at least the frozen and the down messages' events

            async def drained() -> bool:
                await outbox.dispatch()  # the worker's relay job, as it runs
                return not await Event.filter(
                    entity_id__in=sent, event_type=EventType.MESSAGE_SENT, processed_at=None
                ).exists()

            await wait_until(drained, within=12, what="the relay to drain")
            assert await resumed.quiet(0.5) == []  # republished, but never delivered twice

    assert await Message.filter(dossier_id=dossier.id).count() == len(sent) == 8
    events = await Event.filter(entity_id__in=sent, event_type=EventType.MESSAGE_SENT)
    assert sorted(str(e.entity_id) for e in events) == sorted(sent)  # one each
    assert all(e.published_at and e.processed_at for e in events)
    report("Redis frozen/killed: send latencies %s", {k: round(v, 2) for k, v in latencies.items()})


# --- SMTP and Twilio down, then back ---------------------------------------------------------


async def test_smtp_and_twilio_down_then_back_lose_nothing():
    client = await make_client()
    emails = await pending_deliveries(
        10,
        NotificationChannel.EMAIL,
        profile_id=client.obj.id,
        recipient=lambda i: f"f{i}@example.com",
    )
    texts = await pending_deliveries(10, NotificationChannel.SMS, profile_id=client.obj.id)
    smtp = SmtpPeer()  # nothing listens on either port yet: connections are refused
    twilio, twilio_port = TwilioPeer(), free_port()
    twilio.url = f"http://127.0.0.1:{twilio_port}"
    settings = peer_settings(
        smtp=smtp, twilio=twilio, delivery_backoff_seconds=5, delivery_max_attempts=10
    )
    now = datetime.now(UTC) + timedelta(seconds=1)
    for _ in range(3):
        report = await deliver_due(now=now, settings=settings)
        assert (report.claimed, report.retrying, report.sent) == (20, 20, 0)
        now += timedelta(minutes=5)
    rows = await NotificationDelivery.filter(id__in=[d.id for d in [*emails, *texts]])
    assert {r.status for r in rows} == {NotificationStatus.PENDING}

    smtp.start()
    try:
        async with serve_in_loop(_twilio_app(twilio), twilio_port):
            report = await deliver_due(now=now, settings=settings)
            again = await deliver_due(now=now + timedelta(hours=1), settings=settings)
    finally:
        smtp.stop()

    assert (report.sent, again.claimed) == (20, 0)
    assert sorted(Counter(m["To"] for m in smtp.accepted).values()) == [1] * 10
    assert sorted(Counter(r.form["To"] for r in twilio.sent).values()) == [1] * 10
    rows = await NotificationDelivery.filter(id__in=[d.id for d in [*emails, *texts]])
    assert {(r.status, r.attempts) for r in rows} == {(NotificationStatus.SENT, 4)}


# --- SIGTERM to a server holding 50 WebSockets ------------------------------------------------


async def _open_subscribed(url: str, token: str, dossier_id: str, after: str) -> Any:
    ws = await connect(url, subprotocols=[PROTOCOL], open_timeout=10)
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    async with asyncio.timeout(10):
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
    subscribe = {"query": MESSAGE_ADDED, "variables": {"dossierId": dossier_id, "after": after}}
    await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": subscribe}))
    return ws


async def _read_until_closed(ws: Any, seen: set[str], within: float) -> tuple[int | None, float]:
    """Collect the message ids a socket receives until the server closes it."""
    try:
        async with asyncio.timeout(within):
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "next":
                    seen.add(message["payload"]["data"]["messageAdded"]["node"]["id"])
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), time.monotonic()
    except TimeoutError:
        return None, time.monotonic()


async def test_sigterm_with_50_open_websockets(database_url, backend):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    dossier_id = str(dossier.id)
    env = app_env(
        DATABASE_URL=database_url,
        REDIS_URL=backend.redis_url,
        MAX_WEBSOCKETS_PER_ACCOUNT="60",  # one client's 50 sockets, all counted
    )
    async with (
        web_process(env) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        contextlib.AsyncExitStack() as cleanup,
    ):
        ws_url = server.url.replace("http://", "ws://") + "/graphql"
        variables = {"input": {"dossierId": dossier_id, "content": "hello"}}
        hello = (await ask(http, agent.token, SEND, variables))["sendMessage"]
        # Subscribed from that message on: nothing after it can be missed, live or not.
        sockets = await asyncio.gather(
            *(_open_subscribed(ws_url, owner.token, dossier_id, hello["cursor"]) for _ in range(50))
        )
        seen: list[set[str]] = [set() for _ in sockets]
        readers = [
            asyncio.create_task(_read_until_closed(ws, s, within=30))
            for ws, s in zip(sockets, seen, strict=True)
        ]
        for reader in readers:
            cleanup.callback(reader.cancel)
        # All 50 are live: one message reaches every one of them.
        variables = {"input": {"dossierId": dossier_id, "content": "to all 50"}}
        first = (await ask(http, agent.token, SEND, variables))["sendMessage"]["message"]["id"]
        await wait_until(lambda: all(first in s for s in seen), within=10, what="50 live sockets")

        load = ChatLoad(server.url, dossier_id, [agent.token], gap=0.05)
        await cleanup.enter_async_context(load)
        await wait_until(lambda: load.ok_since(0) >= 3, what="traffic")
        server.process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        code = await asyncio.wait_for(server.process.wait(), 15)
        exited = time.monotonic() - stopping
        attempts = await load.stop()
        closes = await asyncio.gather(*readers)
        output = server.output()

    # A graceful stop: uvicorn shuts down, runs the lifespan's end, then re-raises the
    # SIGTERM it caught so the parent sees why it ended.
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Finished server process" in output
    assert exited < 10, f"took {exited:.1f}s to stop"  # within the graceful period
    report(
        "SIGTERM: 50 sockets closed 1012, exited in %.2fs; %d sends during the stop, %d ok",
        exited,
        len(attempts),
        sum(a.ok for a in attempts),
    )
    assert [c for c, _ in closes] == [1012] * 50, Counter(c for c, _ in closes)
    assert all(at - stopping < 10 for _, at in closes)
    # The backlog is intact: every acknowledged message is stored once with its event, and
    # the relay (here, in this process) publishes and processes whatever was left.
    acknowledged = {hello["message"]["id"]: "hello", first: "to all 50"} | {
        a.message_id: a.content for a in attempts if a.ok
    }
    stored = {str(m.id): m.content for m in await Message.filter(dossier_id=dossier.id)}
    assert {k: stored.get(k) for k in acknowledged} == acknowledged
    assert set(stored.values()) <= {"hello", "to all 50", *(a.content for a in attempts)}

    async def drained() -> bool:
        await outbox.dispatch()
        return not await Event.filter(event_type=EventType.MESSAGE_SENT, processed_at=None).exists()

    await wait_until(drained, within=12, what="the relay to drain")
    events = await Event.filter(event_type=EventType.MESSAGE_SENT, entity_id__in=list(stored))
    assert sorted(str(e.entity_id) for e in events) == sorted(stored)  # one each
    assert all(e.published_at and e.processed_at for e in events)


# --- the worker killed with -9 mid-batch ---------------------------------------------------


@pytest.mark.postgres
async def test_worker_killed_mid_batch(database_url):
    client = await make_client()
    rows = await pending_deliveries(30, NotificationChannel.SMS, profile_id=client.obj.id)
    recipients = sorted(d.recipient for d in rows)
    twilio = SlowTwilio(answer_first=5, holding=True)
    async with serve_in_loop(twilio.app()) as twilio_url:
        env = app_env(
            DATABASE_URL=database_url,
            REDIS_URL="",
            SMTP_HOST="",
            TWILIO_API_BASE=twilio_url,
            TWILIO_ACCOUNT_SID=TWILIO_SID,
            TWILIO_AUTH_TOKEN="twilio-test-token",
            TWILIO_FROM_NUMBER="+15005550006",
            DELIVERY_BATCH_SIZE="10",
            DELIVERY_CONCURRENCY="4",
            DELIVERY_CLAIM_SECONDS="5",
        )
        async with worker_process(env) as first:
            await wait_until(
                lambda: len(twilio.sent) >= 5 and twilio.waiting >= 3,
                within=30,
                what="the first worker mid-batch",
            )
            first.process.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(first.process.wait(), 5) == -signal.SIGKILL
        killed_at = datetime.now(UTC)
        sent_before = list(twilio.sent)
        leased = await NotificationDelivery.filter(
            status=NotificationStatus.PENDING, claimed_until__gt=killed_at
        )
        assert len(leased) >= 3  # claimed, not sent: the lease holds them for a while
        twilio.release()  # the requests it left hanging find nobody to answer
        await wait_until(lambda: twilio.waiting == 0, what="hung requests to end")
        assert len(twilio.abandoned) >= 3

        async with worker_process(env) as second:

            async def all_sent() -> bool:
                assert second.process.returncode is None, second.output()
                return not await NotificationDelivery.filter(
                    status=NotificationStatus.PENDING
                ).exists()

            await wait_until(all_sent, within=30, what="the second worker to send everything")
            assert await second.stop() == 0  # and it stops gracefully

    per_recipient = Counter(twilio.sent)
    assert sorted(per_recipient) == recipients
    assert set(per_recipient.values()) == {1}  # each delivery sent exactly once
    assert set(sent_before) <= set(per_recipient)
    stored = {d.id: d for d in await NotificationDelivery.filter(id__in=[d.id for d in rows])}
    assert {d.status for d in stored.values()} == {NotificationStatus.SENT}
    for lease in leased:  # picked up again only once the dead worker's lease had ended
        assert stored[lease.id].sent_at >= lease.claimed_until
    report(
        "worker -9: %d sent before the kill, %d leased and unsent, %d hung requests abandoned",
        len(sent_before),
        len(leased),
        len(twilio.abandoned),
    )
