"""The scenarios of issue 7, each returning plain figures (seconds, counts, ratios)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from bench import client as c
from bench.pgstat import StatementCounter
from bench.queries import DASHBOARD, REVIEW_QUEUE, SEND_MESSAGE

DOSSIER_UPDATED = """
subscription Updates($dossierId: ID!) {
  dossierUpdated(dossierId: $dossierId) { eventId eventType occurredAt status newStatus reason }
}
"""


@dataclass
class Config:
    rounds: int = 5
    seconds: float = 1.0  # per side per round
    soak_seconds: float = 60.0
    idle_sockets: int = 1000
    fanout_subscribers: int = 1000
    pubsub_sizes: tuple[int, ...] = (1, 100, 500)


@dataclass
class Bench:
    host: str
    port: int
    config: Config
    db_url: str
    db_name: str
    admin_url: str
    prefix: str  # the app's broadcast namespace
    webhook_secret: str
    redis: Any
    server: Any
    tokens: dict[str, str] = field(default_factory=dict)
    dispatch_first: Any = None  # the same app with DISPATCH_AFTER_RESPONSE=0
    handles: dict[str, Any] = field(default_factory=dict)
    counter: StatementCounter | None = None
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/graphql"

    def on_dispatch_first(self) -> Bench:
        """This bench pointed at the DISPATCH_AFTER_RESPONSE=0 server (same results)."""
        other = dataclasses.replace(self, port=self.dispatch_first.port, server=self.dispatch_first)
        other.results = self.results
        return other

    def log(self, message: str) -> None:
        print(f"[bench] {message}", flush=True)

    def put(self, path: str, value: Any) -> None:
        node = self.results
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value


def gql_body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"query": query, "variables": variables or {}})


JSON = {"Content-Type": "application/json"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key} (missing on one side)"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} != {len(b)})"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


async def same_answer(b: Bench, contender: tuple, baseline: tuple) -> dict[str, Any]:
    """POST both (path, body, headers); their JSON must be equal."""
    async with httpx.AsyncClient(base_url=b.base, timeout=60) as http:
        ra = await http.post(contender[0], content=contender[1], headers=JSON | contender[2])
        rb = await http.post(baseline[0], content=baseline[1], headers=JSON | baseline[2])
    a, bb = ra.json(), rb.json()
    difference = first_difference(a, bb) if ra.status_code == rb.status_code else "status"
    if a.get("errors"):
        difference = f"contender errors: {a['errors']}"
    return {"equal": difference is None, "difference": difference, "bytes": len(ra.content)}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summarize(result: c.AB) -> dict[str, Any]:
    return {
        "contender_rps": round(result.median("a", lambda s: s.throughput), 1),
        "raw_rps": round(result.median("b", lambda s: s.throughput), 1),
        "throughput_ratio": round(result.median_ratio(lambda s: s.throughput), 3),
        "contender_p50_ms": ms(result.median("a", lambda s: s.pct(50))),
        "raw_p50_ms": ms(result.median("b", lambda s: s.pct(50))),
        "p50_ratio": round(result.median_ratio(lambda s: s.pct(50)), 3),
        "contender_p99_ms": ms(result.median("a", lambda s: s.pct(99))),
        "raw_p99_ms": ms(result.median("b", lambda s: s.pct(99))),
        "p99_ratio": round(result.median_ratio(lambda s: s.pct(99)), 3),
        "rounds": len(result.a),
        "requests": sum(s.count for s in result.a + result.b),
        "errors": result.errors,
    }


async def compare_http(
    b: Bench, name: str, contender: tuple[str, Any, dict], baseline: tuple[str, Any, dict]
) -> dict[str, Any]:
    """c=16 throughput and c=1 latency, interleaved A/B rounds. `body` may be bytes or a
    function of the request number returning bytes."""

    def maker(path: str, body: Any, headers: dict[str, str]):
        if callable(body):
            return lambda n: c.build_request(path, body(n), headers)
        fixed = c.build_request(path, body, headers)
        return lambda _n: fixed

    make_a, make_b = maker(*contender), maker(*baseline)
    cfg = b.config
    out: dict[str, Any] = {}
    for label, concurrency in (("c16", 16), ("c1", 1)):

        async def side(make, concurrency=concurrency):
            return await c.closed_loop(
                b.host, b.port, make, concurrency=concurrency, seconds=cfg.seconds
            )

        # warm both (connections, prepared statements, caches)
        await c.closed_loop(b.host, b.port, make_a, concurrency=concurrency, requests=20)
        await c.closed_loop(b.host, b.port, make_b, concurrency=concurrency, requests=20)
        result = await c.ab_rounds(lambda: side(make_a), lambda: side(make_b), cfg.rounds)
        out[label] = summarize(result)
    b.log(
        f"{name}: c16 {out['c16']['contender_rps']} vs {out['c16']['raw_rps']} req/s "
        f"(x{out['c16']['throughput_ratio']}), c1 p50 {out['c1']['contender_p50_ms']} vs "
        f"{out['c1']['raw_p50_ms']} ms (x{out['c1']['p50_ratio']})"
    )
    return out


async def open_loop_compare(
    b: Bench, contender: tuple, baseline: tuple, rate: float
) -> dict[str, Any]:
    make_a = lambda _n, r=c.build_request(*contender): r  # noqa: E731
    make_b = lambda _n, r=c.build_request(*baseline): r  # noqa: E731
    seconds = max(2.0, b.config.seconds * 2)

    async def side(make):
        return await c.open_loop(b.host, b.port, make, rate=rate, seconds=seconds)

    result = await c.ab_rounds(lambda: side(make_a), lambda: side(make_b), 2)
    return {
        "rate_rps": round(rate, 1),
        "contender_p50_ms": ms(result.median("a", lambda s: s.pct(50))),
        "contender_p99_ms": ms(result.median("a", lambda s: s.pct(99))),
        "raw_p50_ms": ms(result.median("b", lambda s: s.pct(50))),
        "raw_p99_ms": ms(result.median("b", lambda s: s.pct(99))),
        "errors": result.errors,
    }


# --- statements per request (pg_stat_statements) --------------------------------------------


async def count_statements(
    b: Bench, make: Any, path: str, headers: dict[str, str], n: int = 10
) -> dict[str, Any]:
    """Statements the database ran per request, over n requests (after a warm-up)."""
    counter = b.counter
    if counter is None:
        return {"per_request": None, "note": "pg_stat_statements unavailable"}
    body = make if callable(make) else (lambda _i, m=make: m)
    conn = await c.HttpConnection(b.host, b.port).open()
    try:
        for i in range(3):
            await conn.send(c.build_request(path, body(-1 - i), headers))
        await asyncio.sleep(0.05)
        await counter.reset()
        for i in range(n):
            status, response = await conn.send(c.build_request(path, body(i), headers))
            if not c.ok_json(status, response):
                raise RuntimeError(f"{path} answered {status}: {response[:300]!r}")
        await asyncio.sleep(0.05)
        statements = await counter.read()
    finally:
        await conn.close()
    total = sum(s.calls for s in statements)
    return {
        "per_request": round(total / n, 2),
        "statements": [
            {"calls_per_request": round(s.calls / n, 2), "query": s.query} for s in statements
        ],
    }


def split_send_message(counted: dict[str, Any]) -> dict[str, Any]:
    """sendMessage: the mutation (the viewer, BEGIN, the lock, the latest message, the
    insert, COMMIT) and what the outbox dispatch ran after the commit, in the same request."""
    if counted.get("per_request") is None:
        return counted
    mutation = 0.0
    begins = commits = 0.0
    for s in counted["statements"]:
        q, calls = s["query"], s["calls_per_request"]
        if q.startswith("BEGIN"):
            begins += calls
        elif q.startswith("COMMIT"):
            commits += calls
        elif (
            ('FROM "credentials" LEFT OUTER JOIN' in q)  # the viewer
            or ('FROM "dossiers"' in q and "FOR UPDATE" in q and "SKIP LOCKED" not in q)
            or ('FROM "messages" WHERE "dossier_id"' in q and "DESC" in q)
            or q.startswith('WITH "insert_0"')  # the message and its event
        ):
            mutation += calls
    mutation += 2  # its BEGIN and COMMIT (the dispatch has its own pair)
    counted["mutation"] = mutation
    counted["dispatch"] = round(counted["per_request"] - mutation, 2)
    counted["transactions"] = begins
    return counted


async def statements_reads(b: Bench, sizes: tuple[str, ...] = ("S", "M", "L")) -> None:
    body = gql_body(DASHBOARD)
    for size in sizes:
        headers = auth(b.tokens[f"client_{size}"])
        b.put(
            f"statements.dashboard.{size}",
            {
                "contender": await count_statements(b, body, "/graphql", headers),
                "raw": await count_statements(b, body, "/bench/raw/dashboard", headers),
            },
        )


async def statements_queue(b: Bench, world: str) -> None:
    headers = auth(b.tokens["agent"])
    for page in (10, 50, 200):
        body = gql_body(REVIEW_QUEUE, {"first": page})
        b.put(
            f"statements.review_queue.{world}.{page}",
            {
                "contender": await count_statements(b, body, "/graphql", headers),
                "raw": await count_statements(b, body, "/bench/raw/review-queue", headers),
            },
        )


async def statements_writes(b: Bench) -> None:
    headers = auth(b.tokens["client_M"])
    contender_dossier, raw_dossier = b.handles["send_dossiers"]

    def send(dossier):
        return lambda n: gql_body(
            SEND_MESSAGE, {"input": {"dossierId": dossier, "content": f"counted {n}"}}
        )

    counted = await count_statements(b, send(contender_dossier), "/graphql", headers)
    b.put("statements.send_message.contender", split_send_message(counted))
    b.put(
        "statements.send_message.raw",
        await count_statements(b, send(raw_dossier), "/bench/raw/send-message", headers),
    )
    # a duplicate webhook: the event is delivered once (processed), then counted again
    for side, path in (("contender", "/webhooks/stripe"), ("raw", "/bench/raw/webhook")):
        order = b.handles["orders"].pop()
        payload = stripe_event(order)
        async with httpx.AsyncClient(base_url=b.base) as http:
            first = await http.post(path, content=payload, headers=JSON | signed(b, payload))
            assert first.json()["outcome"] == "processed", first.text
        b.put(
            f"statements.duplicate_webhook.{side}",
            await count_statements(
                b,
                lambda _n, p=payload: p,
                path,
                signed(b, payload),
            ),
        )


# --- the client dashboard and the review queue ----------------------------------------------


async def dashboard(b: Bench) -> None:
    body = gql_body(DASHBOARD)
    for size in ("S", "M", "L"):
        headers = auth(b.tokens[f"client_{size}"])
        contender = ("/graphql", body, headers)
        baseline = ("/bench/raw/dashboard", body, headers)
        b.put(f"dashboard.{size}.check", await same_answer(b, contender, baseline))
        figures = await compare_http(b, f"dashboard {size}", contender, baseline)
        b.put(f"dashboard.{size}.closed", figures)
        if size == "M":
            rate = 0.5 * figures["c16"]["contender_rps"]
            b.put(f"dashboard.{size}.open", await open_loop_compare(b, contender, baseline, rate))


async def review_queue(b: Bench, world: str, pages: tuple[int, ...] = (10, 50, 200)) -> None:
    headers = auth(b.tokens["agent"])
    for page in pages:
        body = gql_body(REVIEW_QUEUE, {"first": page})
        contender = ("/graphql", body, headers)
        baseline = ("/bench/raw/review-queue", body, headers)
        check = await same_answer(b, contender, baseline)  # waitingSeconds is not asked: equal data
        b.put(f"review_queue.{world}.{page}.check", check)
        b.put(
            f"review_queue.{world}.{page}.closed",
            await compare_http(b, f"review queue {world} first={page}", contender, baseline),
        )


# --- sendMessage -----------------------------------------------------------------------------


def _masked(answer: dict[str, Any]) -> dict[str, Any]:
    data = orjson.loads(orjson.dumps(answer))
    payload = data["data"]["sendMessage"]
    payload["message"]["id"] = payload["message"]["createdAt"] = payload["cursor"] = "…"
    return data


async def send_message(b: Bench, key: str = "send_message") -> None:
    headers = auth(b.tokens["client_M"])
    contender_dossier, raw_dossier = b.handles["send_dossiers"]

    def body(dossier: str):
        return lambda n: gql_body(
            SEND_MESSAGE, {"input": {"dossierId": dossier, "content": f"Hello, message {n}"}}
        )

    async with httpx.AsyncClient(base_url=b.base, timeout=30) as http:
        ra = await http.post("/graphql", content=body(contender_dossier)(0), headers=JSON | headers)
        rb = await http.post(
            "/bench/raw/send-message", content=body(raw_dossier)(0), headers=JSON | headers
        )
    for response in (ra, rb):
        if response.status_code != 200:
            raise RuntimeError(
                f"{response.request.url} answered {response.status_code}: {response.text[:500]}"
            )
    difference = first_difference(_masked(ra.json()), _masked(rb.json()))
    conn = await asyncpg.connect(b.db_url)
    try:
        stored = [
            await conn.fetchval(
                "SELECT count(*) FROM messages m JOIN events e ON e.entity_id = m.id "
                "WHERE m.id = $1 AND e.event_type = 'MESSAGE_SENT'",
                uuid.UUID(r.json()["data"]["sendMessage"]["message"]["id"]),
            )
            for r in (ra, rb)
        ]
    finally:
        await conn.close()
    if stored != [1, 1]:
        difference = difference or f"message+event rows: {stored}"
    b.put(f"{key}.check", {"equal": difference is None, "difference": difference})
    figures = await compare_http(
        b,
        key,
        ("/graphql", body(contender_dossier), headers),
        ("/bench/raw/send-message", body(raw_dossier), headers),
    )
    b.put(f"{key}.closed", figures)
    # latency at a steady rate (half the API's c=16 throughput): requests do not queue
    # behind the previous one's after-commit work as they do back to back at c=1
    rate = 0.5 * figures["c16"]["contender_rps"]
    b.put(
        f"{key}.open",
        await open_loop_compare(
            b,
            ("/graphql", body(contender_dossier)(0), headers),
            ("/bench/raw/send-message", body(raw_dossier)(0), headers),
            rate,
        ),
    )


# --- the Stripe webhook ------------------------------------------------------------------


def stripe_event(order: dict[str, Any], event_id: str | None = None) -> bytes:
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
    return orjson.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {"object": session},
        }
    )


def signed(b: Bench, payload: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(
        b.webhook_secret.encode(), stamp.encode() + b"." + payload, hashlib.sha256
    ).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}"}


async def order_outcome(conn: Any, order_id: uuid.UUID) -> dict[str, Any]:
    """What a paid order left in the database, without ids: compared contender vs raw."""
    order = await conn.fetchrow(
        "SELECT status, paid_at IS NOT NULL AS paid, dossier_id, user_id, "
        "stripe_payment_intent_id IS NOT NULL AS intent FROM orders WHERE id = $1",
        order_id,
    )
    out: dict[str, Any] = {"order": dict(order) if order else None}
    if order is None or order["dossier_id"] is None:
        return out
    dossier_id = order["dossier_id"]
    out["order"].pop("dossier_id")
    out["order"].pop("user_id")
    out["profile"] = await conn.fetchval(
        "SELECT status FROM profiles WHERE id = $1", order["user_id"]
    )
    out["dossiers_of_client"] = await conn.fetchval(
        "SELECT count(*) FROM dossiers WHERE user_id = $1", order["user_id"]
    )
    dossier = await conn.fetchrow(
        "SELECT d.status, d.type, si.position FROM dossiers d "
        "LEFT JOIN step_instances si ON si.id = d.current_step_instance_id WHERE d.id = $1",
        dossier_id,
    )
    out["dossier"] = dict(dossier)
    out["steps"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT position, started_at IS NOT NULL AS started, due_at IS NOT NULL AS due, "
            "completed_at IS NOT NULL AS done FROM step_instances WHERE dossier_id = $1 "
            "ORDER BY position",
            dossier_id,
        )
    ]
    out["documents"] = sorted(
        r["status"]
        for r in await conn.fetch("SELECT status FROM documents WHERE dossier_id = $1", dossier_id)
    )
    out["history"] = [
        (r["old_status"], r["new_status"])
        for r in await conn.fetch(
            "SELECT old_status, new_status FROM dossier_status_history WHERE dossier_id = $1 "
            "ORDER BY created_at, old_status NULLS FIRST",
            dossier_id,
        )
    ]
    out["events"] = sorted(
        r["event_type"]
        for r in await conn.fetch(
            "SELECT event_type FROM events WHERE (entity_type = 'order' AND entity_id = $1) "
            "OR (entity_type = 'dossier' AND entity_id = $2)",
            order_id,
            dossier_id,
        )
    )
    return out


async def webhook(b: Bench, key: str = "webhook", checks: bool = True) -> None:
    orders: list[dict[str, Any]] = b.handles["orders"]
    paths = {"contender": "/webhooks/stripe", "raw": "/bench/raw/webhook"}
    if checks:
        await webhook_check(b, orders, paths)
    await webhook_load(b, orders, paths, key)
    if checks:
        await webhook_duplicates(b, orders, paths)


async def webhook_check(b: Bench, orders: list[dict[str, Any]], paths: dict[str, str]) -> None:
    """The same event type, one order each: the rows written must be the same."""
    checked = {}
    async with httpx.AsyncClient(base_url=b.base, timeout=30) as http:
        for side, path in paths.items():
            order = orders.pop()
            payload = stripe_event(order)
            response = await http.post(path, content=payload, headers=JSON | signed(b, payload))
            checked[side] = (order, response.json())
    conn = await asyncpg.connect(b.db_url)
    try:
        outcome = {side: await order_outcome(conn, o["id"]) for side, (o, _) in checked.items()}
    finally:
        await conn.close()
    difference = first_difference(outcome["contender"], outcome["raw"])
    if checked["contender"][1] != checked["raw"][1]:
        difference = difference or f"answers {checked['contender'][1]} != {checked['raw'][1]}"
    b.put("webhook.check", {"equal": difference is None, "difference": difference})


async def webhook_load(
    b: Bench, orders: list[dict[str, Any]], paths: dict[str, str], key: str
) -> None:
    """200 distinct events at c=4 per side, in interleaved batches of 50."""
    distinct = {"contender": c.Sample(), "raw": c.Sample()}
    for i in range(8):
        side = ("contender", "raw")[(i + i // 2) % 2]
        batch = [orders.pop() for _ in range(50)]
        bodies = [stripe_event(o) for o in batch]
        requests = [c.build_request(paths[side], p, signed(b, p)) for p in bodies]
        sample = await c.closed_loop(
            b.host,
            b.port,
            lambda n, r=requests: r[n],
            concurrency=4,
            requests=len(requests),
            check=lambda status, body: status == 200 and b'"processed"' in body,
        )
        distinct[side].latencies += sample.latencies
        distinct[side].errors += sample.errors
    figures: dict[str, Any] = {}
    for side, sample in distinct.items():
        figures[side] = {
            "events": sample.count,
            "p50_ms": ms(sample.pct(50)),
            "p99_ms": ms(sample.pct(99)),
            "errors": sample.errors,
        }
    figures["p99_ratio"] = round(distinct["contender"].pct(99) / distinct["raw"].pct(99), 3)
    b.put(f"{key}.distinct", figures)
    b.log(
        f"{key}: p99 {figures['contender']['p99_ms']} vs {figures['raw']['p99_ms']} ms "
        f"(x{figures['p99_ratio']})"
    )


async def webhook_duplicates(b: Bench, orders: list[dict[str, Any]], paths: dict[str, str]) -> None:
    """50 events, each delivered 5 times at once (4 events in flight): each once."""
    for side, path in paths.items():
        await _duplicates(b, side, path, [orders.pop() for _ in range(50)])


async def _duplicates(b: Bench, side: str, path: str, batch: list[dict[str, Any]]) -> None:
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    gate = asyncio.Semaphore(4)

    async def deliver_five(order: dict[str, Any]) -> None:
        payload = stripe_event(order)
        request = c.build_request(path, payload, signed(b, payload))
        async with gate:
            conns = [await c.HttpConnection(b.host, b.port).open() for _ in range(5)]
            try:
                t0 = time.perf_counter()

                async def one(conn: c.HttpConnection) -> None:
                    status, body = await conn.send(request)
                    latencies.append(time.perf_counter() - t0)
                    outcomes[orjson.loads(body).get("outcome", str(status))] += 1

                await asyncio.gather(*(one(x) for x in conns))
            finally:
                for conn in conns:
                    await conn.close()

    await asyncio.gather(*(deliver_five(o) for o in batch))
    conn = await asyncpg.connect(b.db_url)
    try:
        outcome_rows = [await order_outcome(conn, o["id"]) for o in batch]
    finally:
        await conn.close()
    once = all(
        r["order"]["status"] == "PAID" and r.get("dossiers_of_client") == 1 for r in outcome_rows
    )
    b.put(
        f"webhook.duplicates.{side}",
        {
            "outcomes": dict(outcomes),
            "each_order_paid_once": once,
            "p99_ms": ms(c.percentile(latencies, 99)),
        },
    )


# --- live updates ------------------------------------------------------------------------------


def update_payload(dossier_id: str, event_id: str) -> bytes:
    now = datetime.now(UTC).isoformat()
    data = {
        "eventId": event_id,
        "eventType": "DOSSIER_STATUS_CHANGED",
        "dossierId": dossier_id,
        "occurredAt": now,
        "oldStatus": "IN_PROGRESS",
        "newStatus": "UNDER_REVIEW",
        "reason": "bench",
        "stepInstanceId": None,
        "assignedToId": None,
        "status": "UNDER_REVIEW",
        "currentStepInstanceId": None,
        "completedAt": None,
        "updatedAt": now,
    }
    return orjson.dumps({"kind": "update", "data": data})


class Receipts:
    """Who received which event when; latencies are filed under the current `phase`."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.phase = ""
        self.by_phase: dict[str, list[float]] = {}
        self.count: Counter[str] = Counter()
        self.last_at = 0.0
        self.per_receiver: Counter[int] = Counter()

    def receive(self, receiver: int, event_id: str) -> None:
        now = time.perf_counter()
        self.last_at = now
        self.per_receiver[receiver] += 1
        self.count[event_id] += 1
        sent = self.sent.get(event_id)
        if sent is not None and not event_id.startswith("warm"):
            self.latencies.append(now - sent)
            self.by_phase.setdefault(self.phase, []).append(now - sent)


