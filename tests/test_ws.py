"""GraphQL over WebSocket (graphql-transport-ws) against a real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from gql import Client
from gql import gql as parse
from gql.transport.exceptions import TransportError
from gql.transport.websockets import WebsocketsTransport
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.models import Credential
from app.security import issue_token
from tests.factories import make_agent, make_client

PROTOCOL = "graphql-transport-ws"
ME = "{ me { ... on Profile { email } ... on Agent { email role } } }"
PROFILE_EMAIL = "{ me { ... on Profile { email } } }"


async def _until_closed(ws, seconds: float) -> tuple[int | None, str, list[dict[str, Any]]]:
    """Read until the server closes the socket: (close code, reason, messages received)."""
    received: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                received.append(json.loads(await ws.recv()))
    except ConnectionClosed as closed:
        frame = closed.rcvd
        return (frame.code if frame else None), (frame.reason if frame else ""), received
    raise AssertionError("unreachable")  # pragma: no cover


async def _init_and_close(url: str, payload: Any) -> tuple[int | None, str, list[dict]]:
    async with connect(url, subprotocols=[PROTOCOL]) as ws:
        assert ws.subprotocol == PROTOCOL
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        return await _until_closed(ws, seconds=3)


async def test_query_over_websocket_with_a_real_client(live_server):
    account = await make_client()
    transport = WebsocketsTransport(
        url=live_server.ws_url,
        init_payload={"authorization": f"Bearer {account.token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        assert transport.subprotocol == PROTOCOL
        assert await session.execute(parse(PROFILE_EMAIL)) == {"me": {"email": account.email}}
        # A second operation on the same socket: still the same viewer.
        assert await session.execute(parse(ME)) == {"me": {"email": account.email}}


async def test_query_over_websocket_speaking_the_protocol(live_server):
    agent = await make_agent()
    async with connect(live_server.ws_url, subprotocols=[PROTOCOL]) as ws:
        assert ws.subprotocol == PROTOCOL
        init = {"authorization": f"Bearer {agent.token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        async with asyncio.timeout(5):
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ME}}))
            assert json.loads(await ws.recv()) == {
                "id": "1",
                "type": "next",
                "payload": {"data": {"me": {"email": agent.email, "role": "AGENT"}}},
            }
            assert json.loads(await ws.recv()) == {"id": "1", "type": "complete"}


def _expired_token(credential: Credential) -> str:
    # expired before its session is even looked at
    return issue_token(credential, uuid.uuid4(), now=datetime.now(UTC) - timedelta(days=2))[0]


def _forged_token(credential: Credential) -> str:
    claims = {"sub": str(credential.id), "iat": 1, "exp": 4_000_000_000, "pwd": 1}
    return jwt.encode(claims, "not-our-secret-" + "y" * 40, algorithm="HS256")


@pytest.mark.parametrize(
    "make_payload",
    [
        pytest.param(lambda _c: {}, id="no-token"),
        pytest.param(lambda _c: {"authorization": ""}, id="empty"),
        pytest.param(lambda _c: {"authorization": "Bearer not-a-jwt"}, id="garbage"),
        pytest.param(lambda _c: {"authorization": "Basic dXNlcjpwYXNz"}, id="wrong-scheme"),
        pytest.param(lambda c: {"authorization": f"Bearer {_expired_token(c)}"}, id="expired"),
        pytest.param(lambda c: {"authorization": f"Bearer {_forged_token(c)}"}, id="forged"),
    ],
)
async def test_missing_or_bad_token_closes_with_4403(live_server, make_payload):
    account = await make_client()
    credential = await Credential.get(email=account.email)
    code, reason, received = await _init_and_close(live_server.ws_url, make_payload(credential))
    assert code == 4403, (code, reason)
    assert received == []  # no connection_ack, nothing executed


async def test_valid_token_is_acknowledged(live_server):
    # The control for the test above: same path, a good token, an ack and an open socket.
    account = await make_client()
    async with connect(live_server.ws_url, subprotocols=[PROTOCOL]) as ws:
        init = {"authorization": f"Bearer {account.token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_legacy_graphql_ws_subprotocol_is_refused(live_server):
    account = await make_client()
    async with connect(live_server.ws_url, subprotocols=["graphql-ws"]) as ws:
        assert ws.subprotocol != "graphql-ws"
        init = {"authorization": f"Bearer {account.token}"}
        with contextlib.suppress(ConnectionClosed):  # the server may have closed already
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        code, _reason, received = await _until_closed(ws, seconds=3)
    assert code == 4406
    assert received == []  # in particular, no connection_ack


async def test_legacy_client_cannot_run_a_query(live_server):
    account = await make_client()
    transport = WebsocketsTransport(
        url=live_server.ws_url,
        init_payload={"authorization": f"Bearer {account.token}"},
        subprotocols=[WebsocketsTransport.APOLLO_SUBPROTOCOL],
        connect_timeout=3,
        ack_timeout=3,
    )
    with pytest.raises(TransportError):
        async with Client(transport=transport, fetch_schema_from_transport=False) as session:
            await session.execute(parse(PROFILE_EMAIL))


async def test_no_connection_init_closes_with_4408(live_server):
    started = time.monotonic()
    async with connect(live_server.ws_url, subprotocols=[PROTOCOL]) as ws:
        code, _reason, received = await _until_closed(ws, seconds=6.5)
    elapsed = time.monotonic() - started
    assert code == 4408
    assert received == []
    assert 4 <= elapsed < 6.5, elapsed


# --- caps per account and per address (issue 16, item 8) ----------------------------------


async def _acked(url: str, token: str, stack: contextlib.AsyncExitStack) -> Any:
    ws = await stack.enter_async_context(connect(url, subprotocols=[PROTOCOL]))
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    assert json.loads(await asyncio.wait_for(ws.recv(), 3))["type"] == "connection_ack"
    return ws


async def test_one_account_holds_a_few_sockets_and_is_told_why_at_the_next(live_server):
    from app.settings import get_settings

    account, other = await make_client(), await make_client()
    cap = get_settings().max_websockets_per_account
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(cap):
            await _acked(live_server.ws_url, account.token, stack)
        code, reason, received = await _init_and_close(
            live_server.ws_url, {"authorization": f"Bearer {account.token}"}
        )
        assert (code, reason) == (4429, "Too many connections for this account.")
        assert received == []
        await _acked(live_server.ws_url, other.token, stack)  # others are not affected
    # closed sockets are counted out: the account connects again
    async with contextlib.AsyncExitStack() as stack:
        await _acked(live_server.ws_url, account.token, stack)


async def test_one_address_holds_a_bounded_number_of_sockets():
    from tests.ws_support import serve, settings_with

    account = await make_client()
    async with serve(settings_with(max_websockets_per_address=2)) as server:
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(2):  # not even logged in yet
                await stack.enter_async_context(connect(server.ws_url, subprotocols=[PROTOCOL]))
            async with connect(server.ws_url, subprotocols=[PROTOCOL]) as refused:
                code, reason, _ = await _until_closed(refused, seconds=3)
            assert (code, reason) == (4429, "Too many connections from this address.")
        async with contextlib.AsyncExitStack() as stack:
            await _acked(server.ws_url, account.token, stack)
