"""The baselines: the same work by hand, in the same process as the API (bench mode only).

Each route answers what the GraphQL operation answers (same JSON), from hand-written
asyncpg SQL and orjson, authenticating the same bearer token with the same secret:

- `POST /bench/raw/dashboard`     the client dashboard (bench.queries.DASHBOARD)
- `POST /bench/raw/review-queue`  the agents' review queue (REVIEW_QUEUE, `first` variable)
- `POST /bench/raw/send-message`  sendMessage: the message and its event in one
                                   transaction, then the live update published to Redis
- `POST /bench/raw/webhook`       the Stripe webhook: the signature, the dedupe and the
                                   writes of `checkout.session.completed`
- `WS   /bench/raw/ws`            a bare Starlette WebSocket relaying each message of a
                                   Redis channel to every connected socket

What the baselines leave out is listed in bench/README.md (the outbox dispatch, the
notifications, the step reminder plan): the point is the floor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
import orjson
from redis import asyncio as aioredis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.services.references import format_reference
from app.settings import get_settings

ACTIVE = ("CREATED", "IN_PROGRESS", "UNDER_REVIEW", "CHANGES_REQUESTED")
TICK = timedelta(microseconds=1)


WORK_LIST_SQL = """
SELECT d.id, d.status, d.created_at, c.id AS c_id, c.full_name, p.id AS p_id, p.name AS p_name,
       si.id AS si_id, si.position, si.due_at, s.id AS s_id, s.label AS s_label,
       a.id AS a_id, a.name AS a_name
FROM dossiers d
JOIN profiles c ON c.id = d.user_id
JOIN products p ON p.id = d.product_id
LEFT JOIN step_instances si ON si.id = d.current_step_instance_id
LEFT JOIN steps s ON s.id = si.step_id
LEFT JOIN agents a ON a.id = si.assigned_to
ORDER BY d.created_at DESC, d.id DESC
LIMIT $1
"""

MESSAGES_SQL = """
SELECT id, content, sender_type, created_at, read_at FROM messages
WHERE dossier_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2
"""


class NoResetConnection(asyncpg.Connection):
    """As the app's pool (app.db.PooledConnection): no reset query on release."""

    def get_reset_query(self) -> str:
        return ""


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def cursor(*values: Any) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).decode()


def answer(data: dict[str, Any]) -> Response:
    return Response(orjson.dumps({"data": data}), media_type="application/json")


class Unauthorized(Exception):
    pass


AUTH_SQL = """
SELECT c.id, c.password_changed_at, c.profile_id, c.agent_id, p.full_name, a.active, a.name
FROM credentials c
LEFT JOIN profiles p ON p.id = c.profile_id
LEFT JOIN agents a ON a.id = c.agent_id
WHERE c.id = $1
"""

COUNTS_SQL = """
SELECT
  (SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL) AS notifications,
  (SELECT count(*) FROM messages m JOIN dossiers d ON d.id = m.dossier_id
   WHERE d.user_id = $1 AND m.read_at IS NULL AND m.sender_type IN ('AGENT', 'SYSTEM'))
   AS messages
"""

NOTIFICATIONS_SQL = """
SELECT id, title, message, read_at, action_url, created_at FROM notifications
WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2
"""

DOSSIERS_SQL = """
SELECT d.id, d.type, d.status, d.created_at, d.updated_at,
  (SELECT count(*) FROM messages m WHERE m.dossier_id = d.id AND m.read_at IS NULL
   AND m.sender_type IN ('AGENT', 'SYSTEM')) AS unread,
  p.id AS p_id, p.code AS p_code, p.name AS p_name,
  si.id AS si_id, si.position, si.started_at, si.due_at,
  s.id AS s_id, s.code AS s_code, s.label AS s_label,
  doc.id AS doc_id, doc.status AS doc_status, doc.updated_at AS doc_updated_at,
  dt.id AS dt_id, dt.code AS dt_code, dt.label AS dt_label,
  v.id AS v_id, v.version_number, v.file_name, v.mime_type, v.uploaded_at
FROM (SELECT * FROM dossiers WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2) d
JOIN products p ON p.id = d.product_id
LEFT JOIN step_instances si ON si.id = d.current_step_instance_id
LEFT JOIN steps s ON s.id = si.step_id
LEFT JOIN documents doc ON doc.step_instance_id = si.id
LEFT JOIN document_types dt ON dt.id = doc.document_type_id
LEFT JOIN document_versions v ON v.id = doc.current_version_id
ORDER BY d.created_at DESC, d.id DESC, doc.created_at, doc.id
"""