async def _publisher(b: Bench) -> Any:
    from redis import asyncio as aioredis

    return aioredis.Redis.from_url(b.redis.url)


async def graphql_subscribers(
    b: Bench, n: int, dossier_id: str | list[str], receipts: Receipts, token: str | None = None
) -> list[c.GraphQLSocket]:
    """n sockets, each with one dossierUpdated subscription (to `dossier_id`, or to the
    i-th of a list)."""
    token = token or b.tokens["agent"]
    targets = dossier_id if isinstance(dossier_id, list) else [dossier_id] * n

    def make(i: int):
        async def open_one() -> c.GraphQLSocket:
            sock = await c.GraphQLSocket(b.ws_url, token).open()

            def on_data(payload: dict[str, Any], i: int = i) -> None:
                data = (payload.get("data") or {}).get("dossierUpdated")
                if data:
                    receipts.receive(i, data["eventId"])

            sock.on_data = on_data
            await sock.subscribe(DOSSIER_UPDATED, {"dossierId": targets[i]})
            return sock

        return open_one

    return await c.gather_limited([make(i) for i in range(n)], limit=50)


async def warm_up(publish: Any, receipts: Receipts, n: int, timeout: float = 90.0) -> bool:
    """Publish probes until every receiver has had one (all subscriptions are live)."""
    deadline = time.perf_counter() + timeout
    k = 0
    while time.perf_counter() < deadline:
        if len(receipts.per_receiver) >= n:
            return True
        await publish(f"warm-{k}")
        k += 1
        await asyncio.sleep(0.05)
    return len(receipts.per_receiver) >= n


