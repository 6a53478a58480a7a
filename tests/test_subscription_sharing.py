"""A live event reaching many subscribers is executed once per operation and variables
(app.subscriptions.sharing): every subscriber still gets exactly the frame it would have
had on its own, a different selection or different variables get their own result, and
access is still checked per subscriber. Real uvicorn, real graphql-transport-ws clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from app.subscriptions import topics
from app.subscriptions.sharing import stats
from tests.factories import make_admin, make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.test_chat import MESSAGE_ADDED, send
from tests.ws_support import WAIT, Feed, error_codes_of, serve, settings_with, ws_session

PROTOCOL = "graphql-transport-ws"

UPDATED = """
subscription Updated($dossierId: ID) {
  dossierUpdated(dossierId: $dossierId) {
    eventId dossierId eventType oldStatus newStatus status reason
  }
}
"""

UPDATED_SHORT = """
subscription Short($dossierId: ID) { dossierUpdated(dossierId: $dossierId) { newStatus } }
"""

UPDATED_MAYBE_REASON = """
subscription Maybe($dossierId: ID, $withReason: Boolean!) {
  dossierUpdated(dossierId: $dossierId) { newStatus reason @include(if: $withReason) }
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


class RawSocket:
    """One graphql-transport-ws connection read frame by frame, as text."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))

    async def frame(self) -> str:
        return await asyncio.wait_for(self.ws.recv(), WAIT)


@contextlib.asynccontextmanager
async def raw_socket(url: str, token: str) -> AsyncIterator[RawSocket]:
    async with connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "connection_ack"
        yield RawSocket(ws)


async def _live(app, channel: str, count: int) -> None:
    hub = app.state.hub
    deadline = asyncio.get_running_loop().time() + WAIT
    while hub.subscriber_count(channel) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{channel}: not {count} live"
        await asyncio.sleep(0.02)


def _next_frame(op_id: str, data: dict[str, Any]) -> str:
    """The frame strawberry's handler sends for a result without errors."""
    message = {"id": op_id, "type": "next", "payload": {"data": data}}
    return json.dumps(message, separators=(",", ":"))


async def _hold(client, agent, dossier, reason: str) -> None:
    hold = {"dossierId": str(dossier.id), "action": "HOLD", "reason": reason}
    data = await gql(client, HOLD, {"input": hold}, token=agent.token)
    assert data["changeDossierStatus"]["userErrors"] == []


@pytest.mark.fast_paths
async def test_one_execution_per_event_and_operation_identical_frames(client, live_server, app):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    dossier_id = str(dossier.id)
    url = live_server.ws_url
    async with contextlib.AsyncExitStack() as stack:
        same = [await stack.enter_async_context(raw_socket(url, agent.token)) for _ in range(5)]
        same.append(await stack.enter_async_context(raw_socket(url, owner.token)))
        short = await stack.enter_async_context(raw_socket(url, agent.token))
        with_reason = await stack.enter_async_context(raw_socket(url, agent.token))
        without_reason = await stack.enter_async_context(raw_socket(url, agent.token))
        for i, sock in enumerate(same):
            await sock.subscribe(f"op-{i % 2}", UPDATED, {"dossierId": dossier_id})
        await short.subscribe("s", UPDATED_SHORT, {"dossierId": dossier_id})
        maybe = UPDATED_MAYBE_REASON
        await with_reason.subscribe("w", maybe, {"dossierId": dossier_id, "withReason": True})
        await without_reason.subscribe("n", maybe, {"dossierId": dossier_id, "withReason": False})
        await _live(app, topics.dossier_updates(dossier_id), 9)

        executions, reused = stats.executions, stats.reused
        await _hold(client, agent, dossier, "waiting for the bank")
        frames = [await sock.frame() for sock in same]
        event = json.loads(frames[0])["payload"]["data"]["dossierUpdated"]
        assert event["newStatus"] == "ON_HOLD"
        assert event["reason"] == "waiting for the bank"
        assert event["dossierId"] == dossier_id
        for i, frame in enumerate(frames):  # each its own id, byte for byte the same result
            assert frame == _next_frame(f"op-{i % 2}", {"dossierUpdated": event})
        assert await short.frame() == _next_frame("s", {"dossierUpdated": {"newStatus": "ON_HOLD"}})
        assert await with_reason.frame() == _next_frame(
            "w", {"dossierUpdated": {"newStatus": "ON_HOLD", "reason": "waiting for the bank"}}
        )
        assert await without_reason.frame() == _next_frame(
            "n", {"dossierUpdated": {"newStatus": "ON_HOLD"}}
        )
        # one execution per (document, variables): UPDATED, UPDATED_SHORT, and MAYBE twice
        assert stats.executions - executions == 4
        assert stats.reused - reused == 5


@pytest.mark.fast_paths
async def test_shared_live_messages_keep_their_own_ids_and_cursor(client, live_server, app):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    async with (
        ws_session(live_server.ws_url, owner.token) as owner_ws,
        ws_session(live_server.ws_url, agent.token) as agent_ws,
    ):
        feeds = [
            Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
            for session in (owner_ws, agent_ws, agent_ws)
        ]
        await _live(app, topics.dossier_messages(dossier.id), 3)
        try:
            executions = stats.executions
            await send(client, owner, dossier.id, "Bonjour, voici mon dossier")
            got = [(await feed.next())["messageAdded"] for feed in feeds]
            assert got[0]["node"]["content"] == "Bonjour, voici mon dossier"
            assert got[0] == got[1] == got[2]
            assert stats.executions - executions == 1
        finally:
            for feed in feeds:
                await feed.stop()


async def test_a_revoked_subscriber_gets_nothing_more_while_the_others_do(client):
    admin, kept, revoked, owner = (
        await make_admin(),
        await make_agent(),
        await make_agent(),
        await make_client(),
    )
    dossier = await make_dossier(owner)
    settings = settings_with(subscription_recheck_seconds=0.2)
    variables = {"dossierId": str(dossier.id)}
    async with (
        serve(settings) as server,
        ws_session(server.ws_url, kept.token) as kept_ws,
        ws_session(server.ws_url, revoked.token) as revoked_ws,
    ):
        kept_feed = Feed(kept_ws, UPDATED, variables).start()
        revoked_feed = Feed(revoked_ws, UPDATED, variables).start()
        await _live(server.app, topics.dossier_updates(dossier.id), 2)
        try:
            await _hold(client, kept, dossier, "first")
            for feed in (kept_feed, revoked_feed):
                assert (await feed.next())["dossierUpdated"]["reason"] == "first"
            off = {"id": revoked.id, "active": False}
            data = await gql(client, DEACTIVATE, {"input": off}, token=admin.token)
            assert data["updateAgent"]["agent"]["active"] is False
            items, ended = await revoked_feed.until_end(within=3)
            assert error_codes_of(ended.error) == ["UNAUTHENTICATED"]
            assert items == []
            resume = {"dossierId": str(dossier.id), "action": "RELEASE", "reason": "second"}
            data = await gql(client, HOLD, {"input": resume}, token=kept.token)
            assert data["changeDossierStatus"]["userErrors"] == []
            got = (await kept_feed.next())["dossierUpdated"]
            assert got["oldStatus"] == "ON_HOLD"
            assert got["reason"] == "second"
            assert await revoked_feed.quiet(0.3) == []
        finally:
            await kept_feed.stop()
            await revoked_feed.stop()
