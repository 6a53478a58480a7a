"""SQL statements per request: the budgets of issue 7, counted two ways.

By the ORM (every statement Tortoise sends, both backends) and, on PostgreSQL, by the
database itself (`pg_stat_statements`, when the server preloads it; `make bench` and
.ci/run set that up). Each budget is read on worlds of different sizes built by the
benchmark's own generator (bench/world.py), so "identical for S/M/L" means what it says.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import orjson
import pytest

from app.http.stripe_webhook import Outcome, handle_event
from app.models import (
    Credential,
    Document,
    Dossier,
    DossierStatusHistory,
    Event,
    Message,
    Order,
    StepInstance,
    StepReminder,
    StripeEvent,
)
from app.models.enums import DossierStatus, EventType, OrderStatus
from bench import world as worlds
from bench.pgstat import StatementCounter
from bench.queries import DASHBOARD, REVIEW_QUEUE, SEND_MESSAGE
from tests.conftest import BACKEND
from tests.factories import token_for
from tests.helpers import count_statements, gql

DASHBOARD_BUDGET = 5
QUEUE_BUDGET = 4
SEND_MESSAGE_BUDGET = 6  # the viewer, then BEGIN … COMMIT
SEND_MESSAGE_DISPATCH_NOW = 19  # measured; the outbox dispatch after the commit
DUPLICATE_WEBHOOK_BUDGET = 2
# A processed checkout.session.completed (the product: 3 steps, 2 documents each), up to
# its answer: the dedupe read, the event id recorded, the order locked with its product,
# the Stripe events waiting for this payment (a refund that came first, issue 17: one
# indexed read), the steps with their document types, then every change (order, profile,
# reminders, dossier, steps, the step's reminders and documents, history, events) written
# together: one statement on PostgreSQL, one per table and UPDATE on SQLite. It was 29 on
# both. Issue 19 adds one: the year's case-number counter, bumped (one upsert) before the
# dossier row is written.
PROCESSED_WEBHOOK_BUDGET = 7
PROCESSED_WEBHOOK_BUDGET_EMBEDDED = 15
WEBHOOK_SECRET = "whsec_statement_counts"


async def row_token(row: dict) -> str:
    credential = Credential(
        id=row["id"],
        email=row["email"],
        password_hash=row["password_hash"],
        password_changed_at=row["password_changed_at"],
        profile_id=row["profile_id"],
        agent_id=row["agent_id"],
    )
    return await token_for(await Credential.get(id=credential.id))


class Counts:
    """What one request cost: the ORM's statements, and the database's count."""

    def __init__(self, orm: list[str], database: int | None, texts: list[str]) -> None:
        self.orm = orm
        self.database = database
        self.texts = texts

    def __repr__(self) -> str:
        return f"Counts(orm={len(self.orm)}, database={self.database}, {self.texts or self.orm})"


@pytest.fixture
async def database_counter(database_url: str) -> AsyncIterator[StatementCounter | None]:
    """pg_stat_statements for the run's database, or None on the embedded backend."""
    if not BACKEND.is_postgres:
        yield None
        return
    counter = StatementCounter(BACKEND.admin_url, urlsplit(database_url).path.lstrip("/"))
    if not await counter.open():
        yield None
        return
    try:
        yield counter
    finally:
        await counter.close()


async def measure(counter: StatementCounter | None, request) -> Counts:
    """Run `request` once to warm up (connections, prepared statements), then count it."""
    await request()
    if counter is not None:
        await counter.reset()
    with count_statements() as orm:
        await request()
    if counter is None:
        return Counts(list(orm), None, [])
    # asyncpg introspects a type it has not met yet on a connection (a recursive
    # `typeinfo_tree` query between two `set_config` calls that turn JIT off and back):
    # once per connection and type, the driver's cache filling, not the request's cost.
    statements = [s for s in await counter.read() if not _driver_introspection(s.query)]
    texts = [f"{s.calls}x {s.query}" for s in statements]
    return Counts(list(orm), sum(s.calls for s in statements), texts)


def _driver_introspection(query: str) -> bool:
    text = " ".join(query.split())
    return "typeinfo_tree" in text or text.startswith(
        ("SELECT current_setting($1) AS cur, set_config(", "SELECT set_config($2, $1, $3)")
    )


def check_database_count(counts: Counts, transactions: int = 0) -> None:
    """The database saw what the ORM sent, plus BEGIN and COMMIT of each transaction (the
    ORM does not log those), when pg_stat_statements is there."""
    if counts.database is not None:
        assert counts.database == len(counts.orm) + 2 * transactions, counts