async def measure_publishes(
    publish: Any, receipts: Receipts, n: int, messages: int, gap: float
) -> dict[str, Any]:
    ids = [f"m-{uuid.uuid4().hex}" for _ in range(messages)]
    for event_id in ids:
        receipts.sent[event_id] = time.perf_counter()
        await publish(event_id)
        await asyncio.sleep(gap)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and sum(receipts.count[i] for i in ids) < n * messages:
        await asyncio.sleep(0.01)
    got = sum(receipts.count[i] for i in ids)
    return {
        "subscribers": n,
        "messages": messages,
        "deliveries": got,
        "lost": n * messages - got,
        "p50_ms": ms(c.percentile(receipts.latencies, 50)),
        "p99_ms": ms(c.percentile(receipts.latencies, 99)),
    }


async def pubsub(b: Bench) -> None:
    redis = await _publisher(b)
    dossiers = b.handles["live_dossiers"]
    try:
        for k, n in enumerate(b.config.pubsub_sizes):
            messages, gap = (60, 0.05) if n <= 100 else (30, 0.1)
            # the contender: n GraphQL subscriptions (dossierUpdated) over WebSocket
            dossier = dossiers[k]
            channel = f"{b.prefix}dossier.{dossier}.updates"
            receipts = Receipts()
            sockets = await graphql_subscribers(b, n, dossier, receipts)

            async def publish(event_id: str, channel: str = channel, dossier: str = dossier):
                await redis.publish(channel, update_payload(dossier, event_id))

            live = await warm_up(publish, receipts, n)
            contender = await measure_publishes(publish, receipts, n, messages, gap)
            contender["all_live"] = live
            for sock in sockets:
                await sock.close()
            # the floor: n plain Redis subscribers of a channel, the same payload
            raw_channel = f"{b.prefix}bench.raw.{k}"
            raw_receipts = Receipts()
            subscribers = []
            for i in range(n):
                sub = c.RespSubscriber("127.0.0.1", b.redis.port, raw_channel)

                def on_message(data: bytes, i: int = i, rr: Receipts = raw_receipts) -> None:
                    rr.receive(i, orjson.loads(data)["data"]["eventId"])

                sub.on_message = on_message
                subscribers.append(await sub.open())

            async def raw_publish(event_id: str, channel: str = raw_channel, dossier=dossier):
                await redis.publish(channel, update_payload(dossier, event_id))

            await warm_up(raw_publish, raw_receipts, n)
            raw = await measure_publishes(raw_publish, raw_receipts, n, messages, gap)
            for sub in subscribers:
                await sub.close()
            b.put(f"pubsub.{n}", {"contender": contender, "raw": raw})
            b.log(
                f"pubsub {n}: p50 {contender['p50_ms']} vs {raw['p50_ms']} ms, p99 "
                f"{contender['p99_ms']} vs {raw['p99_ms']} ms, lost {contender['lost']}"
            )
    finally:
        await redis.aclose()


