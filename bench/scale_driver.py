"""One world of `make bench-scale`: the app in this process, on one database, running the
operations bench/scale.py asks for, one at a time, and answering with what they cost.

Run as `python -m bench.scale_driver HANDLES.json` with DATABASE_URL (and the bench's
settings) in the environment. Protocol: one JSON command per line on stdin, one JSON
answer per line on stdout:

  {"op": NAME}                    -> {"ms": …, "statements": …, "items": …}
  {"op": NAME, "explain": true}   -> the same, plus "seq_scans": [{table, rows, sql}]
                                     (a worker pass then has twice the items)

Requests go through the whole app (`create_app()`, its middleware, GraphQL, the webhook's
signature check) over an in-process ASGI transport, so a figure is the API's own cost, the
same at both sizes but for the data. Each worker pass is the job's own coroutine, after
`arm` made `ITEMS` rows due with plain SQL (the same rows a live firm would have), so a pass
always has real work and statements per item can be told from statements per pass.
Statements are the ORM's (logger `tortoise.db_client`); with "explain" each one that reads
is run again under `EXPLAIN (ANALYZE, FORMAT JSON)` in a transaction that is rolled back.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.queries import AGENT_DOSSIERS
from bench.recording import Recorder, Statement, explained, plan_nodes

ITEMS = 10  # rows each worker pass finds due
SEQ_SCAN_ROWS = 10_000  # a Seq Scan reading more than this is reported

ACTIVE = "('CREATED','IN_PROGRESS','UNDER_REVIEW','CHANGES_REQUESTED')"

DASHBOARD_10 = """
query Dashboard {
  me { ... on Profile { id fullName unreadMessageCount } }
  unreadNotificationCount
  dossiers(first: 10) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id status createdAt unreadMessageCount
      product { id name }
      currentStep {
        id position dueAt step { id label }
        documents { id status documentType { id label } currentVersion { id uploadedAt } }
      }
    }
  }
}
"""

NOTIFICATIONS = """
query Notifications($unread: Boolean!) {
  notifications(first: 20, unreadOnly: $unread) {
    pageInfo { hasNextPage endCursor }
    nodes { id title read createdAt }
  }
}
"""
NOTIFICATIONS_COUNT = """
query { notifications(first: 20) { totalCount nodes { id } } }
"""
UNREAD_COUNT = "query { unreadNotificationCount }"

MESSAGES = """
query Messages($id: ID!, $first: Int, $last: Int, $before: String) {
  dossier(id: $id) {
    messages(first: $first, last: $last, before: $before) {
      pageInfo { hasPreviousPage startCursor }
      nodes { id content senderType createdAt }
    }
  }
}
"""
TIMELINE = "query T($id: ID!) { dossier(id: $id) { timeline(last: 50) { kind at } } }"

REVIEW_QUEUE = """
query Queue($mine: Boolean!, $count: Boolean!) {
  reviewQueue(first: 50, mine: $mine) {
    totalCount @include(if: $count)
    pageInfo { hasNextPage endCursor }
    nodes {
      id waitingSince
      version { id versionNumber fileName uploadedAt }
      document { id status documentType { id label } }
      dossier { id status client { id fullName } }
      stepInstance { id position assignedTo { id name } }
    }
  }
}
"""
OVERDUE = """
query Overdue($mine: Boolean!, $count: Boolean!) {
  overdueDossiers(first: 50, mine: $mine) {
    totalCount @include(if: $count)
    nodes { overdueSeconds dossier { id status client { fullName } } }
  }
}
"""
EVENTS = """
query Events($entityType: String, $entityId: ID, $types: [EventType!], $count: Boolean!) {
  events(entityType: $entityType, entityId: $entityId, eventTypes: $types, first: 50) {
    totalCount @include(if: $count)
    nodes { id eventType createdAt }
  }
}
"""
SEARCH = """
query Search($query: String!) {
  search(query: $query, first: 20) {
    pageInfo { hasNextPage endCursor }
    edges { node { score
      ... on ClientHit { client { id fullName email phone } }
      ... on DossierHit { dossier { id reference status client { id fullName } } } } }
  }
}
"""

SEND_MESSAGE = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id } userErrors { code message } }
}
"""
UPLOAD = """
mutation Upload($input: UploadDocumentInput!) {
  uploadDocument(input: $input) { document { id status } userErrors { code message } }
}
"""
REVIEW = """
mutation Review($input: ReviewDocumentInput!) {
  reviewDocument(input: $input) { document { id status } userErrors { code message } }
}
"""