def pg_stat_statements_required(counter: StatementCounter | None) -> None:
    if BACKEND.is_postgres and counter is None:
        pytest.skip(
            "pg_stat_statements is not preloaded on this PostgreSQL server "
            "(.ci/run sets shared_preload_libraries on the CI machine's server)"
        )
    if not BACKEND.is_postgres:
        pytest.skip("pg_stat_statements needs PostgreSQL (embedded backend in use)")


# --- the client dashboard ----------------------------------------------------------------


@pytest.mark.fast_paths
async def test_client_dashboard_costs_the_same_for_s_m_l(client, database_counter):
    costs = {}
    for size in ("S", "M", "L"):
        world = worlds.client_world(size)
        await worlds.orm_rows(world)
        token = await row_token(world.clients[0])
        answers = []

        async def dashboard(token=token, answers=answers):
            answers.append(await gql(client, DASHBOARD, token=token))

        costs[size] = await measure(database_counter, dashboard)
        data = answers[-1]
        shape = worlds.SHAPES[size]
        nodes = data["dossiers"]["nodes"]
        assert len(nodes) == shape.dossiers
        assert sum(n["unreadMessageCount"] for n in nodes) == shape.unread_messages
        assert data["me"]["unreadMessageCount"] == shape.unread_messages
        assert data["unreadNotificationCount"] == (shape.notifications + 1) // 2
        assert len(data["notifications"]["nodes"]) == min(10, shape.notifications)
        for node in nodes:
            current = node["currentStep"]
            assert current["position"] == shape.current
            assert len(current["documents"]) == shape.docs_per_step
            assert node["product"]["code"] == f"{size}7"
            uploaded = [d for d in current["documents"] if d["status"] != "PENDING"]
            assert uploaded
            assert all(d["currentVersion"]["versionNumber"] == 1 for d in uploaded)
            assert all(d["documentType"]["code"] for d in current["documents"])

    sizes = {size: len(c.orm) for size, c in costs.items()}
    assert len(set(sizes.values())) == 1, costs
    assert sizes["M"] <= DASHBOARD_BUDGET, costs["M"]
    for counts in costs.values():
        check_database_count(counts)


@pytest.mark.fast_paths
async def test_dashboard_count_seen_by_the_database(client, database_counter):
    pg_stat_statements_required(database_counter)
    world = worlds.client_world("M")
    await worlds.orm_rows(world)
    token = await row_token(world.clients[0])

    async def dashboard():
        await gql(client, DASHBOARD, token=token)

    counts = await measure(database_counter, dashboard)
    assert counts.database == len(counts.orm) <= DASHBOARD_BUDGET, counts


# --- the agents' review queue ----------------------------------------------------------


@pytest.fixture
def pages_of_200(monkeypatch):
    """The review queue is read 200 at a time here (the bench does too): configuration,
    through the environment like any deployment would set it."""
    from app.settings import get_settings

    monkeypatch.setenv("MAX_PAGE_SIZE", "200")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.fast_paths
async def test_review_queue_costs_the_same_for_pages_of_10_50_200(
    client, database_counter, pages_of_200
):
    world = worlds.queue_world(250)
    await worlds.orm_rows(world)
    token = await row_token(world.agents[0])
    costs, answers = {}, {}
    for size in (10, 50, 200):

        async def queue(size=size):
            answers[size] = await gql(client, REVIEW_QUEUE, {"first": size}, token=token)

        costs[size] = await measure(database_counter, queue)
        edges = answers[size]["reviewQueue"]["edges"]
        assert len(edges) == size
        waiting = [e["node"]["waitingSince"] for e in edges]
        assert waiting == sorted(waiting)  # oldest first
        for edge in edges:
            node = edge["node"]
            assert node["document"]["status"] == "UPLOADED"
            assert node["dossier"]["client"]["fullName"].startswith("Queue client")
            assert node["dossier"]["product"]["name"] == "Product Q11x0"
            assert node["stepInstance"]["step"]["label"] == "Q11x0 step 1"
    assigned = [
        e["node"]["stepInstance"]["assignedTo"] for e in answers[200]["reviewQueue"]["edges"]
    ]
    assert any(a is None for a in assigned)
    assert any(a is not None for a in assigned)

    sizes = {size: len(c.orm) for size, c in costs.items()}
    assert len(set(sizes.values())) == 1, costs
    assert sizes[50] <= QUEUE_BUDGET, costs[50]
    for counts in costs.values():
        check_database_count(counts)


