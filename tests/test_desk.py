"""The agents' desk (issue 19, item 3): internal notes, tags, a dossier's owner and the
workload per agent. Notes never reach the dossier's client or members: not by any query,
notification or live update (tests/test_authorization.py proves it over random worlds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from app.auth import viewer_from_token
from app.consumers import install_consumers
from app.models import Document, DocumentVersion, DossierMember, Event, Notification, StepInstance
from app.models.enums import EventType
from app.services.workflow.actions import assign_step
from app.subscriptions import topics
from tests.documents_support import make_pdf, upload
from tests.factories import make_admin, make_agent, make_client, make_dossier
from tests.helpers import count_statements, error_codes, gql
from tests.ws_support import Feed, serve, settings_with, wait_until, ws_session

ADD = """
mutation($input: AddDossierNoteInput!) {
  addDossierNote(input: $input) {
    note { id body pinned editedAt author { id } } userErrors { code field message } } }
"""
EDIT = """
mutation($input: EditDossierNoteInput!) {
  editDossierNote(input: $input) { note { id body pinned editedAt } userErrors { code field } } }
"""
DELETE = """
mutation($id: ID!) {
  deleteDossierNote(input: {noteId: $id}) { deletedNoteId userErrors { code } } }
"""
NOTES = """
query($id: ID!, $first: Int, $after: String) {
  dossier(id: $id) {
    notes(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } nodes { id body pinned } } } }
"""
TAG = """
mutation($id: ID!, $tags: [String!]!) {
  tagDossier(input: {dossierId: $id, tags: $tags}) {
    dossier { id tags } userErrors { code field message } } }
"""
UNTAG = """
mutation($id: ID!, $tags: [String!]!) {
  untagDossier(input: {dossierId: $id, tags: $tags}) { dossier { tags } userErrors { code } } }
"""
OWNER = """
mutation($id: ID!, $agent: ID) {
  assignDossierOwner(input: {dossierId: $id, agentId: $agent}) {
    dossier { id owner { id } } userErrors { code field } } }
"""
LIST = """
query($filter: DossierFilter) { dossiers(filter: $filter, first: 50) { nodes { id } } }
"""
WORKLOAD = """
query($first: Int, $after: String) {
  agentWorkload(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { agent { id } openDossiers waitingReviews overdueSteps } } }