def pdf(text: str) -> bytes:
    """A valid one-page PDF (the upload checks the content is what its name says)."""
    content = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(bodies) + 1,
        xref,
    )
    return bytes(out)


# --- planning ------------------------------------------------------------------------


async def seq_scans(statements: list[Statement]) -> list[dict[str, Any]]:
    """Seq Scans reading more than SEQ_SCAN_ROWS rows, as EXPLAIN ANALYZE counts them."""
    found = []
    async for (sql, _), rows in explained(statements, "ANALYZE, FORMAT JSON"):
        raw = rows[0][0]
        plan = (orjson.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        for node in plan_nodes(plan):
            if node["Node Type"] != "Seq Scan":
                continue
            read = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node[
                "Actual Loops"
            ]
            if read > SEQ_SCAN_ROWS:
                found.append({"table": node["Relation Name"], "rows": int(read), "sql": sql})
    return found


async def slow_plans(statements: list[Statement], over_ms: float = 1.0) -> list[Any]:
    """EXPLAIN ANALYZE (text) of each statement that reads and takes over `over_ms`."""
    found = []
    async for (sql, values), rows in explained(statements, "ANALYZE, BUFFERS"):
        text = "\n".join(r[0] for r in rows)
        ms = float(text.rsplit("Execution Time: ", 1)[1].split(" ")[0])
        if ms > over_ms:
            found.append({"ms": ms, "sql": sql, "values": [str(v) for v in values], "plan": text})
    return found


# --- the operations ------------------------------------------------------------------


@dataclass
class Driver:
    handles: dict[str, Any]
    http: httpx.AsyncClient
    tokens: dict[str, str]
    webhook_secret: str
    cursors: dict[str, str] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)
    rounds: int = 0

    def take(self, handle: str) -> Any:
        """The next unused target of a write (each upload, review, order is used once)."""
        n = self.used.get(handle, 0)
        self.used[handle] = n + 1
        return self.handles[handle][n]

    async def gql(self, document: str, variables: dict[str, Any], who: str = "agent") -> Any:
        response = await self.http.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers={"authorization": f"Bearer {self.tokens[who]}"},
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"{response.status_code}: {body.get('errors') or body}")
        return body["data"]

    async def sql(self, statement: str, *args: Any) -> None:
        from tortoise import connections

        await connections.get("default").execute_query(statement, list(args))

    # worker passes: arm (not measured), then the pass (measured)
    async def arm(self, job: str, k: int = ITEMS) -> int:
        """Run the job until it finds nothing due (what the other operations left), then
        make exactly k rows due. Returns how many rows the draining passes handled."""
        drained = 0
        for _ in range(100):
            done = await self.job(job)
            drained += done
            if not done:
                break
        self.rounds += 1
        r = self.rounds
        if job == "relay":
            # copies of the latest MESSAGE_SENT events, not yet processed: what requests
            # leave behind when their process dies before dispatching
            await self.sql(
                "INSERT INTO events (id, created_at, entity_type, entity_id, event_type, "
                "actor_type, actor_id, payload, published_at, processed_at) "
                "SELECT gen_random_uuid(), now() - interval '1 hour', entity_type, entity_id, "
                "event_type, actor_type, actor_id, payload, NULL, NULL FROM events "
                "WHERE event_type = 'MESSAGE_SENT' ORDER BY created_at DESC LIMIT $1",
                k,
            )
        elif job == "deliveries":
            # the latest e-mails the app itself sent, due again (as after a retry)
            await self.sql(
                "UPDATE notification_deliveries SET status = 'PENDING', attempts = 0, "
                "next_attempt_at = now() - interval '1 minute', claimed_until = NULL, "
                "sent_at = NULL, failed_at = NULL, last_error = NULL WHERE id IN ("
                "SELECT id FROM notification_deliveries "
                "WHERE status = 'SENT' AND channel <> 'IN_APP' ORDER BY created_at DESC LIMIT $1)",
                k,
            )
        elif job == "payment reminders":
            await self.sql(
                "INSERT INTO payment_reminders (id, user_id, order_id, sent_via, slot, "
                "scheduled_for) SELECT gen_random_uuid(), o.user_id, o.id, 'EMAIL', 1000 + $1, "
                "now() - interval '1 minute' FROM orders o WHERE o.status = 'PENDING' "
                "ORDER BY o.id DESC LIMIT $2",
                r,
                k,
            )
        elif job in ("document reminders", "escalation"):
            kind = "DOCUMENTS" if job == "document reminders" else "ESCALATION"
            overdue = "" if kind == "DOCUMENTS" else "AND s.due_at < now() "
            await self.sql(
                "INSERT INTO step_reminders (id, created_at, dossier_id, step_instance_id, kind, "
                "slot, scheduled_for, status) SELECT gen_random_uuid(), now(), d.id, s.id, $1, "
                "'bench-' || $2 || '-' || d.id, now() - interval '1 minute', 'PENDING' "
                "FROM dossiers d JOIN step_instances s ON s.id = d.current_step_instance_id "
                f"WHERE d.status IN {ACTIVE} AND s.completed_at IS NULL {overdue}"
                "ORDER BY md5(d.id::text || $2) LIMIT $3",
                kind,
                str(r),
                k,
            )
        elif job == "reminder planning":
            # open steps whose reminders are gone (as after a deploy that adds a kind)
            await self.sql(
                "DELETE FROM step_reminders WHERE step_instance_id IN (SELECT s.id FROM "
                "dossiers d JOIN step_instances s ON s.id = d.current_step_instance_id "
                f"WHERE d.status IN {ACTIVE} AND s.completed_at IS NULL AND s.due_at IS NOT NULL "
                "ORDER BY md5(d.id::text || $1) LIMIT $2)",
                str(r),
                k,
            )
        return drained

    async def job(self, name: str) -> int:
        from app.services import chasing, delivery, outbox, reminders

        if name == "relay":
            return await outbox.dispatch()
        if name == "deliveries":
            return await delivery.run()
        if name == "payment reminders":
            return await reminders.send_due_reminders()
        if name == "document reminders":
            return _sent(await chasing.send_document_reminders())
        if name == "escalation":
            return _sent(await chasing.escalate_overdue_steps())
        return _sent(await chasing.plan_missing())

    async def webhook(self) -> None:
        order = self.take("orders")
        session = {
            "id": order["stripe_checkout_session_id"],
            "object": "checkout.session",
            "client_reference_id": order["id"],
            "metadata": {"order_id": order["id"]},
            "amount_total": order["amount"],
            "currency": order["currency"],
            "payment_status": "paid",
            "payment_intent": f"pi_{uuid.UUID(order['id']).hex[:24]}",
        }
        payload = orjson.dumps(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "type": "checkout.session.completed",
                "data": {"object": session},
            }
        )
        stamp = int(time.time())
        signature = hmac.new(
            self.webhook_secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256
        ).hexdigest()
        response = await self.http.post(
            "/webhooks/stripe",
            content=payload,
            headers={"stripe-signature": f"t={stamp},v1={signature}"},
        )
        if response.status_code != 200 or response.json().get("outcome") != "processed":
            raise RuntimeError(f"webhook: {response.status_code} {response.text}")

    async def upload(self) -> None:
        document_id = str(self.take("upload_targets"))
        operations = {"query": UPLOAD, "variables": {"input": {"documentId": document_id,
                                                                 "file": None}}}  # fmt: skip
        response = await self.http.post(
            "/graphql",
            data={"operations": orjson.dumps(operations).decode(),
                  "map": orjson.dumps({"0": ["variables.input.file"]}).decode()},
            files={"0": ("scan.pdf", pdf(document_id), "application/pdf")},
            headers={"authorization": f"Bearer {self.tokens['client']}",
                     "apollo-require-preflight": "true"},
        )  # fmt: skip
        body = response.json()
        if body.get("errors") or body["data"]["uploadDocument"]["userErrors"]:
            raise RuntimeError(f"upload: {body}")

    def operations(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        h = self.handles
        dossier = str(h["heavy_dossier_id"])

        def q(doc: str, who: str = "agent", **variables: Any) -> Callable[[], Awaitable[Any]]:
            return lambda: self.gql(doc, variables, who)

        async def messages_before() -> Any:
            if "before" not in self.cursors:
                page = await self.gql(MESSAGES, {"id": dossier, "last": 50}, "client")
                self.cursors["before"] = page["dossier"]["messages"]["pageInfo"]["startCursor"]
            return await self.gql(
                MESSAGES, {"id": dossier, "last": 50, "before": self.cursors["before"]}, "client"
            )

        async def send() -> None:
            data = await self.gql(
                SEND_MESSAGE, {"input": {"dossierId": dossier, "content": "Bonjour"}}, "client"
            )
            if data["sendMessage"]["userErrors"]:
                raise RuntimeError(data)

        async def review() -> None:
            version = str(self.take("review_targets"))
            data = await self.gql(REVIEW, {"input": {"versionId": version, "decision": "APPROVED"}})
            if data["reviewDocument"]["userErrors"]:
                raise RuntimeError(data)

        filters: dict[str, Any] = {
            "all": None,
            "status": {"status": ["IN_PROGRESS"]},
            "product": {"productId": str(h["product_id"])},
            "client": {"clientId": str(h["client_id"])},
            "assignedToMe": {"assignedToMe": True},
        }
        ops: dict[str, Callable[[], Awaitable[Any]]] = {
            "client dashboard": q(DASHBOARD_10, "client"),
            "notifications(first:20)": q(NOTIFICATIONS, "client", unread=False),
            "notifications unread": q(NOTIFICATIONS, "client", unread=True),
            "notifications totalCount": q(NOTIFICATIONS_COUNT, "client"),
            "unreadNotificationCount": q(UNREAD_COUNT, "client"),
            "messages(first:50)": q(MESSAGES, "client", id=dossier, first=50),
            "messages(last:50)": q(MESSAGES, "client", id=dossier, last=50),
            "messages(last:50, before)": messages_before,
            "timeline(last:50)": q(TIMELINE, "client", id=dossier),
        }
        for name, value in filters.items():
            for count in (False, True):
                label = f"dossiers {name}" + (" totalCount" if count else "")
                ops[label] = q(AGENT_DOSSIERS, filter=value, count=count)
        for mine in (False, True):
            for count in (False, True):
                suffix = (" mine" if mine else " all") + (" totalCount" if count else "")
                ops["reviewQueue" + suffix] = q(REVIEW_QUEUE, mine=mine, count=count)
                ops["overdueDossiers" + suffix] = q(OVERDUE, mine=mine, count=count)
        ops["events(eventTypes:[STEP_OVERDUE])"] = q(EVENTS, types=["STEP_OVERDUE"], count=False)
        ops["events(eventTypes) totalCount"] = q(EVENTS, types=["STEP_OVERDUE"], count=True)
        ops["events(entity)"] = q(EVENTS, entityType="dossier", entityId=dossier, count=False)
        ops["events(first:50)"] = q(EVENTS, count=False)
        for what, query in h["search"].items():  # issue 19: a name with a typo, …
            ops[f"search {what}"] = q(SEARCH, query=query)
        ops["sendMessage"] = send
        ops["uploadDocument"] = self.upload
        ops["reviewDocument"] = review
        ops["stripe webhook"] = self.webhook
        return ops


JOBS = (
    "relay",
    "deliveries",
    "payment reminders",
    "document reminders",
    "reminder planning",
    "escalation",
)


def _sent(report: Any) -> int:
    return int(getattr(report, "sent", report))


async def serve(handles_path: str) -> None:
    from app.db import close_db, init_db
    from app.main import create_app
    from app.models import Credential
    from app.services.sessions import open_session
    from app.settings import get_settings

    settings = get_settings()
    with open(handles_path, "rb") as source:
        handles = orjson.loads(source.read())
    await init_db(settings.database_url)
    app = create_app(settings, manage_db=False)
    logger = logging.getLogger("tortoise.db_client")
    recorder = Recorder()
    logger.setLevel(logging.DEBUG)
    logger.addHandler(recorder)
    logger.propagate = False
    tokens = {
        who: (await open_session(await Credential.get(id=handles[handle]["id"]))).access_token
        for who, handle in (("client", "heavy_client"), ("agent", "agent"))
    }
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as http,
    ):
        driver = Driver(handles, http, tokens, settings.stripe_webhook_secret)
        ops = driver.operations()
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        _answer({"ready": True, "operations": [*ops, *JOBS]})
        while line := await reader.readline():
            command = orjson.loads(line)
            name = command["op"]
            try:
                if name in JOBS:
                    # under EXPLAIN twice the items: what one more item costs shows
                    await driver.arm(name, 2 * ITEMS if command.get("explain") else ITEMS)
                recorder.statements.clear()
                started = time.perf_counter()
                items = await driver.job(name) if name in JOBS else await ops[name]()
                elapsed = time.perf_counter() - started
                # the writes' after-response dispatch is the next request's neighbour, not
                # its cost: let it finish before answering, outside the timing
                from app.services import outbox

                await outbox.drain(within=30)
                statements = list(recorder.statements)
                answer: dict[str, Any] = {
                    "ms": elapsed * 1000,
                    "statements": len(statements),
                    "items": items if isinstance(items, int) else None,
                }
                if command.get("show"):  # the statements themselves, to look at
                    answer["sql"] = [sql for sql, _ in statements]
                if command.get("plans"):  # and the plans of the slow ones
                    answer["plans"] = await slow_plans(statements)
                if command.get("explain"):
                    answer["seq_scans"] = await seq_scans(statements)
            except Exception as exc:  # reported to the orchestrator, which shows it
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            _answer(answer)
    await close_db()


def _answer(answer: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(answer).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
