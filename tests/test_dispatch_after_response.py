"""DISPATCH_AFTER_RESPONSE: the outbox dispatch of an HTTP request runs once the answer is
sent (a Starlette background task), and still runs: the events are processed, the
notifications made, the live update published."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from app.main import create_app
from app.models import Dossier, Event, Notification, Order
from app.models.enums import EventType, OrderStatus
from app.settings import get_settings
from bench import world as worlds
from bench.queries import SEND_MESSAGE
from tests.factories import make_agent, make_client, make_dossier
from tests.helpers import gql

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
