"""Chat: sending, history both ways, attachments, read state and unread counts, ordering
under concurrency, and a live round trip between a client and an agent over WebSocket."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from app.auth import viewer_from_token
from app.models import Document, DocumentVersion, Dossier, Event, Message
from app.models.enums import ActorType, DocumentStatus, EventType
from app.services import messages as message_service
from app.subscriptions import topics
from tests.factories import Account, make_agent, make_client, make_dossier
from tests.helpers import count_statements, error_codes, gql
from tests.ws_support import Feed, wait_until, ws_session

SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    message { id dossierId content senderType senderId senderName readAt createdAt
              attachments { documentVersionId documentId fileName mimeType fileSizeBytes
                            versionNumber } }
    cursor
    userErrors { code field message }
  }
}
"""

MARK_READ = """
mutation Read($input: MarkDossierMessagesReadInput!) {
  markDossierMessagesRead(input: $input) {
    markedCount
    dossier { id unreadMessageCount }
    userErrors { code field message }
  }
}
"""

HISTORY = """
query History($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  dossier(id: $id) {
    unreadMessageCount
    messages(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id content senderType readAt } }
    }
  }
}
"""

UNREAD = """
query Unread($id: ID!) {
  me { ... on Profile { unreadMessageCount } ... on Agent { unreadMessageCount } }
  dossier(id: $id) { unreadMessageCount client { id unreadMessageCount } }
}
"""

MESSAGE_ADDED = """
subscription Added($dossierId: ID!, $after: String) {
  messageAdded(dossierId: $dossierId, after: $after) {
    cursor
    node { id content senderType senderName }
  }
}
"""


async def send(client, account: Account, dossier_id, content: str, **extra) -> dict:
    variables = {"input": {"dossierId": str(dossier_id), "content": content, **extra}}
    return (await gql(client, SEND, variables, token=account.token))["sendMessage"]


async def history(client, account: Account, dossier_id, **page) -> dict:
    variables = {"id": str(dossier_id), **page}
    return (await gql(client, HISTORY, variables, token=account.token))["dossier"]


async def uploaded_version(dossier: Dossier, name: str = "passport.pdf") -> DocumentVersion:
    """A file of the dossier's first document, written directly."""
    document = await Document.filter(dossier_id=dossier.id).order_by("created_at").first()
    assert document is not None
    number = await DocumentVersion.filter(document_id=document.id).count() + 1
    version = await DocumentVersion.create(
        document_id=document.id,
        file_url=f"documents/{uuid.uuid4().hex}",
        file_name=name,
        file_size_bytes=1234,
        mime_type="application/pdf",
        uploaded_by_type=ActorType.USER,
        version_number=number,
    )
    await Document.filter(id=document.id).update(
        current_version_id=version.id, status=DocumentStatus.UPLOADED
    )
    await DocumentVersion.filter(document_id=document.id).update(awaiting_review_since=None)
    await DocumentVersion.filter(id=version.id).update(awaiting_review_since=version.uploaded_at)
    return version