# --- sendMessage -----------------------------------------------------------------------


async def test_send_message_costs_the_viewer_and_one_transaction(client, database_counter):
    world = worlds.client_world("M")
    await worlds.orm_rows(world)
    token = await row_token(world.clients[0])
    dossier_id = str(world.dossier_ids[0])
    sent = []

    async def send():
        data = await gql(
            client,
            SEND_MESSAGE,
            {"input": {"dossierId": dossier_id, "content": f"hello {len(sent)}"}},
            token=token,
        )
        assert data["sendMessage"]["userErrors"] == []
        sent.append(data["sendMessage"]["message"]["id"])

    counts = await measure(database_counter, send)
    assert await Message.filter(id__in=sent).count() == 2
    # The mutation: the viewer, then ONE transaction (BEGIN, the dossier locked together
    # with its latest message, the message, its event, COMMIT) — the ORM does not log
    # BEGIN/COMMIT, so they are added here and checked by the database below.
    claim = next(i for i, s in enumerate(counts.orm) if 'FROM "events"' in s)
    mutation = counts.orm[:claim]
    assert sum(s.startswith(("INSERT", "WITH")) for s in mutation) == (
        1 if BACKEND.is_postgres else 2  # the message and its event: one statement on PG
    ), mutation
    budget = SEND_MESSAGE_BUDGET if BACKEND.is_postgres else SEND_MESSAGE_BUDGET + 1
    assert len(mutation) + 2 <= budget, mutation
    # After the commit, in the same request, the outbox dispatches the event in a second
    # transaction (the chat-burst notification of each agent told, the live update). Not
    # in the budget; the bench reports it. Here: it must not grow (measured: 19).
    dispatch = counts.orm[claim:]
    assert len(dispatch) <= SEND_MESSAGE_DISPATCH_NOW, dispatch
    check_database_count(counts, transactions=2)
    if counts.database is not None:
        assert any(t.startswith("2x BEGIN") for t in counts.texts), counts
        assert any(t.startswith("2x COMMIT") for t in counts.texts), counts

    # Nine more agents to tell (no step is assigned: every agent is): not one statement more.
    more = worlds.World(random.Random(3))
    worlds.agents(more, 9)
    await worlds.orm_rows(more)
    again = await measure(database_counter, send)
    assert len(again.orm) == len(counts.orm), (counts.orm, again.orm)
    check_database_count(again, transactions=2)


# --- the Stripe webhook ----------------------------------------------------------------


def _signed(payload: bytes) -> dict[str, str]:
    stamp = int(time.time())
    signature = hmac.new(
        WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return {"stripe-signature": f"t={stamp},v1={signature}", "content-type": "application/json"}


def completed_event(order: dict) -> bytes:
    session = {
        "id": order["stripe_checkout_session_id"],
        "object": "checkout.session",
        "client_reference_id": str(order["id"]),
        "metadata": {"order_id": str(order["id"])},
        "amount_total": order["amount"],
        "currency": order["currency"],
        "payment_status": "paid",
        "payment_intent": f"pi_{order['id'].hex[:24]}",
    }
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "checkout.session.completed",
        "data": {"object": session},
    }
    return orjson.dumps(event)


