"""WebSocket abuse not covered elsewhere, against a real uvicorn, speaking
graphql-transport-ws byte for byte (tests/test_ws.py has the missing `connection_init`
(4408), bad and expired tokens (4403) and the legacy `graphql-ws` subprotocol;
tests/test_subscriptions.py the foreign Origin (403) and tokens expiring mid-stream):

- a `subscribe` before `connection_init` closes the socket with 4401, nothing runs;
- 1,000 subscriptions on one socket: the first 20 run, every later one is refused with an
  error naming the limit, and the socket, its live subscriptions and the server stay
  healthy (a freed slot can be used again).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.subscriptions import topics
from tests.factories import make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.test_chat import MESSAGE_ADDED, SEND
from tests.ws_support import wait_until

PROTOCOL = "graphql-transport-ws"
PER_SOCKET = 20  # max_subscriptions_per_connection in app/http/graphql.py
ME = "{ me { ... on Profile { email } } }"


def _subscribe(op_id: str, query: str, variables: dict[str, Any] | None = None) -> str:
    payload = {"query": query, "variables": variables or {}}
    return json.dumps({"id": op_id, "type": "subscribe", "payload": payload})


async def _init(ws, token: str) -> None:
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    await ws.send(json.dumps(init))
    async with asyncio.timeout(5):
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}


async def _works(url: str, token: str, email: str) -> None:
    """A fresh socket runs a query: the server is healthy."""
    async with connect(url, subprotocols=[PROTOCOL]) as ws:
        await _init(ws, token)
        await ws.send(_subscribe("q", ME))
        async with asyncio.timeout(5):
            answer = json.loads(await ws.recv())
    assert answer == {"id": "q", "type": "next", "payload": {"data": {"me": {"email": email}}}}


async def test_a_subscribe_before_connection_init_closes_with_4401(live_server, app):
    owner = await make_client()
    dossier = await make_dossier(owner)
    hub = app.state.hub
    async with connect(live_server.ws_url, subprotocols=[PROTOCOL]) as ws:
        await ws.send(_subscribe("1", MESSAGE_ADDED, {"dossierId": str(dossier.id)}))
        received = []
        try:
            async with asyncio.timeout(5):
                while True:
                    received.append(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
    assert code == 4401
    assert received == []  # nothing ran, nothing was answered
    assert hub.subscriber_count(topics.dossier_messages(dossier.id)) == 0
    # The same client doing it right is served (the refusal was about the order).
    await _works(live_server.ws_url, owner.token, owner.email)


async def test_a_thousand_subscriptions_on_one_socket(client, live_server, app):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    hub = app.state.hub
    channel = topics.dossier_messages(dossier.id)
    variables = {"dossierId": str(dossier.id)}
    async with connect(live_server.ws_url, subprotocols=[PROTOCOL], max_queue=None) as ws:
        await _init(ws, owner.token)
        started = time.monotonic()
        for n in range(1, 1001):
            await ws.send(_subscribe(str(n), MESSAGE_ADDED, variables))

        refused: dict[str, Any] = {}
        async with asyncio.timeout(20):
            while len(refused) < 1000 - PER_SOCKET:
                message = json.loads(await ws.recv())
                assert message["type"] == "error", message  # nothing else comes back
                refused[message["id"]] = message["payload"]
        elapsed = time.monotonic() - started
        assert set(refused) == {str(n) for n in range(PER_SOCKET + 1, 1001)}
        assert {json.dumps(p) for p in refused.values()} == {
            json.dumps([{"message": "Subscription limit reached"}])
        }
        await wait_until(lambda: hub.subscriber_count(channel) == PER_SOCKET, what="20 live")

        # The socket is healthy: it answers a ping, and its 20 subscriptions are live.
        await ws.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(5):
            assert json.loads(await ws.recv()) == {"type": "pong"}
        sent = (
            await gql(
                client, SEND, {"input": {**variables, "content": "to all 20"}}, token=agent.token
            )
        )["sendMessage"]
        got: dict[str, str] = {}
        async with asyncio.timeout(5):
            while len(got) < PER_SOCKET:
                message = json.loads(await ws.recv())
                assert message["type"] == "next", message
                got[message["id"]] = message["payload"]["data"]["messageAdded"]["node"]["id"]
        assert set(got) == {str(n) for n in range(1, PER_SOCKET + 1)}
        assert set(got.values()) == {sent["message"]["id"]}

        # A freed slot is usable again; the limit still holds after it.
        await ws.send(json.dumps({"id": "1", "type": "complete"}))
        await wait_until(lambda: hub.subscriber_count(channel) == PER_SOCKET - 1, what="freed")
        await ws.send(_subscribe("again", MESSAGE_ADDED, variables))
        await wait_until(lambda: hub.subscriber_count(channel) == PER_SOCKET, what="reused")
        await ws.send(_subscribe("one-too-many", MESSAGE_ADDED, variables))
        async with asyncio.timeout(5):
            message = json.loads(await ws.recv())
        assert (message["id"], message["type"]) == ("one-too-many", "error")

        # Meanwhile the server serves everyone else as usual.
        await _works(live_server.ws_url, owner.token, owner.email)
        async with httpx.AsyncClient(base_url=live_server.http_url) as http:
            assert (await http.get("/healthz")).status_code == 200
    await wait_until(lambda: hub.subscriber_count(channel) == 0, what="all gone with the socket")
    assert elapsed < 20