async def fanout(b: Bench) -> None:
    """One burst of K updates to N subscribers: deliveries per second, GraphQL
    subscriptions vs a bare Starlette WebSocket relaying the same payload."""
    n, k_messages = b.config.fanout_subscribers, 20
    redis = await _publisher(b)
    dossier = b.handles["live_dossiers"][-1]
    channel = f"{b.prefix}dossier.{dossier}.updates"
    bare_channel = f"{b.prefix}bench.bare"
    async with httpx.AsyncClient(base_url=b.base) as http:
        await http.post("/bench/raw/relay", content=orjson.dumps({"channel": bare_channel}))
    receipts, bare_receipts = Receipts(), Receipts()
    sockets = await graphql_subscribers(b, n, dossier, receipts)
    bare: list[c.BareSocket] = []

    def bare_factory(i: int):
        async def open_one() -> c.BareSocket:
            sock = c.BareSocket(f"ws://{b.host}:{b.port}/bench/raw/ws")

            def on_text(raw: str, i: int = i) -> None:
                bare_receipts.receive(i, orjson.loads(raw)["data"]["eventId"])

            sock.on_text = on_text
            return await sock.open()

        return open_one

    bare = await c.gather_limited([bare_factory(i) for i in range(n)], limit=50)

    async def publish(event_id: str) -> None:
        await redis.publish(channel, update_payload(dossier, event_id))

    async def bare_publish(event_id: str) -> None:
        await redis.publish(bare_channel, update_payload(dossier, event_id))

    try:
        live = await warm_up(publish, receipts, n)
        bare_live = await warm_up(bare_publish, bare_receipts, n)

        async def burst(pub: Any, rec: Receipts) -> c.Sample:
            ids = [f"f-{uuid.uuid4().hex}" for _ in range(k_messages)]
            t0 = time.perf_counter()
            for event_id in ids:
                rec.sent[event_id] = t0
                await pub(event_id)
            deadline = t0 + 60
            while (
                time.perf_counter() < deadline and sum(rec.count[i] for i in ids) < n * k_messages
            ):
                await asyncio.sleep(0.002)
            got = sum(rec.count[i] for i in ids)
            sample = c.Sample(seconds=rec.last_at - t0)
            sample.latencies = [0.0] * got
            sample.errors = n * k_messages - got
            return sample

        result = await c.ab_rounds(
            lambda: burst(publish, receipts), lambda: burst(bare_publish, bare_receipts), 3
        )
        figures = {
            "subscribers": n,
            "messages_per_burst": k_messages,
            "contender_deliveries_per_s": round(result.median("a", lambda s: s.throughput)),
            "bare_deliveries_per_s": round(result.median("b", lambda s: s.throughput)),
            "ratio": round(result.median_ratio(lambda s: s.throughput), 3),
            "lost": result.errors,
            "all_live": live and bare_live,
        }
        b.put("fanout", figures)
        b.log(
            f"fan-out {n}: {figures['contender_deliveries_per_s']} vs "
            f"{figures['bare_deliveries_per_s']} deliveries/s (x{figures['ratio']})"
        )
    finally:
        for sock in sockets:
            await sock.close()
        for sock in bare:
            await sock.close()
        await redis.aclose()