@pytest.fixture
async def webhook_client(database_url) -> AsyncIterator:
    import httpx

    from app.main import create_app
    from app.settings import get_settings

    app = create_app(
        get_settings().model_copy(update={"stripe_webhook_secret": WEBHOOK_SECRET}),
        manage_db=False,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_a_duplicate_webhook_costs_at_most_two_statements(webhook_client, database_counter):
    world = worlds.pending_orders(1)
    await worlds.orm_rows(world)
    order = world.orders[0]
    payload = completed_event(order)
    outcomes = []

    async def deliver():
        response = await webhook_client.post(
            "/webhooks/stripe", content=payload, headers=_signed(payload)
        )
        assert response.status_code == 200, response.text
        outcomes.append(response.json()["outcome"])

    counts = await measure(database_counter, deliver)  # the first delivery warms up
    assert outcomes == ["processed", "duplicate"]
    paid = await Order.get(id=order["id"])
    assert paid.status == OrderStatus.PAID
    dossier = await Dossier.get(id=paid.dossier_id)  # type: ignore[attr-defined]
    assert dossier.status in (DossierStatus.CREATED, DossierStatus.IN_PROGRESS)
    assert await StripeEvent.all().count() == 1
    assert len(counts.orm) <= DUPLICATE_WEBHOOK_BUDGET, counts
    check_database_count(counts)


async def test_a_processed_checkout_writes_its_rows_together(database_counter):
    world = worlds.pending_orders(2)
    await worlds.orm_rows(world)
    orders = iter(world.orders)
    paid: list[dict] = []
    dispatches: list = []

    async def deliver():
        order = next(orders)
        event = orjson.loads(completed_event(order))
        # the outbox dispatch is handed over (it runs after the answer): counted apart
        assert await handle_event(event, defer=dispatches.append) == Outcome.PROCESSED
        paid.append(order)

    counts = await measure(database_counter, deliver)  # the first order warms up
    order = await Order.get(id=paid[-1]["id"])
    assert order.status == OrderStatus.PAID
    assert order.paid_at is not None
    dossier = await Dossier.get(id=order.dossier_id)  # type: ignore[attr-defined]
    assert dossier.status == DossierStatus.IN_PROGRESS
    steps = await StepInstance.filter(dossier_id=dossier.id).order_by("position")
    assert [s.position for s in steps] == [1, 2, 3]
    assert dossier.current_step_instance_id == steps[0].id
    assert steps[0].started_at is not None
    assert steps[1].started_at is None
    assert await Document.filter(step_instance_id=steps[0].id).count() == 2
    assert await StepReminder.filter(step_instance_id=steps[0].id).exists()
    history = await DossierStatusHistory.filter(dossier_id=dossier.id).order_by("created_at")
    assert [(h.old_status, h.new_status) for h in history] == [
        (None, DossierStatus.CREATED),
        (DossierStatus.CREATED, DossierStatus.IN_PROGRESS),
    ]
    recorded = await Event.filter(entity_id__in=[order.id, dossier.id]).order_by("created_at")
    assert [e.event_type for e in recorded] == [
        EventType.PAYMENT_SUCCEEDED,
        EventType.DOSSIER_STATUS_CHANGED,
        EventType.DOSSIER_CREATED,
        EventType.STEP_STARTED,
        EventType.DOSSIER_STATUS_CHANGED,
    ]
    budget = PROCESSED_WEBHOOK_BUDGET if BACKEND.is_postgres else PROCESSED_WEBHOOK_BUDGET_EMBEDDED
    assert len(counts.orm) <= budget, counts
    if counts.database is not None:
        # The database also counts its own check of the deferred foreign key (the dossier's
        # current step) at COMMIT: not a statement we send.
        checks = sum(int(t.split("x ", 1)[0]) for t in counts.texts if "FOR KEY SHARE OF x" in t)
        assert counts.database - checks == len(counts.orm) + 2, counts  # + BEGIN, COMMIT
    for dispatch in dispatches:  # the events still go out
        await dispatch()
    assert not await Event.filter(id__in=[e.id for e in recorded], processed_at=None).exists()


# --- an agent's view of one dossier (issue 19: audited after the answer) -----------------

DOSSIER_VIEW = "query($id: ID!) { dossier(id: $id) { id status } }"
DOSSIER_VIEW_BUDGET = 2  # the viewer, the dossier: the access event is not written here


async def test_an_audited_dossier_view_costs_what_an_unaudited_one_does(client):
    from app.models import AccessEvent
    from app.services import access_audit
    from tests.factories import make_agent, make_client, make_dossier, make_product

    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner, await make_product(steps=(("pdf",),)))
    variables = {"id": str(dossier.id)}
    costs = {}
    for who in (owner, agent):  # the client's view is not audited, the agent's is
        await gql(client, DOSSIER_VIEW, variables, token=who.token)  # warm: the viewer cached
        with count_statements() as orm:
            data = await gql(client, DOSSIER_VIEW, variables, token=who.token)
        assert data["dossier"]["id"] == str(dossier.id)
        costs[who.email] = list(orm)
    assert len(costs[agent.email]) == len(costs[owner.email]) == DOSSIER_VIEW_BUDGET, costs
    assert not any("access_events" in s for s in costs[agent.email])
    assert access_audit.audit.pending == 2  # the agent's two reads, waiting
    with count_statements() as flushed:
        assert await access_audit.flush() == 2
    [insert] = list(flushed)  # ONE multi-row INSERT for the buffer
    assert "access_events" in insert
    assert await AccessEvent.filter(dossier_id=dossier.id).count() == 2