async def test_client_and_agent_chat_and_read_the_history_both_ways(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    sent = []
    for i in range(5):
        author = owner if i % 2 == 0 else agent
        result = await send(client, author, dossier.id, f"  message {i}\n")
        assert result["userErrors"] == []
        sent.append(result["message"])
    assert [m["content"] for m in sent] == [f"message {i}" for i in range(5)]  # trimmed
    assert sent[0]["senderType"] == "USER"
    assert sent[0]["senderId"] == owner.id
    assert sent[0]["senderName"] == owner.obj.full_name
    assert sent[1]["senderType"] == "AGENT"
    assert sent[1]["senderName"] == agent.obj.name
    assert all(m["readAt"] is None and m["dossierId"] == str(dossier.id) for m in sent)

    # Oldest first, forwards in pages of two.
    page = await history(client, agent, dossier.id, first=2)
    assert page["messages"]["totalCount"] == 5
    assert [e["node"]["id"] for e in page["messages"]["edges"]] == [m["id"] for m in sent[:2]]
    assert page["messages"]["pageInfo"]["hasNextPage"] is True
    after = page["messages"]["pageInfo"]["endCursor"]
    page = await history(client, agent, dossier.id, first=10, after=after)
    assert [e["node"]["id"] for e in page["messages"]["edges"]] == [m["id"] for m in sent[2:]]
    assert page["messages"]["pageInfo"]["hasNextPage"] is False

    # Backwards from the latest: `last` gives the newest, still oldest first in the page.
    page = await history(client, owner, dossier.id, last=2)
    assert [e["node"]["id"] for e in page["messages"]["edges"]] == [m["id"] for m in sent[3:]]
    assert page["messages"]["pageInfo"]["hasPreviousPage"] is True
    before = page["messages"]["pageInfo"]["startCursor"]
    page = await history(client, owner, dossier.id, last=10, before=before)
    assert [e["node"]["id"] for e in page["messages"]["edges"]] == [m["id"] for m in sent[:3]]

    # The mutation's cursor is the edge's cursor.
    last = await send(client, owner, dossier.id, "latest")
    page = await history(client, owner, dossier.id, last=1)
    assert page["messages"]["edges"][0]["cursor"] == last["cursor"]


async def test_a_message_and_its_event_are_written_together(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    result = await send(client, owner, dossier.id, "hello")
    message_id = uuid.UUID(result["message"]["id"])
    event = await Event.get(entity_type="message", entity_id=message_id)
    assert event.event_type == EventType.MESSAGE_SENT
    assert event.actor_type == ActorType.USER
    assert event.actor_id == owner.obj.id
    assert event.payload["dossierId"] == str(dossier.id)
    assert event.payload["senderType"] == "USER"
    assert event.payload["senderId"] == owner.id
    # dispatched after commit: published to live subscribers, and processed
    assert event.published_at is not None
    assert event.processed_at is not None


async def test_content_must_be_present_and_bounded(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    for content, code in (("", "REQUIRED"), (" \n\t ", "REQUIRED"), ("x" * 10_001, "TOO_LONG")):
        result = await send(client, owner, dossier.id, content)
        assert result["message"] is None
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == [(code, ["content"])]
    assert await Message.filter(dossier_id=dossier.id).count() == 0
    assert await Event.filter(event_type=EventType.MESSAGE_SENT).count() == 0
    # the bound itself is allowed
    result = await send(client, owner, dossier.id, "y" * 10_000)
    assert result["userErrors"] == []
    assert len(result["message"]["content"]) == 10_000


async def test_attachments_are_files_of_that_dossier(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    other_dossier = await make_dossier(await make_client())
    mine = await uploaded_version(dossier, "passport.pdf")
    theirs = await uploaded_version(other_dossier, "theirs.pdf")

    result = await send(
        client, owner, dossier.id, "see attached", attachments=[str(mine.id), str(mine.id)]
    )
    assert result["userErrors"] == []
    assert result["message"]["attachments"] == [
        {
            "documentVersionId": str(mine.id),
            "documentId": str(mine.document_id),  # type: ignore[attr-defined]
            "fileName": "passport.pdf",
            "mimeType": "application/pdf",
            "fileSizeBytes": 1234,
            "versionNumber": 1,
        }
    ]

    for bad in ([str(mine.id), str(theirs.id)], [str(uuid.uuid4())], ["not-an-id"]):
        result = await send(client, owner, dossier.id, "nope", attachments=bad)
        assert result["message"] is None
        assert [e["code"] for e in result["userErrors"]] == ["INVALID_ATTACHMENT"]
        assert result["userErrors"][0]["field"] == ["attachments", str(len(bad) - 1)]
    assert await Message.filter(dossier_id=dossier.id).count() == 1


async def test_someone_elses_dossier_answers_exactly_like_a_missing_one(client):
    owner, stranger, agent = await make_client(), await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    bodies = []
    for target in (str(dossier.id), str(uuid.uuid4()), "not-a-uuid"):
        variables = {"input": {"dossierId": target, "content": "hi"}}
        body = await gql(client, SEND, variables, token=stranger.token, expect_errors=True)
        assert error_codes(body) == ["NOT_FOUND"]
        bodies.append(body)
        variables = {"input": {"dossierId": target}}
        body = await gql(client, MARK_READ, variables, token=stranger.token, expect_errors=True)
        assert error_codes(body) == ["NOT_FOUND"]
    assert bodies[0] == bodies[1] == bodies[2]
    assert await Message.filter(dossier_id=dossier.id).count() == 0
    # any agent may write in any dossier
    assert (await send(client, agent, dossier.id, "hello"))["userErrors"] == []


async def test_read_state_and_unread_counts(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    second = await make_dossier(owner)
    other_owner = await make_client()
    elsewhere = await make_dossier(other_owner)
    system = None  # the system writes too (e.g. automatic notices)
    await send(client, agent, dossier.id, "agent 1")
    await send(client, agent, dossier.id, "agent 2")
    await message_service.send_message(system, dossier.id, "system notice")
    await send(client, owner, dossier.id, "client 1")
    await send(client, agent, second.id, "agent in second")
    await send(client, other_owner, elsewhere.id, "someone else")

    async def counts(account: Account, dossier_id) -> tuple[int, int, int | None]:
        data = await gql(client, UNREAD, {"id": str(dossier_id)}, token=account.token)
        return (
            data["me"]["unreadMessageCount"],
            data["dossier"]["unreadMessageCount"],
            data["dossier"]["client"]["unreadMessageCount"],
        )

    # the client reads the agents' and the system's messages; an agent reads the client's
    assert await counts(owner, dossier.id) == (4, 3, 4)
    me, in_dossier, clients_own = await counts(agent, dossier.id)
    assert (me, in_dossier, clients_own) == (2, 1, None)  # null: not the agent's own count

    result = (
        await gql(client, MARK_READ, {"input": {"dossierId": str(dossier.id)}}, token=owner.token)
    )["markDossierMessagesRead"]
    assert result == {
        "markedCount": 3,
        "dossier": {"id": str(dossier.id), "unreadMessageCount": 0},
        "userErrors": [],
    }
    rows = {m.content: m for m in await Message.filter(dossier_id=dossier.id)}
    assert all(rows[c].read_at is not None for c in ("agent 1", "agent 2", "system notice"))
    assert rows["client 1"].read_at is None  # only the other side's messages
    assert await counts(owner, dossier.id) == (1, 0, 1)  # the second dossier is still unread
    assert (await counts(agent, dossier.id))[:2] == (2, 1)

    result = (
        await gql(client, MARK_READ, {"input": {"dossierId": str(dossier.id)}}, token=agent.token)
    )["markDossierMessagesRead"]
    assert result["markedCount"] == 1
    assert (await counts(agent, dossier.id))[:2] == (1, 0)  # the other client's is left
    read_events = await Event.filter(entity_id=dossier.id, event_type=EventType.MESSAGES_READ)
    assert sorted((e.actor_type, e.payload["count"]) for e in read_events) == [
        (ActorType.AGENT, 1),
        (ActorType.USER, 3),
    ]

    # marking again changes nothing and records nothing
    again = (
        await gql(client, MARK_READ, {"input": {"dossierId": str(dossier.id)}}, token=agent.token)
    )["markDossierMessagesRead"]
    assert again["markedCount"] == 0
    assert await Event.filter(event_type=EventType.MESSAGES_READ).count() == 2


async def test_unread_counts_of_a_page_of_dossiers_take_one_query(client):
    owner, agent = await make_client(), await make_agent()
    dossiers = [await make_dossier(owner) for _ in range(4)]
    for n, dossier in enumerate(dossiers):
        for _ in range(n):
            await send(client, agent, dossier.id, "hello")
    query = "{ dossiers(first: 10) { nodes { id unreadMessageCount } } }"
    with count_statements() as statements:
        data = await gql(client, query, token=owner.token)
    counts = {n["id"]: n["unreadMessageCount"] for n in data["dossiers"]["nodes"]}
    assert counts == {str(d.id): n for n, d in enumerate(dossiers)}
    assert len([s for s in statements if "messages" in s]) == 1, statements


async def test_concurrent_sends_are_stamped_in_commit_order(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    results = await asyncio.gather(
        *(send(client, owner if i % 2 else agent, dossier.id, f"m{i}") for i in range(16))
    )
    assert all(r["userErrors"] == [] for r in results)
    rows = await Message.filter(dossier_id=dossier.id).order_by("created_at", "id")
    assert len(rows) == 16
    stamps = [r.created_at for r in rows]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 16
    # each message names the one committed before it: a single chain, in stamp order
    events = {e.entity_id: e for e in await Event.filter(event_type=EventType.MESSAGE_SENT).all()}
    previous = [events[r.id].payload["previousMessageId"] for r in rows]
    assert previous == [None] + [str(r.id) for r in rows[:-1]]


async def test_a_clock_that_steps_back_never_reorders_a_dossier(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    viewer = await viewer_from_token(owner.token)
    now = datetime.now(UTC)
    first = await message_service.send_message(viewer, dossier.id, "first", now=now)
    second = await message_service.send_message(
        viewer, dossier.id, "second", now=now - timedelta(minutes=5)
    )
    assert second.created_at == first.created_at + timedelta(microseconds=1)
    page = await history(client, owner, dossier.id, first=10)
    assert [e["node"]["content"] for e in page["messages"]["edges"]] == ["first", "second"]


async def test_live_chat_round_trip_between_a_client_and_an_agent(client, live_server, app):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    channel = topics.dossier_messages(dossier.id)
    hub = app.state.hub
    variables = {"dossierId": str(dossier.id)}
    async with (
        ws_session(live_server.ws_url, owner.token) as client_ws,
        ws_session(live_server.ws_url, agent.token) as agent_ws,
    ):
        client_feed = Feed(client_ws, MESSAGE_ADDED, variables).start()
        agent_feed = Feed(agent_ws, MESSAGE_ADDED, variables).start()
        await wait_until(lambda: hub.subscriber_count(channel) == 2, what="two subscribers")
        try:
            question = await send(client, owner, dossier.id, "When is my appointment?")
            for feed in (client_feed, agent_feed):
                got = (await feed.next())["messageAdded"]
                assert got["node"] == {
                    "id": question["message"]["id"],
                    "content": "When is my appointment?",
                    "senderType": "USER",
                    "senderName": owner.obj.full_name,
                }
                assert got["cursor"] == question["cursor"]
            answer = await send(client, agent, dossier.id, "Tuesday at 10.")
            for feed in (client_feed, agent_feed):
                got = (await feed.next())["messageAdded"]
                assert got["node"]["id"] == answer["message"]["id"]
                assert got["node"]["senderType"] == "AGENT"
                assert got["node"]["senderName"] == agent.obj.name
            # nothing else comes (no duplicate)
            assert await client_feed.quiet(0.3) == []
            assert await agent_feed.quiet(0.3) == []
        finally:
            await client_feed.stop()
            await agent_feed.stop()
    await wait_until(lambda: hub.subscriber_count(channel) == 0, what="unsubscribed")


async def test_the_chats_of_a_page_of_dossiers_load_in_one_statement(client):
    owner, agent = await make_client(), await make_agent()
    dossiers = [await make_dossier(owner) for _ in range(3)]
    for n, dossier in enumerate(dossiers):
        for i in range(n * 2):
            await send(client, agent if i % 2 else owner, dossier.id, f"d{n} m{i}")
    query = """
    query Chats($first: Int, $last: Int) { dossiers(first: 10) { nodes { id
      messages(first: $first, last: $last) {
        totalCount pageInfo { hasNextPage hasPreviousPage } nodes { content } } } } }
    """
    for page, expected in (
        ({"last": 3}, lambda n: [f"d{n} m{i}" for i in range(n * 2)][-3:]),
        ({"first": 3}, lambda n: [f"d{n} m{i}" for i in range(n * 2)][:3]),
    ):
        with count_statements() as statements:
            data = await gql(client, query, page, token=owner.token)
        chats = {node["id"]: node["messages"] for node in data["dossiers"]["nodes"]}
        for n, dossier in enumerate(dossiers):
            chat = chats[str(dossier.id)]
            assert [m["content"] for m in chat["nodes"]] == expected(n)
            assert chat["totalCount"] == n * 2
            more = n * 2 > 3
            assert chat["pageInfo"] == {
                "hasNextPage": more if "first" in page else False,
                "hasPreviousPage": more if "last" in page else False,
            }
        chat_statements = [s for s in statements if '"messages"' in s]
        assert len(chat_statements) == 2, chat_statements  # the pages, the counts
