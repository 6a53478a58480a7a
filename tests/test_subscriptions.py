"""Subscriptions over graphql-transport-ws with a real client (gql), against real uvicorn:
authorisation at init and per dossier, resume with `after` under concurrent sends,
ordering and duplicates, reviews, dossier updates, notifications, access re-checked while
streaming, the Origin allow-list, and the hub's first-subscriber race and bounded queues
against the real broadcast medium (Redis on the PostgreSQL backend, memory otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.auth import viewer_from_token
from app.models import Credential, Event, Message
from app.services import messages as message_service
from app.settings import get_settings
from app.subscriptions import publisher, topics
from app.subscriptions.hub import Hub
from app.subscriptions.queue import SubscriberTooSlow
from tests.factories import make_admin, make_agent, make_client, make_dossier, token_for
from tests.helpers import count_statements, gql
from tests.test_chat import MESSAGE_ADDED, send, uploaded_version
from tests.ws_support import (
    Feed,
    error_codes_of,
    serve,
    settings_with,
    wait_until,
    ws_session,
)

PROTOCOL = "graphql-transport-ws"

REVIEWED = """
subscription Reviewed($dossierId: ID) {
  documentReviewed(dossierId: $dossierId) {
    eventId dossierId documentId documentVersionId decision reason reviewerId occurredAt
    dossierStatus
  }
}
"""

UPDATED = """
subscription Updated($dossierId: ID) {
  dossierUpdated(dossierId: $dossierId) {
    eventId dossierId eventType oldStatus newStatus status stepInstanceId
    currentStepInstanceId reason
  }
}
"""

NOTIFIED = """
subscription { notificationAdded { id title message templateCode dossierId read } }
"""

REVIEW = """
mutation Review($input: ReviewDocumentInput!) {
  reviewDocument(input: $input) { userErrors { code message } }
}
"""

HOLD = """
mutation Hold($input: ChangeDossierStatusInput!) {
  changeDossierStatus(input: $input) { dossier { status } userErrors { code message } }
}
"""

DEACTIVATE = """
mutation Off($input: UpdateAgentInput!) { updateAgent(input: $input) { agent { active } } }
"""


def _hub(app) -> Hub:
    return app.state.hub


async def _subscribed(app, channel: str, count: int = 1) -> None:
    hub = _hub(app)
    await wait_until(lambda: hub.subscriber_count(channel) >= count, what=f"{channel} live")


# --- authorisation --------------------------------------------------------------------


async def _short_lived_token(credential: Credential, seconds_left: float) -> str:
    ttl = timedelta(minutes=get_settings().access_token_ttl_minutes)
    return await token_for(
        credential, now=datetime.now(UTC) - ttl + timedelta(seconds=seconds_left)
    )


@pytest.mark.parametrize("token", ["", "Bearer not-a-jwt", "expired"])
async def test_a_bad_token_closes_the_socket_before_any_subscription(live_server, token):
    owner = await make_client()
    dossier = await make_dossier(owner)
    if token == "expired":
        credential = await Credential.get(email=owner.email)
        token = f"Bearer {await _short_lived_token(credential, -60)}"
    async with connect(live_server.ws_url, subprotocols=[PROTOCOL]) as ws:
        init = {"type": "connection_init", "payload": {"authorization": token} if token else {}}
        await ws.send(json.dumps(init))
        subscribe = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": MESSAGE_ADDED, "variables": {"dossierId": str(dossier.id)}},
        }
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(subscribe))
        received = []
        closed = None
        try:
            async with asyncio.timeout(5):
                while True:
                    received.append(json.loads(await ws.recv()))
        except ConnectionClosed as exc:
            closed = exc.rcvd
    assert closed is not None
    assert closed.code == 4403
    assert received == []  # no ack, no event


async def test_another_clients_dossier_answers_exactly_like_a_missing_one(live_server, app):
    owner, stranger = await make_client(), await make_client()
    dossier = await make_dossier(owner)
    async with ws_session(live_server.ws_url, stranger.token) as session:
        for query in (MESSAGE_ADDED, REVIEWED, UPDATED):
            answers = []
            for target in (str(dossier.id), str(uuid.uuid4()), "not-a-uuid"):
                feed = Feed(session, query, {"dossierId": target}).start()
                ended = await feed.ended()
                assert error_codes_of(ended.error) == ["NOT_FOUND"], ended.error
                answers.append(getattr(ended.error, "errors", None))
            assert answers[0] == answers[1] == answers[2]
    hub = _hub(app)
    for channel in (
        topics.dossier_messages(dossier.id),
        topics.dossier_reviews(dossier.id),
        topics.dossier_updates(dossier.id),
    ):
        assert hub.subscriber_count(channel) == 0
    # the control: the owner may
    async with ws_session(live_server.ws_url, owner.token) as session:
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        await _subscribed(app, topics.dossier_messages(dossier.id))
        await feed.stop()


async def test_a_bad_cursor_is_refused(live_server):
    owner = await make_client()
    dossier = await make_dossier(owner)
    async with ws_session(live_server.ws_url, owner.token) as session:
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id), "after": "nope"})
        ended = await feed.start().ended()
    assert error_codes_of(ended.error) == ["BAD_USER_INPUT"]


# --- messageAdded: replay, then live; no gap, no duplicate ---------------------------


async def test_resume_with_after_under_concurrent_sends(client, live_server, app):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    first = [await send(client, owner, dossier.id, f"before {i}") for i in range(3)]
    total = 40
    done = asyncio.Event()

    async def sender() -> None:
        for i in range(0, total, 2):  # two at a time, from both sides
            await asyncio.gather(
                send(client, owner, dossier.id, f"live {i}"),
                send(client, agent, dossier.id, f"live {i + 1}"),
            )
            await asyncio.sleep(0.02)
        done.set()

    sending = asyncio.create_task(sender())
    received: list[dict] = []
    try:
        # 1. subscribe after the second message while messages keep coming
        async with ws_session(live_server.ws_url, agent.token) as session:
            variables = {"dossierId": str(dossier.id), "after": first[1]["cursor"]}
            feed = Feed(session, MESSAGE_ADDED, variables).start()
            received += [r["messageAdded"] for r in await feed.take(12)]
            await feed.stop()
        # 2. the client went away mid-stream; sends go on; resume from its last cursor
        async with ws_session(live_server.ws_url, agent.token) as session:
            variables = {"dossierId": str(dossier.id), "after": received[-1]["cursor"]}
            feed = Feed(session, MESSAGE_ADDED, variables).start()
            await asyncio.wait_for(done.wait(), 30)
            expected = await Message.filter(dossier_id=dossier.id).order_by("created_at", "id")
            while len(received) < len(expected) - 2:
                received.append((await feed.next())["messageAdded"])
            assert await feed.quiet(0.3) == []  # and nothing more
            await feed.stop()
    finally:
        await sending
    ids = [r["node"]["id"] for r in received]
    assert len(ids) == len(set(ids)), "a message was delivered twice"
    assert ids == [str(m.id) for m in expected[2:]], "a gap or a reordering"
    assert len(ids) == total + 1


async def test_live_messages_published_out_of_order_are_delivered_in_order(live_server, app):
    """Publication order is not commit order: the second message may reach Redis first.
    The stream waits for the first (and fills a gap from the database if it never comes);
    a message published twice (the relay) is delivered once."""
    owner = await make_client()
    dossier = await make_dossier(owner)
    viewer = await viewer_from_token(owner.token)
    channel = topics.dossier_messages(dossier.id)
    async with ws_session(live_server.ws_url, owner.token) as session:
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        await _subscribed(app, channel)
        # Written outside a GraphQL operation: committed, recorded, not yet published.
        m1 = await message_service.send_message(viewer, dossier.id, "one")
        m2 = await message_service.send_message(viewer, dossier.id, "two")
        e1 = await Event.get(entity_id=m1.id)
        e2 = await Event.get(entity_id=m2.id)
        await publisher.publish_batch([e2])  # the later one first
        assert await feed.quiet(0.2) == []  # held back: "one" is missing
        await publisher.publish_batch([e1])
        got = [r["messageAdded"]["node"]["content"] for r in await feed.take(2)]
        assert got == ["one", "two"]
        await publisher.publish_batch([e1, e2])  # published again (the relay): dropped
        # A predecessor that is never published: the database fills the gap.
        m3 = await message_service.send_message(viewer, dossier.id, "three")
        m4 = await message_service.send_message(viewer, dossier.id, "four")
        started = time.monotonic()
        await publisher.publish_batch([await Event.get(entity_id=m4.id)])
        got = [r["messageAdded"]["node"]["content"] for r in await feed.take(2)]
        assert got == ["three", "four"]
        assert time.monotonic() - started < 3
        assert m3.id  # never published
        assert await feed.quiet(0.3) == []
        await feed.stop()


async def test_fan_out_costs_no_query_per_subscriber(client, live_server, app):
    """Strawberry runs a subscription's selection once per subscriber and event: the
    payload carries what it needs, so ten subscribers cost what one costs."""
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    channel = topics.dossier_messages(dossier.id)

    async def statements_for_one_message(subscribers: int, content: str) -> int:
        async with contextlib.AsyncExitStack() as stack:
            feeds = []
            for _ in range(subscribers):
                session = await stack.enter_async_context(
                    ws_session(live_server.ws_url, agent.token)
                )
                feeds.append(Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start())
            await _subscribed(app, channel, subscribers)
            with count_statements() as statements:
                await send(client, owner, dossier.id, content)
                for feed in feeds:
                    got = (await feed.next())["messageAdded"]["node"]
                    assert got["content"] == content
                    assert got["senderName"] == owner.obj.full_name
            for feed in feeds:
                await feed.stop()
            return len(statements)

    one = await statements_for_one_message(1, "to one")
    ten = await statements_for_one_message(10, "to ten")
    assert one > 0  # the counter sees the server (same process)
    assert ten == one, (one, ten)


# --- reviews, dossier updates, notifications ----------------------------------------


async def test_reviews_and_updates_reach_the_owner_and_agents_only(client, live_server, app):
    owner, stranger, agent = await make_client(), await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    version = await uploaded_version(dossier)
    async with (
        ws_session(live_server.ws_url, owner.token) as owner_ws,
        ws_session(live_server.ws_url, stranger.token) as stranger_ws,
        ws_session(live_server.ws_url, agent.token) as agent_ws,
    ):
        owner_reviews = Feed(owner_ws, REVIEWED).start()
        owner_updates = Feed(owner_ws, UPDATED, {"dossierId": str(dossier.id)}).start()
        stranger_reviews = Feed(stranger_ws, REVIEWED).start()
        stranger_updates = Feed(stranger_ws, UPDATED).start()
        agent_reviews = Feed(agent_ws, REVIEWED).start()
        agent_updates = Feed(agent_ws, UPDATED).start()
        await _subscribed(app, topics.client_reviews(owner.id))
        await _subscribed(app, topics.dossier_updates(dossier.id))
        await _subscribed(app, topics.client_reviews(stranger.id))
        await _subscribed(app, topics.client_updates(stranger.id))
        await _subscribed(app, topics.AGENT_REVIEWS)
        await _subscribed(app, topics.AGENT_UPDATES)
        feeds = (
            owner_reviews,
            owner_updates,
            stranger_reviews,
            stranger_updates,
            agent_reviews,
            agent_updates,
        )
        try:
            review = {"versionId": str(version.id), "decision": "APPROVED"}
            data = await gql(client, REVIEW, {"input": review}, token=agent.token)
            assert data["reviewDocument"]["userErrors"] == []
            for feed in (owner_reviews, agent_reviews):
                got = (await feed.next())["documentReviewed"]
                assert got["dossierId"] == str(dossier.id)
                assert got["documentVersionId"] == str(version.id)
                assert got["decision"] == "APPROVED"
                assert got["reviewerId"] == agent.id
            # approving the only document completes the step: the dossier moves on
            steps = [(await owner_updates.next())["dossierUpdated"] for _ in range(2)]
            assert [s["eventType"] for s in steps][:1] == ["STEP_COMPLETED"]
            hold = {"dossierId": str(dossier.id), "action": "HOLD", "reason": "waiting"}
            data = await gql(client, HOLD, {"input": hold}, token=agent.token)
            assert data["changeDossierStatus"]["userErrors"] == []

            async def until_hold(feed: Feed) -> dict:
                while True:
                    got = (await feed.next())["dossierUpdated"]
                    if got["newStatus"] == "ON_HOLD":
                        return got

            for feed in (owner_updates, agent_updates):
                got = await until_hold(feed)
                assert got["status"] == "ON_HOLD"
                assert got["reason"] == "waiting"
                assert got["dossierId"] == str(dossier.id)
            # another client hears nothing of it
            assert await stranger_reviews.quiet(0.3) == []
            assert await stranger_updates.quiet(0.1) == []
        finally:
            for feed in feeds:
                await feed.stop()


async def test_notifications_reach_their_recipient(client, live_server, app):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    async with ws_session(live_server.ws_url, owner.token) as session:
        feed = Feed(session, NOTIFIED).start()
        await _subscribed(app, topics.notifications("profile", owner.id))
        try:
            await send(client, agent, dossier.id, "Your file is complete.")
            got = (await feed.next())["notificationAdded"]
            assert got["templateCode"] == "message_received"
            assert got["dossierId"] == str(dossier.id)
            assert got["read"] is False
        finally:
            await feed.stop()


# --- access re-checked while streaming ------------------------------------------------


async def test_an_expiring_token_stops_the_stream(client, live_server, app):
    owner = await make_client()
    dossier = await make_dossier(owner)
    credential = await Credential.get(email=owner.email)
    token = await _short_lived_token(credential, 2.5)
    async with ws_session(live_server.ws_url, token) as session:
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        await _subscribed(app, topics.dossier_messages(dossier.id))
        await send(client, owner, dossier.id, "still valid")
        assert (await feed.next())["messageAdded"]["node"]["content"] == "still valid"
        started = time.monotonic()
        ended = await feed.ended(within=5)
        assert error_codes_of(ended.error) == ["UNAUTHENTICATED"]
        assert time.monotonic() - started < 4
        # and the socket starts nothing new with it
        again = await Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start().ended()
        assert error_codes_of(again.error) == ["UNAUTHENTICATED"]


async def test_a_deactivated_agent_stops_receiving(client, live_server):
    admin, agent, owner = await make_admin(), await make_agent(), await make_client()
    dossier = await make_dossier(owner)
    settings = settings_with(subscription_recheck_seconds=0.2)
    async with serve(settings) as server, ws_session(server.ws_url, agent.token) as session:
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        await _subscribed(server.app, topics.dossier_messages(dossier.id))
        await send(client, owner, dossier.id, "hello")
        assert (await feed.next())["messageAdded"]["node"]["content"] == "hello"
        off = {"id": agent.id, "active": False}
        data = await gql(client, DEACTIVATE, {"input": off}, token=admin.token)
        assert data["updateAgent"]["agent"]["active"] is False
        started = time.monotonic()
        items, ended = await feed.until_end(within=3)
        assert error_codes_of(ended.error) == ["UNAUTHENTICATED"]
        assert time.monotonic() - started < 1.5
        assert items == []
        await send(client, owner, dossier.id, "not for you")
        assert await feed.quiet(0.3) == []


# --- the Origin allow-list ----------------------------------------------------------------


async def _handshake(url: str, origin: str | None) -> int:
    headers = {"Origin": origin} if origin else {}
    try:
        async with connect(url, subprotocols=[PROTOCOL], additional_headers=headers):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_websocket_origin_is_checked_against_an_allow_list(live_server):
    allowed = ["https://app.partners-vrai.test"]
    async with serve(settings_with(allowed_origins=allowed)) as server:
        assert await _handshake(server.ws_url, "https://evil.example") == 403
        assert await _handshake(server.ws_url, "https://app.partners-vrai.test") == 101
        assert await _handshake(server.ws_url, get_settings().public_app_url) == 101
        assert await _handshake(server.ws_url, server.http_url) == 101  # same origin
        assert await _handshake(server.ws_url, None) == 101  # not a browser
    assert await _handshake(live_server.ws_url, "https://app.partners-vrai.test") == 403


# --- the hub against the real medium -----------------------------------------------------


def _private_hub(**kwargs) -> Hub:
    settings = get_settings()
    return Hub(settings.redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}:", **kwargs)


async def test_two_first_subscribers_of_a_channel_both_receive():
    hub = _private_hub()
    try:
        for round_ in range(10):
            channel = f"race.{round_}"
            async with contextlib.AsyncExitStack() as stack:
                first, second = await asyncio.gather(
                    stack.enter_async_context(hub.subscribe(channel)),
                    stack.enter_async_context(hub.subscribe(channel)),
                )
                assert hub.subscriber_count(channel) == 2
                assert await hub.publish(channel, f"hello {round_}")
                for subscriber in (first, second):
                    got = await asyncio.wait_for(subscriber.get(), 3)
                    assert got == f"hello {round_}"
            assert hub.subscriber_count(channel) == 0
    finally:
        await hub.close()


async def test_a_slow_subscriber_is_dropped_and_never_slows_the_others():
    hub = _private_hub(queue_size=8)
    try:
        async with hub.subscribe("busy") as slow, hub.subscribe("busy") as fast:
            received: list[str] = []

            async def read_all() -> None:
                while len(received) < 50:
                    received.append(await fast.get())

            reader = asyncio.create_task(read_all())
            started = time.monotonic()
            for i in range(50):
                assert await hub.publish("busy", str(i))
            await asyncio.wait_for(reader, 3)
            assert received == [str(i) for i in range(50)]
            assert time.monotonic() - started < 3
            assert hub.subscriber_count("busy") == 1  # the slow one is gone
            with pytest.raises(SubscriberTooSlow):
                await asyncio.wait_for(slow.get(), 1)
    finally:
        await hub.close()
