"""Every hot path plans with indexes on the tables that grow (issue 14).

Each hot path runs for real (its GraphQL document through the app, or one pass of a
worker job) while the ORM's statements are recorded with their parameters; each statement
is then planned by PostgreSQL with `enable_seqscan = off`, which makes the planner take any
index that can serve the statement. A Seq Scan that is left on a table that grows with
use therefore means that no index can serve it: on a firm's fifth year of data that
statement reads the whole table. Statements are planned as prepared statements end up
planned, without their values (`plan_cache_mode = force_generic_plan`), so a partial
index is only counted on when its condition is in the SQL itself. Small worlds are
enough: the plan does not depend on the rows here, only on which indexes exist and how
the SQL is written. (`make bench-scale` measures the same paths on millions of rows.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from tortoise import Tortoise, connections

from app import clock
from app.http.stripe_webhook import Outcome, handle_event
from app.models import Document, DocumentVersion, Dossier, Event
from app.models.enums import DocumentStatus
from app.services import (
    access_audit,
    chasing,
    delivery,
    document_expiry,
    outbox,
    reminders,
    retention,
)
from app.services.csv_exports import ExportKind, ExportRequest, export_rows
from app.services.phone import inbound
from app.services.privacy import exports
from app.settings import get_settings
from bench import world as worlds
from bench.queries import AGENT_DOSSIERS, DASHBOARD, REVIEW_QUEUE, SEND_MESSAGE
from bench.recording import plan_nodes, recorded
from tests.conftest import BACKEND
from tests.documents_support import make_pdf, review, upload
from tests.factories import make_admin, make_client, make_dossier, make_product
from tests.helpers import gql
from tests.test_reports import REPORTS
from tests.test_statement_counts import completed_event, row_token

pytestmark = pytest.mark.skipif(
    not BACKEND.is_postgres, reason="query plans are PostgreSQL's (embedded backend in use)"
)

# Tables that stay small whatever the firm's age: the catalogue and the staff. Every other
# table grows with clients, dossiers and time.
SMALL_TABLES = {"products", "steps", "product_steps", "document_types", "agents"}

QUEUE_MINE = """
query QueueMine {
  reviewQueue(first: 50, mine: true) {
    totalCount
    nodes { id waitingSince document { id status } dossier { id } }
  }
}
"""

ACCESS_LOG = "query($id: ID) { accessLog(%s: $id, first: 50) { nodes { kind occurredAt } } }"

QUEUE_COUNT = "query { reviewQueue(first: 50) { totalCount nodes { id } } }"

OVERDUE = """
query Overdue($mine: Boolean!) {
  overdueDossiers(first: 50, mine: $mine) {
    totalCount
    nodes { overdueSeconds dossier { id status client { fullName } } }
  }
}
"""

NOTIFICATIONS = """
query Notifications($unread: Boolean!) {
  unreadNotificationCount
  notifications(first: 20, unreadOnly: $unread) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id title read createdAt }
  }
}
"""

MESSAGES = """
query Messages($id: ID!, $first: Int, $last: Int, $before: String) {
  dossier(id: $id) {
    unreadMessageCount
    messages(first: $first, last: $last, before: $before) {
      totalCount
      pageInfo { hasPreviousPage startCursor }
      nodes { id content senderType createdAt }
    }
  }
}
"""

TIMELINE = """
query Timeline($id: ID!) {
  dossier(id: $id) { timeline(last: 50) { kind at } }
}
"""

EVENTS = """
query Events($entityType: String, $entityId: ID, $types: [EventType!]) {
  events(entityType: $entityType, entityId: $entityId, eventTypes: $types, first: 50) {
    totalCount
    nodes { id eventType createdAt }
  }
}
"""

SEARCH = """
query Search($query: String!) {
  search(query: $query, first: 20) {
    edges { node { score ... on ClientHit { client { id fullName email } }
                   ... on DossierHit { dossier { id reference } } } }
  }
}
"""

EXPIRING = """
query Expiring {
  expiringDocuments(within: 90, first: 50) { nodes { id expiresOn } }
}
"""

DESK_SETUP = """
mutation($id: ID!, $agent: ID!) {
  addDossierNote(input: {dossierId: $id, body: "Called the préfecture"}) { userErrors { code } }
  tagDossier(input: {dossierId: $id, tags: ["vip"]}) { userErrors { code } }
  assignDossierOwner(input: {dossierId: $id, agentId: $agent}) { userErrors { code } }
}
"""
DESK_NOTES = """
query($id: ID!) {
  dossier(id: $id) {
    tags owner { id } notes(first: 20) { totalCount nodes { id body author { name } } } } }