"""
CLIENT_VIEW = """
query($id: ID!) {
  dossier(id: $id) {
    id status timeline(last: 100) { kind at }
    messages(last: 50) { nodes { content } }
  }
  notifications(first: 50) { nodes { title message } }
}
"""
SECRET = "The client lied about their address: check with the préfecture"


async def _note(client, token, dossier_id, body=SECRET, pinned=False) -> dict:
    data = await gql(
        client,
        ADD,
        {"input": {"dossierId": str(dossier_id), "body": body, "pinned": pinned}},
        token=token,
    )
    return data["addDossierNote"]


async def test_agents_write_read_edit_and_delete_internal_notes(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    writer, colleague, admin = await make_agent(), await make_agent(), await make_admin()

    first = await _note(client, writer.token, dossier.id, "  First call: \r\nasked for a delay  ")
    assert first["userErrors"] == []
    assert first["note"]["body"] == "First call: \nasked for a delay"
    assert first["note"]["author"]["id"] == writer.id
    second = (await _note(client, colleague.token, dossier.id, "Second", pinned=True))["note"]
    third = (await _note(client, writer.token, dossier.id, "Third"))["note"]

    page = (await gql(client, NOTES, {"id": str(dossier.id), "first": 2}, token=admin.token))[
        "dossier"
    ]["notes"]
    assert [n["id"] for n in page["nodes"]] == [third["id"], second["id"]]  # newest first
    assert page["totalCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await gql(
        client,
        NOTES,
        {"id": str(dossier.id), "first": 2, "after": page["pageInfo"]["endCursor"]},
        token=admin.token,
    )
    assert [n["id"] for n in rest["dossier"]["notes"]["nodes"]] == [first["note"]["id"]]

    # only its author edits it
    refused = await gql(
        client, EDIT, {"input": {"noteId": third["id"], "body": "mine"}}, token=colleague.token
    )
    assert [e["code"] for e in refused["editDossierNote"]["userErrors"]] == ["NOT_AUTHOR"]
    edited = await gql(
        client,
        EDIT,
        {"input": {"noteId": third["id"], "body": "Third, edited", "pinned": True}},
        token=writer.token,
    )
    assert edited["editDossierNote"]["note"]["body"] == "Third, edited"
    assert edited["editDossierNote"]["note"]["pinned"] is True
    assert edited["editDossierNote"]["note"]["editedAt"] is not None
    empty = await gql(
        client, EDIT, {"input": {"noteId": third["id"], "body": "  "}}, token=writer.token
    )
    assert [e["code"] for e in empty["editDossierNote"]["userErrors"]] == ["REQUIRED"]

    # its author or an admin deletes it, for good; another agent may not
    refused = await gql(client, DELETE, {"id": third["id"]}, token=colleague.token)
    assert [e["code"] for e in refused["deleteDossierNote"]["userErrors"]] == ["NOT_AUTHOR"]
    gone = await gql(client, DELETE, {"id": second["id"]}, token=admin.token)
    assert gone["deleteDossierNote"]["deletedNoteId"] == second["id"]
    missing = await gql(client, DELETE, {"id": second["id"]}, token=admin.token, expect_errors=True)
    assert error_codes(missing) == ["NOT_FOUND"]
    left = await gql(client, NOTES, {"id": str(dossier.id)}, token=writer.token)
    assert {n["id"] for n in left["dossier"]["notes"]["nodes"]} == {
        third["id"],
        first["note"]["id"],
    }

    kinds = await Event.filter(
        entity_id=dossier.id, event_type__startswith="DOSSIER_NOTE"
    ).values_list("event_type", "payload")
    assert sorted(k for k, _ in kinds) == sorted(
        [EventType.DOSSIER_NOTE_ADDED] * 3
        + [EventType.DOSSIER_NOTE_EDITED, EventType.DOSSIER_NOTE_DELETED]
    )
    assert all("body" not in payload for _, payload in kinds)  # events never carry the text

    bad = await _note(client, writer.token, dossier.id, "x" * 5001)
    assert [e["code"] for e in bad["userErrors"]] == ["TOO_LONG"]
    assert (
        await Event.filter(entity_id=dossier.id, event_type=EventType.DOSSIER_NOTE_ADDED).count()
        == 3
    )


async def test_a_client_or_member_never_sees_a_note(client):
    install_consumers()
    owner, spouse = await make_client(), await make_client()
    dossier = await make_dossier(owner)
    await DossierMember.create(dossier_id=dossier.id, profile_id=spouse.obj.id, role="SPOUSE")
    agent, colleague = await make_agent(), await make_agent()
    await gql(client, OWNER, {"id": str(dossier.id), "agent": colleague.id}, token=agent.token)
    await _note(client, agent.token, dossier.id)

    for who in (owner, spouse):
        body = await gql(
            client, NOTES, {"id": str(dossier.id)}, token=who.token, expect_errors=True
        )
        assert error_codes(body) == ["FORBIDDEN"]
        assert SECRET not in json.dumps(body)
        seen = await gql(client, CLIENT_VIEW, {"id": str(dossier.id)}, token=who.token)
        assert SECRET not in json.dumps(seen)
        for field in ("tags", "owner { id }"):
            refused = await gql(
                client, f"query($id: ID!) {{ dossier(id: $id) {{ {field} }} }}",
                {"id": str(dossier.id)}, token=who.token, expect_errors=True,
            )  # fmt: skip
            assert error_codes(refused) == ["FORBIDDEN"]
        for mutation, variables in (
            (ADD, {"input": {"dossierId": str(dossier.id), "body": "hi"}}),
            (TAG, {"id": str(dossier.id), "tags": ["vip"]}),
            (OWNER, {"id": str(dossier.id), "agent": agent.id}),
        ):
            refused = await gql(client, mutation, variables, token=who.token, expect_errors=True)
            assert error_codes(refused) == ["FORBIDDEN"]

    # the dossier's owner is told, in-app, without the text; nobody else is
    told = await Notification.filter(template_code="dossier_note_added")
    assert [n.agent_id for n in told] == [colleague.obj.id]
    assert SECRET not in told[0].message
    assert SECRET not in json.dumps(told[0].payload)
    assert not await Notification.filter(user_id__in=[owner.obj.id, spouse.obj.id]).filter(
        template_code__in=["dossier_note_added", "dossier_owner_assigned"]
    )


CLIENT_FEED = "subscription { dossierUpdated { eventType } }"
NOTIFIED = "subscription { notificationAdded { templateCode title message } }"
HOLD = """
mutation($id: ID!) {
  changeDossierStatus(input: {dossierId: $id, action: HOLD, reason: "Waiting"}) {
    userErrors { code } } }