QUEUE_SQL = """
SELECT v.id, v.version_number, v.file_name, v.mime_type, v.file_size_bytes, v.uploaded_at,
  doc.id AS doc_id, doc.status AS doc_status,
  dt.id AS dt_id, dt.code AS dt_code, dt.label AS dt_label,
  d.id AS d_id, d.status AS d_status, c.id AS c_id, c.full_name, p.id AS p_id, p.name AS p_name,
  si.id AS si_id, si.position, s.id AS s_id, s.label AS s_label, a.id AS a_id, a.name AS a_name
FROM documents doc
JOIN document_versions v ON v.id = doc.current_version_id
JOIN step_instances si ON si.id = doc.step_instance_id AND si.completed_at IS NULL
JOIN dossiers d ON d.id = doc.dossier_id AND d.status = ANY($2::text[])
JOIN document_types dt ON dt.id = doc.document_type_id
JOIN profiles c ON c.id = d.user_id
JOIN products p ON p.id = d.product_id
JOIN steps s ON s.id = si.step_id
LEFT JOIN agents a ON a.id = si.assigned_to
WHERE doc.status = 'UPLOADED'
ORDER BY v.uploaded_at, v.id
LIMIT $1
"""

LATEST_SQL = """
SELECT id, created_at FROM messages WHERE dossier_id = $1
ORDER BY created_at DESC, id DESC LIMIT 1
"""

SEND_SQL = """
WITH m AS (
  INSERT INTO messages (id, dossier_id, sender_type, sender_id, content, attachments,
                        read_at, created_at)
  VALUES ($1, $2, $3, $4, $5, '[]', NULL, $6)
)
INSERT INTO events (id, created_at, entity_type, entity_id, event_type, actor_type, actor_id,
                    payload, published_at, processed_at)
VALUES ($7, $8, 'message', $1, 'MESSAGE_SENT', $3, $4, $9, NULL, NULL)
"""


