"""The same answers with and without the speed shortcuts (FAST_PATHS).

The bench's documents (bench/queries.py), on the bench's own worlds (bench/world.py), sent
to two apps over one database: one on our executor, lean resolvers and joined pages, one
on strawberry's and graphql-core's own execution (`FAST_PATHS=false`). The answers must
be equal field by field, for clients and agents, on every page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import get_settings
from bench import world as worlds
from bench.queries import DASHBOARD, REVIEW_QUEUE, SEND_MESSAGE
from tests.helpers import gql
from tests.test_statement_counts import row_token


@pytest.fixture(scope="module")
def apps(database_url: str) -> dict[bool, Any]:
    settings = get_settings()
    return {
        flag: create_app(settings.model_copy(update={"fast_paths": flag}), manage_db=False)
        for flag in (True, False)
    }


@pytest.fixture
async def clients(apps) -> AsyncIterator[dict[bool, httpx.AsyncClient]]:
    opened = {
        flag: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        for flag, app in apps.items()
    }
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()


def first_difference(fast: Any, default: Any, path: str = "data") -> str | None:
    if type(fast) is not type(default):
        return f"{path}: {fast!r} != {default!r}"
    if isinstance(fast, dict):
        if fast.keys() != default.keys():
            return f"{path}: keys {sorted(fast)} != {sorted(default)}"
        for key in fast:
            found = first_difference(fast[key], default[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(fast, list):
        if len(fast) != len(default):
            return f"{path}: {len(fast)} items != {len(default)}"
        for i, (a, b) in enumerate(zip(fast, default, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if fast == default else f"{path}: {fast!r} != {default!r}"


async def both_ways(clients, document: str, variables=None, *, token: str) -> dict[str, Any]:
    fast = await gql(clients[True], document, variables, token=token)
    default = await gql(clients[False], document, variables, token=token)
    difference = first_difference(fast, default)
    assert difference is None, f"FAST_PATHS changes the answer at {difference}"
    return fast


def assert_the_apps_differ(apps) -> None:
    """The two apps really run differently (a test of nothing otherwise)."""
    from app.compat.graphql_core import PlainFieldExecution

    fast, default = (apps[flag].state.graphql.schema for flag in (True, False))
    assert issubclass(fast.execution_context_class, PlainFieldExecution)
    assert not issubclass(default.execution_context_class, PlainFieldExecution)


async def test_client_dashboard_answers_the_same_both_ways(apps, clients):
    assert_the_apps_differ(apps)
    world = worlds.client_world("M")
    await worlds.orm_rows(world)
    data = await both_ways(clients, DASHBOARD, token=await row_token(world.clients[0]))
    nodes = data["dossiers"]["nodes"]
    assert len(nodes) == worlds.SHAPES["M"].dossiers
    assert all(n["currentStep"]["documents"] for n in nodes)  # nested lists compared too


async def test_review_queue_answers_the_same_both_ways_on_every_page(clients):
    world = worlds.queue_world(60)
    await worlds.orm_rows(world)
    token = await row_token(world.agents[0])
    seen = 0
    after = None
    for _ in range(5):
        data = await both_ways(
            clients,
            REVIEW_QUEUE.replace(
                "reviewQueue(first: $first)", "reviewQueue(first: $first, after: $after)"
            ).replace(
                "query ReviewQueue($first: Int!)", "query ReviewQueue($first: Int!, $after: String)"
            ),
            {"first": 5, "after": after},
            token=token,
        )
        queue = data["reviewQueue"]
        seen += len(queue["edges"])
        assert all(e["node"]["dossier"]["client"]["fullName"] for e in queue["edges"])
        if not queue["pageInfo"]["hasNextPage"]:
            break
        after = queue["pageInfo"]["endCursor"]
    assert seen == 25  # five full pages of the 60 // 5 … waiting versions


async def test_agent_dossier_list_answers_the_same_both_ways(clients):
    world = worlds.queue_world(30)
    await worlds.orm_rows(world)
    data = await both_ways(clients, DASHBOARD, token=await row_token(world.agents[0]))
    assert len(data["dossiers"]["nodes"]) == 30


async def test_send_message_answers_alike_both_ways(clients):
    world = worlds.client_world("S")
    await worlds.orm_rows(world)
    token = await row_token(world.clients[0])
    dossier_id = str(world.dossier_ids[0])
    answers = []
    for flag in (True, False):
        data = await gql(
            clients[flag],
            SEND_MESSAGE,
            {"input": {"dossierId": dossier_id, "content": "Same either way"}},
            token=token,
        )
        payload = data["sendMessage"]
        assert payload["userErrors"] == []
        message = payload["message"]
        answers.append((message["content"], message["senderType"], sorted(message)))
    assert answers[0] == answers[1]