"""
DESK_TAGS = "query { dossierTags(first: 50) { totalCount nodes { name dossierCount } } }"
WORKLOAD = """
query { agentWorkload(first: 50) {
  totalCount nodes { agent { id } openDossiers waitingReviews overdueSteps } } }
"""

CLIENT_DELIVERIES = """
query($id: ID!) { clientDeliveries(clientId: $id, first: 20) {
  totalCount nodes { id channel status notification { id templateCode } } } }
"""


async def _receipts_and_bounces(planner: Planner) -> None:
    from app.models import Notification, NotificationDelivery
    from app.models.enums import NotificationChannel, NotificationStatus
    from app.services.bounces import RecipientStatus, Report, apply_report, bounce_address
    from app.services.receipts import Receipt, apply_receipt

    notice = await Notification.create(title="t", message="m", template_code="dossier_completed")
    texted, mailed = [
        await NotificationDelivery.create(
            notification_id=notice.id,
            channel=channel,
            recipient=recipient,
            status=NotificationStatus.SENT,
            provider_message_id=sid,
        )
        for channel, recipient, sid in (
            (NotificationChannel.SMS, "+33600000000", "SM" + "a" * 32),
            (NotificationChannel.EMAIL, "x@example.com", None),
        )
    ]
    await planner.check(
        "twilio receipt by sid", lambda: apply_receipt(Receipt("SM" + "a" * 32, "delivered"))
    )
    await planner.check(
        "twilio receipt by delivery",
        lambda: apply_receipt(Receipt("SM" + "a" * 32, "read", delivery_id=texted.id)),
    )
    settings = get_settings().model_copy(update={"email_bounce_address": "b@example.com"})
    report = Report(
        addressed_to=[str(bounce_address(mailed.id, settings))],
        recipients=[RecipientStatus("x@example.com", "failed", "5.1.1", "smtp; 550 5.1.1")],
    )
    await planner.check("email bounce", lambda: apply_report(report))


# --- recording and planning ----------------------------------------------------------


@dataclass
class Finding:
    path: str
    table: str
    sql: str


@dataclass
class Planner:
    """Runs hot paths, then plans what they sent."""

    findings: list[Finding] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)

    async def check(self, path: str, run: Callable[[], Awaitable[Any]]) -> Any:
        with recorded() as statements:
            result = await run()
        assert statements, f"{path}: no statement recorded"
        growing = _growing_tables()
        client = connections.get("default")
        count = 0
        async with client.acquire_connection() as connection, connection.transaction():
            await connection.execute("SET LOCAL enable_seqscan = off")
            # As a prepared statement is planned once it has run a few times: without its
            # values (a partial index whose condition is a parameter would not be taken).
            await connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            for sql, values in statements:
                if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
                    continue  # INSERT … VALUES reads nothing
                raw = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *values)
                plan = (orjson.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
                count += 1
                for node in plan_nodes(plan):
                    table = node.get("Relation Name")
                    if node["Node Type"] == "Seq Scan" and table in growing:
                        self.findings.append(Finding(path, table, sql))
        self.planned[path] = count
        return result


def _growing_tables() -> set[str]:
    tables = {model._meta.db_table for model in Tortoise.apps["models"].values()}
    return tables - SMALL_TABLES


def _report(findings: list[Finding]) -> str:
    return "\n".join(f"{f.path}: Seq Scan on {f.table}\n    {f.sql}" for f in findings)


# --- the hot paths ---------------------------------------------------------------------


async def test_hot_paths_plan_without_a_seq_scan_on_growing_tables(client):
    mine = worlds.client_world("M")
    queue = worlds.queue_world(40)
    pending = worlds.pending_orders(2)
    for world in (mine, queue, pending):
        await worlds.orm_rows(world)
    client_token = await row_token(mine.clients[0])
    agent_token = await row_token(queue.agents[0])
    dossier = str(mine.dossier_ids[0])
    planner = Planner()

    async def ask(document: str, variables: dict | None = None, *, token: str) -> Any:
        return await gql(client, document, variables or {}, token=token)

    async def check_query(path, document, variables=None, *, token=agent_token):
        return await planner.check(path, lambda: ask(document, variables, token=token))

    # the client's screens
    await check_query("client dashboard", DASHBOARD, token=client_token)
    for unread in (False, True):
        await check_query(f"notifications unread={unread}", NOTIFICATIONS, {"unread": unread},
                          token=client_token)  # fmt: skip
    first = await check_query("messages first", MESSAGES, {"id": dossier, "first": 20},
                              token=client_token)  # fmt: skip
    assert first["dossier"]["messages"]["nodes"]
    last = await check_query("messages last", MESSAGES, {"id": dossier, "last": 20},
                             token=client_token)  # fmt: skip
    cursor = last["dossier"]["messages"]["pageInfo"]["startCursor"]
    await check_query("messages before", MESSAGES, {"id": dossier, "last": 20, "before": cursor},
                      token=client_token)  # fmt: skip
    await check_query("timeline", TIMELINE, {"id": dossier}, token=client_token)

    # the agents' lists
    product_id = str(queue.rows["products"][0]["id"])
    client_id = str(mine.clients[0]["profile_id"])
    for name, filter_ in {
        "all": None,
        "status": {"status": ["IN_PROGRESS"]},
        "product": {"productId": product_id},
        "client": {"clientId": client_id},
        "assignedToMe": {"assignedToMe": True},
    }.items():
        await check_query(f"dossiers filter={name}", AGENT_DOSSIERS,
                          {"filter": filter_, "count": True})  # fmt: skip
    waiting = await check_query("review queue", REVIEW_QUEUE, {"first": 50})
    assert waiting["reviewQueue"]["edges"]
    await check_query("review queue totalCount", QUEUE_COUNT)
    await check_query("review queue mine", QUEUE_MINE)
    for flag in (False, True):
        await check_query(f"overdue mine={flag}", OVERDUE, {"mine": flag})
    await check_query("expiring documents", EXPIRING)
    # issue 19: search by name (GIN trigram on the folded name), e-mail (GIN trigram),
    # phone digits (GIN trigram on the expression), case number (its unique index)
    reference = (await Dossier.get(id=mine.dossier_ids[0])).reference
    for what, query in {
        "name": "client dupond",
        "email": "@example",
        "phone": "06 12 34 56 78",
        "reference": reference,
        "dossier by reference": reference,
    }.items():
        if what == "dossier by reference":
            await check_query("dossier(id: reference)", MESSAGES, {"id": query, "first": 1},
                              token=client_token)  # fmt: skip
            continue
        await check_query(f"search {what}", SEARCH, {"query": query})

    # the agents' desk (issue 19): notes, tags, owners, workloads
    agent_id = str(queue.agents[0]["id"])
    await gql(client, DESK_SETUP, {"id": dossier, "agent": agent_id}, token=agent_token)
    for name, filter_ in {
        "tag": {"tag": "vip"},
        "ownerId": {"ownerId": agent_id},
        "ownedByMe": {"ownedByMe": True},
    }.items():
        await check_query(f"dossiers filter={name}", AGENT_DOSSIERS,
                          {"filter": filter_, "count": True})  # fmt: skip
    notes = await check_query("dossier notes", DESK_NOTES, {"id": dossier})
    assert notes["dossier"]["notes"]["nodes"]
    await check_query("dossier tags", DESK_TAGS)
    workload = await check_query("agent workload", WORKLOAD)
    assert workload["agentWorkload"]["nodes"]

    # the writes
    sent = await check_query("sendMessage", SEND_MESSAGE,
                             {"input": {"dossierId": dossier, "content": "Bonjour"}},
                             token=client_token)  # fmt: skip
    assert sent["sendMessage"]["userErrors"] == []
    pending_doc = await Document.filter(
        dossier_id=mine.dossier_ids[0], status=DocumentStatus.PENDING
    ).first()
    assert pending_doc is not None
    uploaded = await planner.check(
        "uploadDocument",
        lambda: upload(client, client_token, str(pending_doc.id), make_pdf("scan")),
    )
    assert uploaded["userErrors"] == [], uploaded
    version = await DocumentVersion.filter(document_id=pending_doc.id).first()
    assert version is not None
    reviewed = await planner.check(
        "reviewDocument", lambda: review(client, agent_token, str(version.id), "APPROVED")
    )
    assert reviewed["userErrors"] == [], reviewed
    outcome = await planner.check(
        "stripe webhook", lambda: handle_event(orjson.loads(completed_event(pending.orders[0])))
    )
    assert outcome == Outcome.PROCESSED

    # the audit log, with each filter (there are events now)
    await check_query("events all", EVENTS)
    await check_query("events by type", EVENTS, {"types": ["MESSAGE_SENT"]})
    await check_query("events by entity", EVENTS, {"entityType": "dossier", "entityId": dossier})
    # the access log (issue 19), with each filter, once the reads above were written
    await access_audit.flush()
    admin = await make_admin()
    # its creation's events are not this test's hot paths (the relay leaves fresh ones)
    await Event.filter(entity_id=admin.obj.id).update(processed_at=clock.now())
    for key, value in (
        ("clientId", client_id),
        ("dossierId", dossier),
        ("documentId", str(pending_doc.id)),
    ):
        await check_query(f"accessLog by {key}", ACCESS_LOG % key, {"id": value},
                          token=admin.token)  # fmt: skip

    # one pass of each worker job
    await planner.check("outbox relay", outbox.dispatch)
    await planner.check("deliveries", delivery.run)
    # issue 20: what agents see of a client's deliveries, a Twilio receipt found by its
    # MessageSid or by the delivery id its URL names, a bounce applied to its e-mail
    await check_query("clientDeliveries", CLIENT_DELIVERIES, {"id": client_id})
    await _receipts_and_bounces(planner)
    await planner.check("payment reminders", reminders.send_due_reminders)
    await planner.check("document reminders", chasing.send_document_reminders)
    await planner.check("overdue escalation", chasing.escalate_overdue_steps)
    await planner.check("reminder planning", chasing.plan_missing)
    await planner.check("document expiry", document_expiry.send_expiry_reminders)
    # a Prometheus scrape (issue 21): the outbox lag and the delivery backlog
    scraped = await planner.check("metrics scrape", lambda: client.get("/metrics"))
    assert "dossier_outbox_lag_seconds" in scraped.text

    # the GDPR (issue 19): an export built by the worker's pass, then an erasure
    storage = client._transport.app.state.storage
    admin = await make_admin()
    asked = await gql(
        client,
        "mutation($id: ID!) { requestDataExport(input: {profileId: $id}) { userErrors { code } } }",
        {"id": client_id},
        token=admin.token,
    )
    assert asked["requestDataExport"]["userErrors"] == []
    await planner.check("data exports", lambda: exports.run(storage))
    erased = await planner.check(
        "eraseClient",
        lambda: ask(
            'mutation($id: ID!) { eraseClient(input: {profileId: $id, reason: "asked", '
            "force: true}) { userErrors { code } } }",
            {"id": client_id},
            token=admin.token,
        ),
    )
    assert erased["eraseClient"]["userErrors"] == []
    await outbox.dispatch(list(await Event.filter(processed_at=None).values_list("id", flat=True)))
    await planner.check("retention notices", retention.send_notices)
    await planner.check("retention purge", retention.purge_due)
    await planner.check("retention dry run", retention.due_files)
    assert not await Event.filter(processed_at=None).exists()

    # issue 20: an inbound SMS (its MessageSid, its sender by number) and the admins' list
    form = {"MessageSid": ["SM" + "0" * 32], "From": ["+33700000009"], "Body": ["?"]}
    await planner.check("twilio inbound", lambda: inbound.receive(form, storage=storage))
    await check_query("inboundMessages", "{ inboundMessages(first: 20) { nodes { id } } }",
                      token=admin.token)  # fmt: skip

    assert not planner.findings, _report(planner.findings)
    assert all(planner.planned.values()), planner.planned


# --- the admins' reports and CSV exports (issue 19, item 4) --------------------------------


async def test_reports_and_exports_plan_with_indexes(client):
    """Each report is one aggregate over a range of time, each export batch one keyset read:
    every one of them starts from an index on the time it ranges over."""
    admin = await make_admin()
    product = await make_product()
    for _ in range(3):
        await make_dossier(await make_client(), product)
    now = datetime.now(UTC)
    start, end = now - timedelta(days=1), now + timedelta(days=1)
    planner = Planner()
    window = {"from": start.isoformat(), "to": end.isoformat()}
    for name, filter_ in {
        "all": window,
        "product": {**window, "productIds": [str(product.id)]},
    }.items():
        await planner.check(
            f"reports {name}",
            lambda f=filter_: gql(client, REPORTS, {"filter": f}, token=admin.token),
        )

    async def read_all(kind: ExportKind) -> None:
        request = ExportRequest(kind, start, end, admin.obj.id)
        batches = [rows async for rows in export_rows(request, batch=2)]
        assert len(batches) >= 2  # the keyset statement ran too

    for kind in ExportKind:
        await planner.check(f"export {kind.value}", lambda k=kind: read_all(k))
    assert not planner.findings, _report(planner.findings)
    assert all(planner.planned.values()), planner.planned
