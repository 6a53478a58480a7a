"""The operator's view (issue 21, item 4): `/metrics` scraped through a real uvicorn before,
during and after a small journey (a login, a query, a mutation, a subscription receiving a
live update, e-mails delivered and one refused by the worker's pass), every metric read
with prometheus_client's own text parser and seen moving; an unauthorised scrape refused;
the worker's own endpoint; JSON log lines carrying the request id and operation name."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from app import logs, metrics, worker
from app.main import create_app
from app.models import Event, NotificationDelivery
from app.models.enums import EventType
from app.services import delivery, events, outbox
from app.settings import Settings
from app.subscriptions import topics
from tests.factories import PASSWORD, make_admin, make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.test_chat import MESSAGE_ADDED, send
from tests.test_production_safety import PRODUCTION, STRIPE
from tests.ws_support import Feed, Served, free_port, settings_with, wait_until, ws_session

TOKEN = "scrape-token-0123456789abcdefghij"
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) { token userErrors { code } }
}
"""
ME = "query Me { me { ... on Profile { fullName } } }"
DOSSIERS = "query MyDossiers { dossiers { nodes { id } } }"
CREATE_LINK = """
mutation CreateLink($input: CreatePaymentLinkInput!) {
  createPaymentLink(input: $input) { paymentLink { id } userErrors { code } }
}
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Served]:
    """The app on a real uvicorn (WebSockets), without its lifespan: no in-process worker
    runs a pass behind the test's back (the test runs the worker's passes itself)."""
    app = create_app(settings, manage_db=False)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), what="uvicorn to start")
    try:
        yield Served(app, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        await app.state.hub.close()


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def requests(samples: Samples, operation: str, outcome: str) -> float:
    labels = {"operation": operation, "outcome": outcome}
    return value(samples, "dossier_graphql_requests_total", **labels)


def timed(samples: Samples, operation: str, outcome: str) -> float:
    labels = {"operation": operation, "outcome": outcome}
    return value(samples, "dossier_graphql_request_duration_seconds_count", **labels)


async def test_metrics_move_through_a_journey(smtp):
    settings = settings_with(
        metrics_token=TOKEN, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False
    )
    owner, agent, admin = await make_client(), await make_agent(), await make_admin()
    dossier = await make_dossier(owner)
    product = dossier.product_id
    deliveries = worker.Job("deliveries", 2.0, lambda: delivery.run(settings))
    async with (
        served(settings) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        # refused without the token, or with another one
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "dossier_" not in wrong.text

        # what the factories recorded without dispatching: the relay's, now
        await outbox.dispatch(await Event.filter(processed_at=None).values_list("id", flat=True))
        before = await scrape(http)

        # a login, a query, a refused query, a failed login, an anonymous query
        login = await gql(http, LOGIN, {"email": owner.email, "password": PASSWORD})
        token = login["login"]["token"]
        assert (await gql(http, ME, token=token))["me"]["fullName"]
        refused = await http.post("/graphql", json={"query": DOSSIERS})
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        wrong_password = {"email": owner.email, "password": "not-the-password"}
        assert (await gql(http, LOGIN, wrong_password))["login"]["userErrors"]
        await gql(http, "{ __typename }")

        # a subscription receiving a live update sent by a mutation
        hub = server.app.state.hub
        async with ws_session(server.ws_url, owner.token) as session:
            feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
            topic = topics.dossier_messages(dossier.id)
            await wait_until(lambda: hub.subscriber_count(topic) >= 1, what="subscribed")
            live = await scrape(http)
            await send(http, agent, dossier.id, "Your passport is approved.")
            got = (await feed.next())["messageAdded"]["node"]
            assert got["content"] == "Your passport is approved."
            after_update = await scrape(http)
            await feed.stop()
        await outbox.drain(within=5)

        # an e-mail waits, then the worker's pass sends it
        await gql(
            http,
            CREATE_LINK,
            {
                "input": {
                    "productId": str(product),
                    "prospectEmail": "lea@example.com",
                    "prospectName": "Léa",
                }
            },
            token=admin.token,
        )
        await outbox.drain(within=5)
        waiting = await scrape(http)
        assert await worker.run_pass(deliveries)
        assert any(m["To"] == "lea@example.com" for m in smtp.accepted)
        sent = await scrape(http)

        # the next one is refused by the mail server: a failure on EMAIL
        smtp.answer_rcpt("550 5.1.1 no such mailbox")
        await gql(
            http,
            CREATE_LINK,
            {
                "input": {
                    "productId": str(product),
                    "prospectEmail": "gone@example.com",
                    "prospectName": "Gone",
                }
            },
            token=admin.token,
        )
        await outbox.drain(within=5)
        await worker.run_pass(deliveries)
        assert await NotificationDelivery.filter(recipient="gone@example.com", status="FAILED")

        # an event nobody dispatched yet: the outbox lags, until the relay takes it
        event = await events.record("profile", owner.obj.id, EventType.PROFILE_UPDATED)
        lagging = await scrape(http)
        await outbox.dispatch([event.id])
        caught_up = await scrape(http)
        closed = await scrape(http)

    # requests by operation and outcome, with their latency
    for operation, outcome, n in (
        ("Login", "ok", 1),
        ("Me", "ok", 1),
        ("MyDossiers", "refused", 1),
        ("Login", "user_error", 1),
        ("anonymous", "ok", 1),
        ("CreateLink", "ok", 2),
    ):
        assert requests(closed, operation, outcome) - requests(before, operation, outcome) >= n
        assert timed(closed, operation, outcome) - timed(before, operation, outcome) >= n
    me_ok = {"operation": "Me", "outcome": "ok"}
    seconds = "dossier_graphql_request_duration_seconds_sum"
    assert value(closed, seconds, **me_ok) > value(before, seconds, **me_ok)
    # sockets and subscriptions open while the feed ran, closed after
    for gauge in ("dossier_websockets_open", "dossier_subscriptions_open"):
        assert value(live, gauge) == value(before, gauge) + 1, gauge
        assert value(closed, gauge) == value(before, gauge), gauge
    # the live update: published, and delivered to the subscriber
    for counter in ("dossier_live_updates_published_total", "dossier_live_updates_delivered_total"):
        moved = value(after_update, counter, topic="dossier.messages") - value(
            live, counter, topic="dossier.messages"
        )
        assert moved >= 1, counter
    # the delivery backlog by channel, the sends and the failures by channel
    assert value(waiting, "dossier_delivery_backlog", channel="EMAIL") >= 1
    assert value(sent, "dossier_delivery_backlog", channel="EMAIL") == 0
    assert value(sent, "dossier_deliveries_sent_total", channel="EMAIL") > value(
        waiting, "dossier_deliveries_sent_total", channel="EMAIL"
    )
    failures = {"channel": "EMAIL", "kind": "permanent"}
    assert value(closed, "dossier_delivery_failures_total", **failures) == (
        value(before, "dossier_delivery_failures_total", **failures) + 1
    )
    # the worker's passes, timed per job
    passes = {"job": "deliveries", "outcome": "ok"}
    count = "dossier_worker_pass_duration_seconds_count"
    assert value(closed, count, **passes) - value(before, count, **passes) >= 2
    # the outbox lag: 0, then the age of the undispatched event, then 0 again
    assert value(before, "dossier_outbox_lag_seconds") == 0
    assert value(lagging, "dossier_outbox_lag_seconds") > 0
    assert value(caught_up, "dossier_outbox_lag_seconds") == 0
    # the database pool
    assert value(closed, "dossier_db_pool_connections", state="open") >= 1
    assert value(closed, "dossier_db_pool_connections", state="max") >= 1
    assert value(closed, "dossier_db_pool_connections", state="in_use") >= 0


async def test_metrics_are_off_in_production_without_a_token(database_url):
    app = create_app(Settings(**PRODUCTION, **STRIPE), manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/metrics")).status_code == 404


def test_a_short_metrics_token_is_refused_in_production():
    with pytest.raises(ValidationError) as caught:
        Settings(**PRODUCTION, **STRIPE, metrics_token="short-token")
    assert "METRICS_TOKEN" in str(caught.value)
    assert "short-token" not in str(caught.value)
    token = "m" * 8 + "0123456789abcdefghijklmnop"
    assert Settings(**PRODUCTION, **STRIPE, metrics_token=token).metrics_token == token


def test_operation_names_are_bounded():
    names = metrics.OperationNames(limit=2)
    assert [names.label(n) for n in ("A", "B", "C", "A", None, "1bad", "x" * 65)] == [
        "A",
        "B",
        "other",
        "A",
        "anonymous",
        "unknown",
        "unknown",
    ]


async def test_the_worker_serves_its_own_metrics():
    port = free_port()
    settings = settings_with(metrics_token=TOKEN, worker_metrics_port=port)
    job = worker.Job("probe", 1.0, lambda: asyncio.sleep(0))
    async with worker.metrics_server(settings) as server:
        assert server is not None
        await wait_until(lambda: server.started, what="the worker's metrics server")
        await worker.run_pass(job)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/metrics")).status_code == 401
            scraped = await scrape(http)
    count = "dossier_worker_pass_duration_seconds_count"
    assert value(scraped, count, job="probe", outcome="ok") >= 1


async def test_json_log_lines_carry_the_request_id_and_operation(client):
    """Every line logged while a request runs (here the ORM's statements of the `me`
    resolver) says which request and which operation; a line outside says neither."""
    owner = await make_client()
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(logging.DEBUG)
    handler.setFormatter(logs.JsonFormatter())
    statements = logging.getLogger("tortoise.db_client")
    level = statements.level
    statements.addHandler(handler)
    statements.setLevel(logging.DEBUG)
    try:
        response = await client.post(
            "/graphql",
            json={"query": ME},
            headers={"X-Request-ID": "req42abc", "Authorization": f"Bearer {owner.token}"},
        )
        assert response.json()["data"]["me"]["fullName"]
        await owner.obj.refresh_from_db()  # a statement outside any request
    finally:
        statements.removeHandler(handler)
        statements.setLevel(level)
    parsed = [json.loads(line) for line in lines]
    assert all({"ts", "level", "logger", "message"} <= set(p) for p in parsed)
    during = [p for p in parsed if p["request_id"] == "req42abc"]
    assert during, parsed
    assert {p["operation"] for p in during} == {"Me"}
    assert parsed[-1]["request_id"] == "-"
    assert parsed[-1]["operation"] == "-"


def test_uvicorn_and_the_app_log_json_lines_in_a_fresh_process():
    """The log config handed to uvicorn, applied as uvicorn applies it (dictConfig), in a
    process of its own: uvicorn's lines and ours come out as JSON."""
    script = (
        "import logging, logging.config\n"
        "from app.logs import uvicorn_log_config, request_id\n"
        "logging.config.dictConfig(uvicorn_log_config('INFO', 'json'))\n"
        "request_id.set('abc123')\n"
        "logging.getLogger('app.demo').warning('hello %s', 'there')\n"
        "logging.getLogger('uvicorn.error').info('started')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(p["logger"], p["message"], p["request_id"]) for p in lines] == [
        ("app.demo", "hello there", "abc123"),
        ("uvicorn.error", "started", "abc123"),
    ]