async def redis_restart(b: Bench) -> None:
    """Kill Redis, start it again: how long until subscribers (who resubscribe when their
    stream ends, as the API tells them to) get live updates again."""
    if not b.redis.restartable:
        b.put("redis_restart", {"skipped": "no private redis-server to restart"})
        return
    n = 10
    dossier = b.handles["live_dossiers"][-2]
    channel = f"{b.prefix}dossier.{dossier}.updates"
    receipts = Receipts()
    sockets = await graphql_subscribers(b, n, dossier, receipts)
    redis = await _publisher(b)

    async def publish(event_id: str) -> None:
        await redis.publish(channel, update_payload(dossier, event_id))

    await warm_up(publish, receipts, n)
    resubscribed = Counter()

    async def keep_subscribed(sock: c.GraphQLSocket, i: int) -> None:
        while True:
            await sock.completed.wait()
            sock.completed.clear()
            resubscribed[i] += 1
            await asyncio.sleep(0.02)
            with contextlib.suppress(Exception):
                await sock.ws.send(
                    orjson.dumps(
                        {
                            "id": "1",
                            "type": "subscribe",
                            "payload": {
                                "query": DOSSIER_UPDATED,
                                "variables": {"dossierId": dossier},
                            },
                        }
                    ).decode()
                )

    keepers = [asyncio.create_task(keep_subscribed(s, i)) for i, s in enumerate(sockets)]
    await redis.aclose()
    try:
        b.redis.stop()
        await asyncio.sleep(1.0)
        b.redis.start()
        up_at = await b.redis.wait_up()
        redis = await _publisher(b)
        first: dict[int, float] = {}
        before = dict(receipts.per_receiver)
        k = 0
        deadline = up_at + 15
        while time.perf_counter() < deadline and len(first) < n:
            with contextlib.suppress(Exception):
                await publish(f"probe-{k}")
            k += 1
            await asyncio.sleep(0.01)
            for i, count in receipts.per_receiver.items():
                if count > before.get(i, 0) and i not in first:
                    first[i] = receipts.last_at
        resumed = sorted(t - up_at for t in first.values())
        b.put(
            "redis_restart",
            {
                "subscribers": n,
                "resumed": len(first),
                "median_s": round(statistics.median(resumed), 3) if resumed else None,
                "max_s": round(resumed[-1], 3) if resumed else None,
                "streams_ended": sum(resubscribed.values()),
            },
        )
        b.log(f"redis restart: deliveries resumed after {resumed[-1] if resumed else None} s")
    finally:
        for task in keepers:
            task.cancel()
        for sock in sockets:
            await sock.close()
        await redis.aclose()


