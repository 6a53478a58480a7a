"""A batch of timelines reads each dossier's page, not its history (issue 16, item 6):
`dossiers(first: 100) { nodes { timeline(last: 1) { … } } }` used to cost 100 points and
read every status change, event, version, review and message of 100 dossiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tortoise import connections

from app.models import Message
from app.models.enums import ActorType
from tests.factories import make_agent, make_client, make_dossier
from tests.helpers import error_codes, gql

TIMELINES = """
query($last: Int!) { dossiers(first: 100) { nodes { id timeline(last: $last) { kind } } } }
"""


class RowCounter:
    """Rows the database hands back, counted at the connection (an observer only)."""

    def __init__(self, connection) -> None:
        self.rows = 0
        self.connection = connection

    def wrap(self, monkeypatch) -> None:
        for name in ("execute_query", "execute_query_dict"):
            original = getattr(self.connection, name)

            async def counted(*args, _original=original, _name=name, **kwargs):
                result = await _original(*args, **kwargs)
                rows = result[1] if _name == "execute_query" else result
                self.rows += len(rows)
                return result

            monkeypatch.setattr(self.connection, name, counted)


async def _world(messages_each: int) -> list:
    client = await make_client()
    dossiers = [await make_dossier(client) for _ in range(3)]
    start = datetime.now(UTC) + timedelta(minutes=1)  # after the dossier opened
    for dossier in dossiers:
        for n in range(messages_each):
            await Message.create(
                dossier_id=dossier.id,
                sender_type=ActorType.USER,
                sender_id=client.obj.id,
                content=f"m{n}",
                created_at=start + timedelta(minutes=n),
            )
    return dossiers


async def _rows_read(client, agent, monkeypatch) -> tuple[int, dict]:
    counter = RowCounter(connections.get("default"))
    with monkeypatch.context() as patch:
        counter.wrap(patch)
        data = await gql(client, TIMELINES, {"last": 1}, token=agent.token)
    return counter.rows, data


@pytest.mark.parametrize("history", [1, 40])
async def test_a_batch_of_timelines_reads_a_page_per_dossier(client, monkeypatch, history):
    await _world(history)
    agent = await make_agent()
    rows, data = await _rows_read(client, agent, monkeypatch)
    nodes = data["dossiers"]["nodes"]
    assert len(nodes) == 3
    assert all(len(n["timeline"]) == 1 for n in nodes)
    assert all(n["timeline"][0]["kind"] == "MESSAGE_SENT" for n in nodes)  # the latest
    # the page, its viewer, and per timeline source at most `last` ids and rows a dossier
    sources = 6  # status, step events, versions, reviews, messages, refunds
    assert rows <= 10 + 2 * sources * len(nodes), rows


async def test_rows_read_do_not_grow_with_history(client, monkeypatch):
    await _world(2)
    agent = await make_agent()
    await _rows_read(client, agent, monkeypatch)  # the catalogue's bounds, read once a while
    short, _ = await _rows_read(client, agent, monkeypatch)
    for dossier_messages in range(30):
        await Message.create(
            dossier_id=(await _first_dossier()).id,
            sender_type=ActorType.AGENT,
            sender_id=agent.obj.id,
            content=f"more {dossier_messages}",
        )
    long, _ = await _rows_read(client, agent, monkeypatch)
    assert long == short


async def _first_dossier():
    from app.models import Dossier

    return await Dossier.all().order_by("created_at").first()


async def test_a_timeline_costs_its_page_in_the_node_budget(client):
    agent = await make_agent()
    body = await gql(client, TIMELINES, {"last": 200}, token=agent.token, expect_errors=True)
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"], body
    await gql(client, TIMELINES, {"last": 50}, token=agent.token)  # 100 + 100 x 50: fits


HISTORIES = """
query($last: Int!) { dossiers(first: 100) { nodes { id statusHistory(last: $last) { reason } } } }
"""


async def _history(dossiers, changes: int) -> None:
    from app.models import DossierStatusHistory
    from app.models.enums import DossierStatus

    start = datetime.now(UTC) + timedelta(minutes=1)
    for dossier in dossiers:
        for n in range(changes):
            await DossierStatusHistory.create(
                dossier_id=dossier.id,
                old_status=DossierStatus.IN_PROGRESS,
                new_status=DossierStatus.UNDER_REVIEW,
                changed_by_type=ActorType.SYSTEM,
                reason=f"change {n}",
                created_at=start + timedelta(minutes=n),
            )


async def test_status_histories_are_paged_per_dossier(client, monkeypatch):
    dossiers = await _world(0)
    agent = await make_agent()
    await _history(dossiers, 2)
    counter = RowCounter(connections.get("default"))
    with monkeypatch.context() as patch:
        counter.wrap(patch)
        data = await gql(client, HISTORIES, {"last": 1}, token=agent.token)
    short = counter.rows
    assert [n["statusHistory"] for n in data["dossiers"]["nodes"]] == [[{"reason": "change 1"}]] * 3
    await _history(dossiers, 30)
    counter = RowCounter(connections.get("default"))
    with monkeypatch.context() as patch:
        counter.wrap(patch)
        data = await gql(client, HISTORIES, {"last": 1}, token=agent.token)
    assert [n["statusHistory"] for n in data["dossiers"]["nodes"]] == [
        [{"reason": "change 29"}]
    ] * 3
    assert counter.rows == short  # a page per dossier, whatever the history
    # and the page is what the node budget counts
    body = await gql(client, HISTORIES, {"last": 150}, token=agent.token, expect_errors=True)
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