"""


async def test_notes_tags_and_owners_never_reach_a_clients_live_updates(client):
    install_consumers()
    owner = await make_client()
    dossier = await make_dossier(owner)
    agent = await make_agent()
    async with serve(settings_with()) as server, ws_session(server.ws_url, owner.token) as ws:
        updates = Feed(ws, CLIENT_FEED).start()
        notices = Feed(ws, NOTIFIED).start()
        hub = server.app.state.hub
        for channel in (topics.client_updates(owner.id), topics.notifications("profile", owner.id)):
            await wait_until(lambda c=channel: hub.subscriber_count(c) >= 1, what="subscribed")
        await _note(client, agent.token, dossier.id)
        await gql(client, TAG, {"id": str(dossier.id), "tags": ["difficult"]}, token=agent.token)
        await gql(client, OWNER, {"id": str(dossier.id), "agent": agent.id}, token=agent.token)
        await gql(client, HOLD, {"id": str(dossier.id)}, token=agent.token)  # the marker
        first = await updates.next()
        assert first["dossierUpdated"]["eventType"] == "DOSSIER_STATUS_CHANGED"
        got = await notices.quiet(1.0)
        desk = ("dossier_note_added", "dossier_owner_assigned")
        assert all(n["notificationAdded"]["templateCode"] not in desk for n in got)
        assert SECRET not in json.dumps(got)
        await updates.stop()
        await notices.stop()


async def test_tags_are_normalised_filtered_and_counted(client):
    agent = await make_agent()
    one, two = await make_dossier(await make_client()), await make_dossier(await make_client())
    tagged = await gql(
        client,
        TAG,
        {"id": str(one.id), "tags": ["  VIP ", "vip", "Préfecture   92"]},
        token=agent.token,
    )
    assert tagged["tagDossier"]["dossier"]["tags"] == ["préfecture 92", "vip"]
    await gql(client, TAG, {"id": str(two.id), "tags": ["Vip"]}, token=agent.token)
    again = await gql(client, TAG, {"id": str(one.id), "tags": ["VIP"]}, token=agent.token)
    assert again["tagDossier"]["dossier"]["tags"] == ["préfecture 92", "vip"]

    for tags, code in (
        (["<b>"], "INVALID_TAG"),
        (["x" * 41], "TOO_LONG"),
        (["  "], "REQUIRED"),
        ([], "REQUIRED"),
    ):
        refused = await gql(client, TAG, {"id": str(one.id), "tags": tags}, token=agent.token)
        assert [e["code"] for e in refused["tagDossier"]["userErrors"]] == [code], tags
    many = [f"t{n}" for n in range(19)]
    refused = await gql(client, TAG, {"id": str(one.id), "tags": many}, token=agent.token)
    assert [e["code"] for e in refused["tagDossier"]["userErrors"]] == ["TOO_MANY_TAGS"]
    assert (
        await gql(
            client,
            "query($id: ID!) { dossier(id: $id) { tags } }",
            {"id": str(one.id)},
            token=agent.token,
        )
    )["dossier"]["tags"] == ["préfecture 92", "vip"]

    vip = await gql(client, LIST, {"filter": {"tag": " VIP"}}, token=agent.token)
    assert {n["id"] for n in vip["dossiers"]["nodes"]} == {str(one.id), str(two.id)}
    prefecture = await gql(client, LIST, {"filter": {"tag": "préfecture 92"}}, token=agent.token)
    assert [n["id"] for n in prefecture["dossiers"]["nodes"]] == [str(one.id)]

    query = (
        "query($after: String) { dossierTags(first: 1, after: $after) "
        "{ totalCount pageInfo { hasNextPage endCursor } nodes { name dossierCount } } }"
    )
    page = (await gql(client, query, token=agent.token))["dossierTags"]
    assert page["totalCount"] == 2
    assert page["nodes"] == [{"name": "préfecture 92", "dossierCount": 1}] or page["nodes"] == [
        {"name": "vip", "dossierCount": 2}
    ]
    rest = (await gql(client, query, {"after": page["pageInfo"]["endCursor"]}, token=agent.token))[
        "dossierTags"
    ]
    assert {n["name"]: n["dossierCount"] for n in page["nodes"] + rest["nodes"]} == {
        "préfecture 92": 1,
        "vip": 2,
    }
    assert rest["pageInfo"]["hasNextPage"] is False

    removed = await gql(
        client, UNTAG, {"id": str(one.id), "tags": ["VIP", "never had it"]}, token=agent.token
    )
    assert removed["untagDossier"]["dossier"]["tags"] == ["préfecture 92"]
    events = await Event.filter(
        entity_id=one.id, event_type__in=[EventType.DOSSIER_TAGGED, EventType.DOSSIER_UNTAGGED]
    ).order_by("created_at")
    assert [(e.event_type, e.payload["tags"]) for e in events] == [
        (EventType.DOSSIER_TAGGED, ["vip", "préfecture 92"]),
        (EventType.DOSSIER_UNTAGGED, ["vip"]),
    ]
    client_account = await make_client()
    refused = await gql(
        client, LIST, {"filter": {"tag": "vip"}}, token=client_account.token, expect_errors=True
    )
    assert error_codes(refused) == ["FORBIDDEN"]


async def test_a_dossiers_owner_is_assigned_filtered_and_told(client):
    install_consumers()
    admin, agent, colleague = await make_admin(), await make_agent(), await make_agent()
    retired = await make_agent(active=False)
    mine, theirs = await make_dossier(await make_client()), await make_dossier(await make_client())
    owned = await gql(client, OWNER, {"id": str(mine.id), "agent": agent.id}, token=admin.token)
    assert owned["assignDossierOwner"]["dossier"]["owner"]["id"] == agent.id
    await gql(client, OWNER, {"id": str(theirs.id), "agent": colleague.id}, token=agent.token)

    for agent_id, code in (
        (retired.id, "AGENT_INACTIVE"),
        (str(mine.id), "UNKNOWN_AGENT"),
        ("nope", "UNKNOWN_AGENT"),
    ):
        refused = await gql(
            client, OWNER, {"id": str(mine.id), "agent": agent_id}, token=agent.token
        )
        assert [e["code"] for e in refused["assignDossierOwner"]["userErrors"]] == [code]
    by_me = await gql(client, LIST, {"filter": {"ownedByMe": True}}, token=agent.token)
    assert [n["id"] for n in by_me["dossiers"]["nodes"]] == [str(mine.id)]
    by_id = await gql(client, LIST, {"filter": {"ownerId": colleague.id}}, token=agent.token)
    assert [n["id"] for n in by_id["dossiers"]["nodes"]] == [str(theirs.id)]

    told = await Notification.filter(template_code="dossier_owner_assigned").order_by("created_at")
    assert [n.agent_id for n in told] == [agent.obj.id, colleague.obj.id]
    assert all(n.user_id is None for n in told)
    # a note on a dossier tells its owner, not its author
    await _note(client, agent.token, mine.id, "A note")
    assert not await Notification.filter(template_code="dossier_note_added")
    await _note(client, colleague.token, mine.id, "Another")
    assert [n.agent_id for n in await Notification.filter(template_code="dossier_note_added")] == [
        agent.obj.id
    ]

    unowned = await gql(client, OWNER, {"id": str(mine.id), "agent": None}, token=agent.token)
    assert unowned["assignDossierOwner"]["dossier"]["owner"] is None
    payloads = (
        await Event.filter(entity_id=mine.id, event_type=EventType.DOSSIER_OWNER_ASSIGNED)
        .order_by("created_at")
        .values_list("payload", flat=True)
    )
    assert payloads == [
        {"agentId": agent.id, "previousAgentId": None},
        {"agentId": None, "previousAgentId": agent.id},
    ]


CANCEL = """
mutation($id: ID!) {
  changeDossierStatus(input: {dossierId: $id, action: CANCEL, reason: "Gave up"}) {
    userErrors { code } } }
