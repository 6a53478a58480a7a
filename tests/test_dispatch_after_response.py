"""DISPATCH_AFTER_RESPONSE: the outbox dispatch of an HTTP request runs once the answer is
sent (a Starlette background task), and still runs: the events are processed, the
notifications made, the live update published."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
import uvicorn
from tortoise.transactions import in_transaction

from app import worker
from app.auth import viewer_from_token
from app.main import create_app
from app.models import Dossier, Event, Notification, Order
from app.models.enums import EventType, OrderStatus
from app.services import events, outbox
from app.settings import get_settings
from bench import world as worlds
from bench.queries import SEND_MESSAGE
from tests.factories import make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.notifications_support import free_port
from tests.ws_support import WAIT, wait_until

SECRET = "whsec_after_response"


@pytest.fixture(scope="module")
def deferred_app(database_url):
    settings = get_settings().model_copy(
        update={"dispatch_after_response": True, "stripe_webhook_secret": SECRET}
    )
    return create_app(settings, manage_db=False)


@pytest.fixture
async def deferred(deferred_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=deferred_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_a_message_is_dispatched_after_the_answer(deferred):
    owner = await make_client()
    agent = await make_agent()
    dossier = await make_dossier(owner)
    data = await gql(
        deferred,
        SEND_MESSAGE,
        {"input": {"dossierId": str(dossier.id), "content": "hello"}},
        token=owner.token,
    )
    message_id = uuid.UUID(data["sendMessage"]["message"]["id"])
    # The ASGI call is over (the background task with it): the event went out.
    event = await Event.get(entity_type="message", entity_id=message_id)
    assert event.event_type == EventType.MESSAGE_SENT
    assert event.processed_at is not None
    assert event.published_at is not None
    assert await Notification.filter(event_id=event.id, agent_id=agent.obj.id).exists()


async def test_a_webhook_event_is_dispatched_after_the_answer(deferred):
    world = worlds.pending_orders(1)
    await worlds.orm_rows(world)
    order = world.orders[0]
    session = {
        "id": order["stripe_checkout_session_id"],
        "client_reference_id": str(order["id"]),
        "metadata": {"order_id": str(order["id"])},
        "amount_total": order["amount"],
        "currency": order["currency"],
        "payment_status": "paid",
        "payment_intent": "pi_after_response",
    }
    payload = orjson.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "checkout.session.completed",
            "data": {"object": session},
        }
    )
    stamp = str(int(time.time()))
    signature = hmac.new(SECRET.encode(), stamp.encode() + b"." + payload, hashlib.sha256)
    response = await deferred.post(
        "/webhooks/stripe",
        content=payload,
        headers={"stripe-signature": f"t={stamp},v1={signature.hexdigest()}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "processed"
    paid = await Order.get(id=order["id"])
    assert paid.status == OrderStatus.PAID
    dossier = await Dossier.get(id=paid.dossier_id)  # type: ignore[attr-defined]
    events = await Event.filter(entity_id__in=[paid.id, dossier.id])
    assert {e.event_type for e in events} >= {
        EventType.PAYMENT_SUCCEEDED,
        EventType.DOSSIER_CREATED,
    }
    assert all(e.processed_at is not None for e in events)
    assert await Notification.filter(user_id=paid.user_id).exists()  # type: ignore[attr-defined]


# --- a crash after the answer, a graceful shutdown, dispatches together ------------------


class ProcessDied(Exception):
    pass


def dies_after_answering(app):
    """The process ends right after the answer is out: the dispatch never runs."""

    async def wrapper(scope, receive, send):
        async def send_then_die(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                raise ProcessDied

        await app(scope, receive, send_then_die)

    return wrapper


async def test_a_crash_after_the_answer_leaves_the_event_to_the_relay(deferred_app):
    owner = await make_client()
    agent = await make_agent()
    dossier = await make_dossier(owner)
    transport = httpx.ASGITransport(
        app=dies_after_answering(deferred_app), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as dying:
        data = await gql(
            dying,
            SEND_MESSAGE,
            {"input": {"dossierId": str(dossier.id), "content": "just before the crash"}},
            token=owner.token,
        )
    message_id = uuid.UUID(data["sendMessage"]["message"]["id"])
    # The answer was sent: the message and its event are committed, not dispatched.
    event = await Event.get(entity_type="message", entity_id=message_id)
    assert event.processed_at is None
    assert event.published_at is None
    assert not await Notification.filter(event_id=event.id).exists()
    gc.collect()
    assert await outbox.drain(within=WAIT)  # a dispatch that will never run is not waited for

    # The relay (a worker job; in the web process on the embedded default) picks it up
    # once it is no longer fresh.
    assert any(job.run is outbox.dispatch for job in worker.JOBS)
    await Event.filter(id=event.id).update(created_at=datetime.now(UTC) - timedelta(minutes=1))
    assert await outbox.dispatch() >= 1
    event = await Event.get(id=event.id)
    assert event.processed_at is not None
    assert event.published_at is not None
    assert await Notification.filter(event_id=event.id, agent_id=agent.obj.id).exists()


async def test_a_graceful_shutdown_waits_for_a_dispatch_in_flight(database_url, monkeypatch):
    owner = await make_client()
    agent = await make_agent()
    dossier = await make_dossier(owner)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_medium(_batch) -> None:  # the dispatch is still running at shutdown
        started.set()
        await release.wait()

    monkeypatch.setattr(outbox, "CONSUMERS", [*outbox.CONSUMERS, ("slow", slow_medium)])
    app = create_app(
        get_settings().model_copy(update={"dispatch_after_response": True}), manage_db=False
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or serving.done(), what="uvicorn to start")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        data = await gql(
            http,
            SEND_MESSAGE,
            {"input": {"dossierId": str(dossier.id), "content": "sent before the shutdown"}},
            token=owner.token,
        )
    await wait_until(started.is_set, what="the dispatch to start")  # answered; in flight

    server.should_exit = True
    try:
        # The dispatch may finish only once the server has stopped listening (shutting down).
        await wait_until(lambda: all(not s.is_serving() for s in server.servers), what="shutdown")
    finally:
        release.set()
    await asyncio.wait_for(serving, WAIT)

    event = await Event.get(entity_type="message", entity_id=data["sendMessage"]["message"]["id"])
    assert event.processed_at is not None
    assert event.published_at is not None
    assert await Notification.filter(event_id=event.id, agent_id=agent.obj.id).exists()


async def test_events_handed_over_during_a_dispatch_go_out_together(monkeypatch):
    owner = await make_client()
    dossier = await make_dossier(owner)
    who = await viewer_from_token(owner.token)
    async with in_transaction():  # committed, not dispatched yet
        recorded = [
            await events.record("dossier", dossier.id, EventType.MESSAGES_READ, actor=who)
            for _ in range(3)
        ]
    batches: list[list[uuid.UUID]] = []
    release = asyncio.Event()

    async def watch(batch) -> None:
        batches.append([e.id for e in batch])
        if len(batches) == 1:
            await release.wait()

    monkeypatch.setattr(outbox, "CONSUMERS", [*outbox.CONSUMERS, ("watch", watch)])
    try:
        first = asyncio.create_task(outbox.dispatch_together([recorded[0].id]))
        await wait_until(lambda: batches, what="the first dispatch")
        later = [
            asyncio.create_task(outbox.dispatch_together([event.id])) for event in recorded[1:]
        ]
        await wait_until(lambda: len(outbox._dispatcher().queue) == 2, what="both to wait")
    finally:
        release.set()
    await asyncio.gather(first, *later)

    assert len(batches) == 2
    assert batches[0] == [recorded[0].id]
    assert sorted(batches[1]) == sorted([recorded[1].id, recorded[2].id])  # one dispatch
    for event in recorded:
        assert (await Event.get(id=event.id)).processed_at is not None