class Raw:
    def __init__(self, settings: Any, prefix: str) -> None:
        self.settings = settings
        self.prefix = prefix  # the app's broadcast namespace
        self.pool: asyncpg.Pool | None = None
        self.redis: aioredis.Redis | None = None
        self.sockets: set[WebSocket] = set()
        self._relay: asyncio.Task[None] | None = None
        self._relay_lock = asyncio.Lock()
        self.relay_channel = ""

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.settings.database_url,
            min_size=1,
            max_size=5,  # as the app's pool (Tortoise's default)
            connection_class=NoResetConnection,
        )
        self.redis = aioredis.Redis.from_url(self.settings.redis_url)

    async def close(self) -> None:
        await self._stop_relay()
        if self.pool is not None:
            await self.pool.close()
        if self.redis is not None:
            await self.redis.aclose()

    def routes(self) -> list[Any]:
        return [
            Route("/bench/raw/dashboard", self.dashboard, methods=["POST"]),
            Route("/bench/raw/review-queue", self.review_queue, methods=["POST"]),
            Route("/bench/raw/work-list", self.work_list, methods=["POST"]),
            Route("/bench/raw/messages", self.messages, methods=["POST"]),
            Route("/bench/raw/typename", self.typename, methods=["POST"]),
            Route("/bench/raw/send-message", self.send_message, methods=["POST"]),
            Route("/bench/raw/webhook", self.webhook, methods=["POST"]),
            Route("/bench/raw/relay", self.set_relay, methods=["POST"]),
            WebSocketRoute("/bench/raw/ws", self.ws),
        ]

    # -- auth: the same token, the same checks (one query) -------------------------------

    async def viewer(self, request: Request, conn: Any) -> asyncpg.Record:
        header = request.headers.get("authorization", "")
        if header[:7].lower() != "bearer ":
            raise Unauthorized
        try:
            claims = jwt.decode(
                header[7:].strip(),
                self.settings.secret_key,
                algorithms=["HS256"],
                options={"require": ["sub", "exp", "iat", "pwd"]},
            )
            credential = uuid.UUID(claims["sub"])
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthorized from exc
        row = await conn.fetchrow(AUTH_SQL, credential)
        if row is None or int(row["password_changed_at"].timestamp()) > int(claims["pwd"]):
            raise Unauthorized
        if row["agent_id"] is not None and not row["active"]:
            raise Unauthorized
        return row

    # -- reads ---------------------------------------------------------------------------

    async def dashboard(self, request: Request) -> Response:
        orjson.loads(await request.body())
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            try:
                viewer = await self.viewer(request, conn)
            except Unauthorized:
                return Response(status_code=401)
            owner = viewer["profile_id"]
            counts = await conn.fetchrow(COUNTS_SQL, owner)
            notes = await conn.fetch(NOTIFICATIONS_SQL, owner, 11)
            rows = await conn.fetch(DOSSIERS_SQL, owner, 101)
        nodes: dict[Any, dict[str, Any]] = {}
        for r in rows:
            node = nodes.get(r["id"])
            if node is None:
                step = None
                if r["si_id"] is not None:
                    step = {
                        "id": str(r["si_id"]),
                        "position": r["position"],
                        "startedAt": iso(r["started_at"]),
                        "dueAt": iso(r["due_at"]),
                        "step": {"id": str(r["s_id"]), "code": r["s_code"], "label": r["s_label"]},
                        "documents": [],
                    }
                node = nodes[r["id"]] = {
                    "id": str(r["id"]),
                    "type": r["type"],
                    "status": r["status"],
                    "createdAt": iso(r["created_at"]),
                    "updatedAt": iso(r["updated_at"]),
                    "unreadMessageCount": r["unread"],
                    "product": {"id": str(r["p_id"]), "code": r["p_code"], "name": r["p_name"]},
                    "currentStep": step,
                    "_key": (r["created_at"], r["id"]),
                }
            if r["doc_id"] is not None:
                version = None
                if r["v_id"] is not None:
                    version = {
                        "id": str(r["v_id"]),
                        "versionNumber": r["version_number"],
                        "fileName": r["file_name"],
                        "mimeType": r["mime_type"],
                        "uploadedAt": iso(r["uploaded_at"]),
                    }
                node["currentStep"]["documents"].append(
                    {
                        "id": str(r["doc_id"]),
                        "status": r["doc_status"],
                        "updatedAt": iso(r["doc_updated_at"]),
                        "documentType": {
                            "id": str(r["dt_id"]),
                            "code": r["dt_code"],
                            "label": r["dt_label"],
                        },
                        "currentVersion": version,
                    }
                )
        page = list(nodes.values())
        more, page = len(page) > 100, page[:100]
        last = page[-1].pop("_key") if page else None
        for node in page:
            node.pop("_key", None)
        notes_more, notes = len(notes) > 10, notes[:10]
        return answer(
            {
                "me": {
                    "id": str(owner),
                    "fullName": viewer["full_name"],
                    "unreadMessageCount": counts["messages"],
                },
                "unreadNotificationCount": counts["notifications"],
                "notifications": {
                    "pageInfo": {
                        "hasNextPage": notes_more,
                        "endCursor": cursor(notes[-1]["created_at"], notes[-1]["id"])
                        if notes
                        else None,
                    },
                    "nodes": [
                        {
                            "id": str(n["id"]),
                            "title": n["title"],
                            "message": n["message"],
                            "read": n["read_at"] is not None,
                            "actionUrl": n["action_url"],
                            "createdAt": iso(n["created_at"]),
                        }
                        for n in notes
                    ],
                },
                "dossiers": {
                    "pageInfo": {
                        "hasNextPage": more,
                        "endCursor": cursor(*last) if last else None,
                    },
                    "nodes": page,
                },
            }
        )

    async def review_queue(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        size = int((body.get("variables") or {}).get("first") or 20)
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            try:
                viewer = await self.viewer(request, conn)
            except Unauthorized:
                return Response(status_code=401)
            if viewer["agent_id"] is None:
                return Response(status_code=403)
            rows = await conn.fetch(QUEUE_SQL, size + 1, list(ACTIVE))
        more, rows = len(rows) > size, rows[:size]
        edges = [
            {
                "cursor": cursor(r["uploaded_at"], r["id"]),
                "node": {
                    "id": str(r["id"]),
                    "waitingSince": iso(r["uploaded_at"]),
                    "version": {
                        "id": str(r["id"]),
                        "versionNumber": r["version_number"],
                        "fileName": r["file_name"],
                        "mimeType": r["mime_type"],
                        "fileSizeBytes": r["file_size_bytes"],
                        "uploadedAt": iso(r["uploaded_at"]),
                    },
                    "document": {
                        "id": str(r["doc_id"]),
                        "status": r["doc_status"],
                        "documentType": {
                            "id": str(r["dt_id"]),
                            "code": r["dt_code"],
                            "label": r["dt_label"],
                        },
                    },
                    "dossier": {
                        "id": str(r["d_id"]),
                        "status": r["d_status"],
                        "client": {"id": str(r["c_id"]), "fullName": r["full_name"]},
                        "product": {"id": str(r["p_id"]), "name": r["p_name"]},
                    },
                    "stepInstance": {
                        "id": str(r["si_id"]),
                        "position": r["position"],
                        "step": {"id": str(r["s_id"]), "label": r["s_label"]},
                        "assignedTo": {"id": str(r["a_id"]), "name": r["a_name"]}
                        if r["a_id"] is not None
                        else None,
                    },
                },
            }
            for r in rows
        ]
        return answer(
            {
                "reviewQueue": {
                    "pageInfo": {
                        "hasNextPage": more,
                        "endCursor": edges[-1]["cursor"] if edges else None,
                    },
                    "edges": edges,
                }
            }
        )

    # -- the documents of `make bench-peers` (bench/peers.py) -------------------------------

    async def work_list(self, request: Request) -> Response:
        """The agents' work list (AGENT_DOSSIERS, no filter): 50 newest dossiers."""
        orjson.loads(await request.body())
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            try:
                viewer = await self.viewer(request, conn)
            except Unauthorized:
                return Response(status_code=401)
            if viewer["agent_id"] is None:
                return Response(status_code=403)
            rows = await conn.fetch(WORK_LIST_SQL, 51)
        more, rows = len(rows) > 50, rows[:50]
        nodes = [
            {
                "id": str(r["id"]),
                "status": r["status"],
                "createdAt": iso(r["created_at"]),
                "client": {"id": str(r["c_id"]), "fullName": r["full_name"]},
                "product": {"id": str(r["p_id"]), "name": r["p_name"]},
                "currentStep": None
                if r["si_id"] is None
                else {
                    "id": str(r["si_id"]),
                    "position": r["position"],
                    "dueAt": iso(r["due_at"]),
                    "step": {"id": str(r["s_id"]), "label": r["s_label"]},
                    "assignedTo": {"id": str(r["a_id"]), "name": r["a_name"]}
                    if r["a_id"] is not None
                    else None,
                },
            }
            for r in rows
        ]
        page = {"hasNextPage": more, "endCursor": None}
        return answer({"dossiers": {"pageInfo": page, "nodes": nodes}})

    async def messages(self, request: Request) -> Response:
        """A dossier with its last 50 messages, oldest first."""
        body = orjson.loads(await request.body())
        dossier_id = uuid.UUID((body.get("variables") or {})["id"])
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            try:
                viewer = await self.viewer(request, conn)
            except Unauthorized:
                return Response(status_code=401)
            if viewer["agent_id"] is None:
                return Response(status_code=403)
            dossier = await conn.fetchrow(
                "SELECT id, status FROM dossiers WHERE id = $1", dossier_id
            )
            if dossier is None:
                return Response(status_code=404)
            rows = await conn.fetch(MESSAGES_SQL, dossier_id, 51)
        more, rows = len(rows) > 50, list(reversed(rows[:50]))
        nodes = [
            {
                "id": str(r["id"]),
                "content": r["content"],
                "senderType": r["sender_type"],
                "createdAt": iso(r["created_at"]),
                "readAt": iso(r["read_at"]),
            }
            for r in rows
        ]
        return answer(
            {
                "dossier": {
                    "id": str(dossier["id"]),
                    "status": dossier["status"],
                    "messages": {"pageInfo": {"hasPreviousPage": more}, "nodes": nodes},
                }
            }
        )

    async def typename(self, request: Request) -> Response:
        orjson.loads(await request.body())
        return answer({"__typename": "Query"})

    # -- writes --------------------------------------------------------------------------

    async def send_message(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        data = body["variables"]["input"]
        text = str(data.get("content") or "").strip()
        if not text or len(text) > self.settings.message_max_length:
            return answer({"sendMessage": {"message": None, "cursor": None, "userErrors": []}})
        dossier_id = uuid.UUID(str(data["dossierId"]))
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            try:
                viewer = await self.viewer(request, conn)
            except Unauthorized:
                return Response(status_code=401)
            is_agent = viewer["agent_id"] is not None
            sender_type = "AGENT" if is_agent else "USER"
            sender_id = viewer["agent_id"] if is_agent else viewer["profile_id"]
            message_id, event_id = uuid.uuid4(), uuid.uuid4()
            async with conn.transaction():
                if is_agent:
                    locked = await conn.fetchval(
                        "SELECT id FROM dossiers WHERE id = $1 FOR UPDATE", dossier_id
                    )
                else:
                    locked = await conn.fetchval(
                        "SELECT id FROM dossiers WHERE id = $1 AND user_id = $2 FOR UPDATE",
                        dossier_id,
                        sender_id,
                    )
                if locked is None:
                    return Response(status_code=404)
                previous = await conn.fetchrow(LATEST_SQL, dossier_id)
                now = datetime.now(UTC)
                created = now
                if previous is not None and created <= previous["created_at"]:
                    created = previous["created_at"] + TICK
                payload = {
                    "dossierId": str(dossier_id),
                    "senderType": sender_type,
                    "senderId": str(sender_id),
                    "previousMessageId": str(previous["id"]) if previous else None,
                }
                await conn.execute(
                    SEND_SQL,
                    message_id,
                    dossier_id,
                    sender_type,
                    sender_id,
                    text,
                    created,
                    event_id,
                    now,
                    orjson.dumps(payload).decode(),
                )
        live = {
            "id": str(message_id),
            "dossierId": str(dossier_id),
            "senderType": sender_type,
            "senderId": str(sender_id),
            "senderName": viewer["name"] if is_agent else viewer["full_name"],
            "content": text,
            "attachments": [],
            "createdAt": iso(created),
            "readAt": None,
            "previousId": payload["previousMessageId"],
        }
        envelope = orjson.dumps({"kind": "message", "data": live})
        await self.redis.publish(f"{self.prefix}dossier.{dossier_id}.messages", envelope)  # type: ignore[union-attr]
        return answer(
            {
                "sendMessage": {
                    "message": {
                        "id": str(message_id),
                        "content": text,
                        "senderType": sender_type,
                        "createdAt": iso(created),
                    },
                    "cursor": cursor(created, message_id),
                    "userErrors": [],
                }
            }
        )

    def _verify(self, payload: bytes, header: str | None) -> dict[str, Any] | None:
        secret = self.settings.stripe_webhook_secret
        if not header or not secret:
            return None
        parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
        stamps = [v for k, v in parts if k.strip() == "t"]
        signatures = [v for k, v in parts if k.strip() == "v1"]
        if not stamps or not signatures or not stamps[0].isdigit():
            return None
        if abs(time.time() - int(stamps[0])) > self.settings.stripe_webhook_tolerance_seconds:
            return None
        expected = hmac.new(
            secret.encode(), stamps[0].encode() + b"." + payload, hashlib.sha256
        ).hexdigest()
        if not any(hmac.compare_digest(expected, s) for s in signatures):
            return None
        return orjson.loads(payload)

    async def webhook(self, request: Request) -> Response:
        payload = await request.body()
        event = self._verify(payload, request.headers.get("stripe-signature"))
        if event is None:
            return Response(b'{"error":"invalid signature"}', 400, media_type="application/json")
        event_id, kind = str(event["id"]), str(event["type"])

        def outcome(value: str) -> Response:
            return Response(
                orjson.dumps({"received": True, "outcome": value}), media_type="application/json"
            )

        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            if await conn.fetchval(
                "SELECT 1 FROM stripe_events WHERE stripe_event_id = $1", event_id
            ):
                return outcome("duplicate")
            async with conn.transaction():
                stored = await conn.fetchval(
                    "INSERT INTO stripe_events (id, stripe_event_id, type, processed_at) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id",
                    uuid.uuid4(),
                    event_id,
                    kind,
                    datetime.now(UTC),
                )
                if stored is None:
                    return outcome("duplicate")
                session = (event.get("data") or {}).get("object") or {}
                if kind != "checkout.session.completed":
                    return outcome("ignored")
                if session.get("payment_status") == "paid":
                    await self._fulfil(conn, session)
        return outcome("processed")

    async def _fulfil(self, conn: Any, session: dict[str, Any]) -> None:
        """Order PAID, profile ACTIVE, the dossier opened at its first step: the rows the
        API's webhook writes (app.services.payments.fulfilment.fulfil,
        workflow.steps.open_dossier)."""
        order_id = uuid.UUID((session.get("metadata") or {}).get("order_id"))
        order = await conn.fetchrow(
            "SELECT id, user_id, product_id, amount, currency, status FROM orders "
            "WHERE id = $1 FOR UPDATE",
            order_id,
        )
        if order is None or order["status"] != "PENDING":
            return
        now = datetime.now(UTC)
        await conn.execute(
            "UPDATE orders SET status = 'PAID', paid_at = $2, stripe_payment_intent_id = $3, "
            "updated_at = $2 WHERE id = $1",
            order_id,
            now,
            session.get("payment_intent"),
        )
        await conn.execute(
            "UPDATE profiles SET status = 'ACTIVE', updated_at = $2 WHERE id = $1",
            order["user_id"],
            now,
        )
        await conn.execute(
            "UPDATE payment_reminders SET cancelled_at = $2 "
            "WHERE order_id = $1 AND sent_at IS NULL AND cancelled_at IS NULL",
            order_id,
            now,
        )
        product = await conn.fetchrow(
            "SELECT id, dossier_type, initial_status FROM products WHERE id = $1",
            order["product_id"],
        )
        steps = await conn.fetch(
            "SELECT step_id, position, is_required, estimated_duration_hours FROM product_steps "
            "WHERE product_id = $1 ORDER BY position",
            product["id"],
        )
        dossier_id = uuid.uuid4()
        instances = [(uuid.uuid4(), s) for s in steps]
        first_id, first = instances[0] if instances else (None, None)
        types = (
            await conn.fetch(
                "SELECT dt.id FROM step_document_types sdt "
                "JOIN document_types dt ON dt.id = sdt.document_type_id "
                "WHERE sdt.step_id = $1 AND dt.archived_at IS NULL "
                "ORDER BY sdt.position, dt.code",
                first["step_id"],
            )
            if first
            else []
        )
        initial = product["initial_status"]
        status = "IN_PROGRESS" if first else initial
        await conn.execute(
            "INSERT INTO dossiers (id, user_id, product_id, type, status, "
            "current_step_instance_id, metadata, created_at, updated_at, completed_at, "
            "reference) VALUES ($1, $2, $3, $4, $5, $6, '{}', $7, $7, NULL, $8)",
            dossier_id,
            order["user_id"],
            product["id"],
            product["dossier_type"],
            status,
            first_id,
            now,
            await _next_reference(conn, now.year),
        )
        due = (
            now + timedelta(hours=first["estimated_duration_hours"])
            if first and first["estimated_duration_hours"]
            else None
        )
        await conn.executemany(
            "INSERT INTO step_instances (id, dossier_id, step_id, assigned_to, position, "
            "is_required, started_at, completed_at, skipped_at, due_at, metadata, created_at, "
            "estimated_duration_hours) "
            "VALUES ($1, $2, $3, NULL, $4, $5, $6, NULL, NULL, $7, '{}', $8, $9)",
            [
                (
                    sid,
                    dossier_id,
                    s["step_id"],
                    s["position"],
                    s["is_required"],
                    now if sid == first_id else None,
                    due if sid == first_id else None,
                    now,
                    s["estimated_duration_hours"],
                )
                for sid, s in instances
            ],
        )
        await conn.executemany(
            "INSERT INTO documents (id, dossier_id, document_type_id, step_instance_id, status, "
            "current_version_id, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, 'PENDING', NULL, $5, $5)",
            [(uuid.uuid4(), dossier_id, t["id"], first_id, now) for t in types],
        )
        await conn.execute(
            "UPDATE orders SET dossier_id = $2, updated_at = $3 WHERE id = $1",
            order_id,
            dossier_id,
            now,
        )
        history = [(None, initial)] + ([(initial, status)] if status != initial else [])
        await conn.executemany(
            "INSERT INTO dossier_status_history (id, dossier_id, old_status, new_status, "
            "changed_by_type, changed_by_id, reason, metadata, created_at) "
            "VALUES ($1, $2, $3, $4, 'SYSTEM', NULL, NULL, '{}', $5)",
            [(uuid.uuid4(), dossier_id, old, new, now) for old, new in history],
        )

        def event(entity: str, entity_id: Any, kind: str, payload: dict[str, Any]) -> tuple:
            return (uuid.uuid4(), now, entity, entity_id, kind, orjson.dumps(payload).decode())

        rows = [
            event(
                "order",
                order_id,
                "PAYMENT_SUCCEEDED",
                {
                    "amount": order["amount"],
                    "currency": order["currency"],
                    "sessionId": session["id"],
                },
            ),
            event(
                "dossier",
                dossier_id,
                "DOSSIER_STATUS_CHANGED",
                {"dossierId": str(dossier_id), "old": None, "new": initial, "reason": None},
            ),
            event(
                "dossier",
                dossier_id,
                "DOSSIER_CREATED",
                {
                    "dossierId": str(dossier_id),
                    "orderId": str(order_id),
                    "productId": str(product["id"]),
                },
            ),
        ]
        if first:
            step_payload = {
                "dossierId": str(dossier_id),
                "stepInstanceId": str(first_id),
                "stepId": str(first["step_id"]),
                "position": first["position"],
            }
            rows.append(event("dossier", dossier_id, "STEP_STARTED", step_payload))
        if status != initial:
            rows.append(
                event(
                    "dossier",
                    dossier_id,
                    "DOSSIER_STATUS_CHANGED",
                    {"dossierId": str(dossier_id), "old": initial, "new": status, "reason": None},
                )
            )
        await conn.executemany(
            "INSERT INTO events (id, created_at, entity_type, entity_id, event_type, actor_type, "
            "actor_id, payload, published_at, processed_at) "
            "VALUES ($1, $2, $3, $4, $5, 'SYSTEM', NULL, $6, $2, $2)",
            rows,
        )

    # -- the bare WebSocket ----------------------------------------------------------------

    async def set_relay(self, request: Request) -> Response:
        """Which channel (already namespaced) the bare sockets relay."""
        body = orjson.loads(await request.body())
        self.relay_channel = str(body["channel"])
        return Response(b"{}", media_type="application/json")

    async def _relay_loop(self, channel: str) -> None:
        client = aioredis.Redis.from_url(self.settings.redis_url)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                text = message["data"].decode()
                for socket in list(self.sockets):
                    try:
                        await socket.send_text(text)
                    except Exception:
                        self.sockets.discard(socket)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _stop_relay(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(BaseException):
                await self._relay
            self._relay = None

    async def ws(self, socket: WebSocket) -> None:
        """Accept, relay the channel's messages, keep nothing else. The Redis subscription
        lives only while a bare socket is connected."""
        await socket.accept()
        async with self._relay_lock:
            self.sockets.add(socket)
            if self._relay is None:
                self._relay = asyncio.create_task(self._relay_loop(self.relay_channel))
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            async with self._relay_lock:
                self.sockets.discard(socket)
                if not self.sockets:
                    await self._stop_relay()


async def _next_reference(conn: Any, year: int) -> str:
    """The case number, as app.services.references.next_reference gives it (one upsert)."""
    number = await conn.fetchval(
        "INSERT INTO dossier_sequences (year, last_value) VALUES ($1, 1) ON CONFLICT (year) "
        "DO UPDATE SET last_value = dossier_sequences.last_value + 1 RETURNING last_value",
        year,
    )
    return format_reference(get_settings().dossier_reference_prefix, year, number)