# --- the soak ------------------------------------------------------------------------------


def pubsub_connections(b: Bench) -> int | None:
    """Redis pub/sub connections held by the server process (CLIENT LIST x its sockets)."""
    import psutil
    import redis as sync_redis

    ports = {
        conn.laddr.port
        for conn in psutil.Process(b.server.pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == b.redis.port
    }
    client = sync_redis.Redis.from_url(b.redis.url)
    try:
        held = 0
        for entry in client.client_list():
            port = int(str(entry.get("addr", ":0")).rsplit(":", 1)[1])
            if port in ports and (int(entry.get("sub", 0)) + int(entry.get("psub", 0))) > 0:
                held += 1
        return held
    finally:
        client.close()


async def soak(b: Bench) -> None:
    import psutil

    seconds = b.config.soak_seconds
    control = min(30.0, max(5.0, seconds / 4))
    warmup = max(10.0, seconds * 0.2)
    server = psutil.Process(b.server.pid)
    redis = await _publisher(b)
    active_dossier = b.handles["live_dossiers"][-3]
    channel = f"{b.prefix}dossier.{active_dossier}.updates"
    b.log(f"soak: opening {b.config.idle_sockets} idle subscriptions")
    idle_receipts = Receipts()
    quiet = b.handles["quiet_dossiers"][: b.config.idle_sockets]
    idle = await graphql_subscribers(b, len(quiet), quiet, idle_receipts)
    receipts = Receipts()
    receipts.phase = "warm-up"
    active = await graphql_subscribers(b, 20, active_dossier, receipts)

    async def publish(event_id: str) -> None:
        await redis.publish(channel, update_payload(active_dossier, event_id))

    await warm_up(publish, receipts, 20)
    rss: list[tuple[float, int]] = []
    receipts.phase = "control"
    stop = asyncio.Event()

    async def traffic() -> None:
        k = 0
        while not stop.is_set():
            event_id = f"s-{k}-{uuid.uuid4().hex[:8]}"
            receipts.sent[event_id] = time.perf_counter()
            await publish(event_id)
            await asyncio.sleep(0.05)
            k += 1

    async def requests() -> None:
        body = gql_body(DASHBOARD)
        request = c.build_request("/graphql", body, auth(b.tokens["client_M"]))
        while not stop.is_set():
            await c.open_loop(b.host, b.port, lambda _n: request, rate=10, seconds=5)

    async def sample_rss() -> None:
        t0 = time.perf_counter()
        while not stop.is_set():
            rss.append((time.perf_counter() - t0, server.memory_info().rss))
            await asyncio.sleep(1.0)

    async with httpx.AsyncClient(base_url=b.base) as http:
        await http.get("/bench/raw/gc?reset=1")
    tasks = [asyncio.create_task(f()) for f in (traffic, requests, sample_rss)]
    stalled: c.GraphQLSocket | None = None
    try:
        await asyncio.sleep(control)
        stalled = await c.GraphQLSocket(b.ws_url, b.tokens["agent"]).open(max_queue=1)
        await stalled.subscribe(DOSSIER_UPDATED, {"dossierId": active_dossier}, read=False)
        receipts.phase = "stalled"
        b.log(f"soak: a stalled reader joined; running {seconds - control:.0f} s more")
        await asyncio.sleep(max(0.0, seconds - control))
        connections = pubsub_connections(b)
        async with httpx.AsyncClient(base_url=b.base) as http:
            gc_pauses = (await http.get("/bench/raw/gc?objects=1")).json()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    after_warmup = [v for t, v in rss if t >= warmup]
    base = statistics.median(after_warmup[:5]) if after_warmup else None
    end = statistics.median(after_warmup[-5:]) if after_warmup else None
    stalled_dropped = None
    if stalled is not None:
        # read what piled up: was the stalled reader dropped (its stream ended)?
        frames = 0
        with contextlib.suppress(Exception):
            while True:
                raw = await asyncio.wait_for(stalled.ws.recv(), 2)
                frames += 1
                if orjson.loads(raw).get("type") in ("error", "complete"):
                    stalled_dropped = True
                    break
        stalled_dropped = bool(stalled_dropped)
        await stalled.close()
    for sock in [*idle, *active]:
        await sock.close()
    await redis.aclose()
    p99 = {k: c.percentile(receipts.by_phase.get(k, []), 99) for k in ("control", "stalled")}
    figures = {
        "seconds": seconds,
        "idle_sockets": len(idle),
        "active_subscribers": len(active),
        "rss_after_warmup_mb": round(base / 2**20, 1) if base else None,
        "rss_end_mb": round(end / 2**20, 1) if end else None,
        "rss_growth_pct": round((end - base) / base * 100, 2) if base and end else None,
        "p99_control_ms": ms(p99["control"]),
        "p99_with_stalled_ms": ms(p99["stalled"]),
        "p99_ratio": round(p99["stalled"] / p99["control"], 3) if p99["control"] else None,
        "stalled_reader_dropped": stalled_dropped,
        "pubsub_connections": connections,
        "server_gc_pauses": gc_pauses,
        "idle_deliveries": sum(idle_receipts.count.values()),
        "rss_series_mb": [(round(t, 1), round(v / 2**20, 1)) for t, v in rss],
    }
    b.put("soak", figures)
    b.log(
        f"soak: RSS {figures['rss_after_warmup_mb']} -> {figures['rss_end_mb']} MB "
        f"({figures['rss_growth_pct']} %), p99 {figures['p99_control_ms']} -> "
        f"{figures['p99_with_stalled_ms']} ms, pub/sub connections {connections}"
    )


# --- a login flood (issue 15) ------------------------------------------------------------

ME = "query { me { __typename } }"
LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) { token userErrors { code } }
}
"""


async def login_flood(b: Bench, attackers: int = 6, samples: int = 200) -> None:
    """A logged-in client's trivial query, alone and while `attackers` anonymous clients
    log in as fast as they can with e-mails nobody has (each costs a full argon2 verify,
    against the dummy hash). Hashing runs in a bounded pool off the event loop
    (PASSWORD_HASH_WORKERS), so the client should barely notice."""
    headers = JSON | auth(b.tokens["client_M"])

    async def timed(http: httpx.AsyncClient) -> list[float]:
        out = []
        for _ in range(samples):
            t0 = time.perf_counter()
            response = await http.post("/graphql", content=gql_body(ME), headers=headers)
            out.append(time.perf_counter() - t0)
            if response.status_code != 200 or response.json().get("errors"):
                raise RuntimeError(f"me: {response.status_code} {response.text[:300]}")
        return out

    stop = asyncio.Event()
    logins = 0

    async def attacker(n: int) -> None:
        nonlocal logins
        async with httpx.AsyncClient(base_url=b.base, timeout=60) as http:
            while not stop.is_set():
                body = gql_body(LOGIN, {"input": {"email": f"nobody-{n}-{logins}@example.com",
                                                  "password": "not the password"}})  # fmt: skip
                response = await http.post("/graphql", content=body, headers=JSON)
                codes = [e["code"] for e in response.json()["data"]["login"]["userErrors"]]
                if codes != ["INVALID_CREDENTIALS"]:
                    raise RuntimeError(f"login for an unknown e-mail answered {codes}")
                logins += 1

    async with httpx.AsyncClient(base_url=b.base, timeout=60) as http:
        await timed(http)  # warm-up
        idle = await timed(http)
        flood = [asyncio.create_task(attacker(n)) for n in range(attackers)]
        await asyncio.sleep(1.0)  # the flood is on
        started = time.perf_counter()
        during = await timed(http)
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*flood)

    def figures(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "p50_ms": ms(statistics.median(ordered)),
            "p99_ms": ms(ordered[int(len(ordered) * 0.99) - 1]),
        }

    idle_f, flood_f = figures(idle), figures(during)
    b.put(
        "login_flood",
        {
            "attackers": attackers,
            "idle": idle_f,
            "flood": flood_f,
            "p50_ratio": round(flood_f["p50_ms"] / idle_f["p50_ms"], 2),
            "p99_ratio": round(flood_f["p99_ms"] / idle_f["p99_ms"], 2),
            "logins_per_s": round(logins / max(elapsed, 1e-9), 1),
        },
    )
    b.log(f"login flood: me p50 {idle_f['p50_ms']} -> {flood_f['p50_ms']} ms, "
          f"p99 {idle_f['p99_ms']} -> {flood_f['p99_ms']} ms, {logins} logins")  # fmt: skip