"""


async def test_the_workload_of_each_agent_in_one_statement(client):
    admin, alice, bob = await make_admin(), await make_agent(), await make_agent()
    owner = await make_client()
    first, second, done = [await make_dossier(owner) for _ in range(3)]
    for dossier in (first, second, done):
        await gql(client, OWNER, {"id": str(dossier.id), "agent": alice.id}, token=admin.token)
    await gql(client, CANCEL, {"id": str(done.id)}, token=admin.token)
    # the second dossier's current step is bob's; both current steps are overdue
    await assign_step(
        await viewer_from_token(admin.token), second.current_step_instance_id, bob.obj.id
    )
    past = datetime.now(UTC) - timedelta(days=2)
    await StepInstance.filter(
        id__in=[first.current_step_instance_id, second.current_step_instance_id]
    ).update(due_at=past)
    for dossier in (first, second):
        document = await Document.get(dossier_id=dossier.id)
        sent = await upload(client, owner.token, str(document.id), make_pdf("scan"), "scan.pdf")
        assert sent["userErrors"] == [], sent
    assert await DocumentVersion.filter(awaiting_review_since__isnull=False).count() == 2

    with count_statements() as statements:
        data = await gql(client, WORKLOAD, {"first": 100}, token=alice.token)
    loads = {n["agent"]["id"]: n for n in data["agentWorkload"]["nodes"]}
    assert loads[alice.id] == {
        "agent": {"id": alice.id},
        "openDossiers": 2,
        "waitingReviews": 1,
        "overdueSteps": 1,
    }
    assert loads[bob.id] == {
        "agent": {"id": bob.id},
        "openDossiers": 0,
        "waitingReviews": 1,
        "overdueSteps": 1,
    }
    assert loads[admin.id]["openDossiers"] == 0
    workload_statements = [s for s in statements if "COUNT(*)" in s and "owner_id" in s]
    assert len(workload_statements) == 1, statements

    page = (await gql(client, WORKLOAD, {"first": 1}, token=admin.token))["agentWorkload"]
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["totalCount"] == 3
    refused = await gql(client, WORKLOAD, token=owner.token, expect_errors=True)
    assert error_codes(refused) == ["FORBIDDEN"]


def test_desk_events_reach_staff_only_by_rule():
    """The desk's events: notified to staff audiences only, and none is a live update that
    the publisher sends to a dossier's or a client's topic."""
    from app.services.notifications.rules import RULES, STAFF_AUDIENCES, STAFF_ONLY_EVENTS
    from app.subscriptions.publisher import REVIEW_EVENTS, UPDATE_EVENTS

    for event_type in STAFF_ONLY_EVENTS:
        assert {rule.audience for rule in RULES.get(event_type, ())} <= STAFF_AUDIENCES
    assert not STAFF_ONLY_EVENTS & (REVIEW_EVENTS | UPDATE_EVENTS | {EventType.MESSAGE_SENT})
