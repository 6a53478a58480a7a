"""Deterministic worlds for the benchmarks (and the statement-count tests).

A world is plain rows (dicts keyed by column) generated from a seeded RNG, so two runs
build exactly the same data. Two writers: `copy_rows` (asyncpg COPY, the bench: thousands
of rows in a second) and `orm_rows` (Tortoise bulk_create, the tests: both backends).

- `client_world("S" | "M" | "L")`: one client and their dossiers, as the issue sets them:
  S one dossier; M 10 dossiers x 5 steps x 5 documents, 20 notifications, 30 unread
  messages; L 100 dossiers x 10 documents.
- `queue_world(n)`: n dossiers x 5 documents, exactly one document in five (20 %) uploaded
  and waiting for review, half the steps assigned to one of 10 agents.
- `pending_orders(n)`: prospects who registered and are about to pay (the webhook's work).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.compat.tortoise import columns as model_columns

BASE = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
PASSWORD_HASH = "bench-accounts-log-in-with-tokens-only"
TABLE_ORDER = (
    "agents",
    "profiles",
    "credentials",
    "products",
    "steps",
    "product_steps",
    "document_types",
    "step_document_types",
    "dossiers",
    "step_instances",
    "documents",
    "document_versions",
    "dossier_status_history",
    "messages",
    "notifications",
    "orders",
)


@dataclass(frozen=True)
class Shape:
    name: str
    dossiers: int
    steps: int  # steps of the product
    docs_per_step: int
    current: int  # position of the step each dossier is at (earlier ones are done)
    notifications: int
    unread_messages: int
    read_messages: int = 0


SHAPES = {
    "S": Shape("S", dossiers=1, steps=5, docs_per_step=5, current=1, notifications=1,
               unread_messages=1, read_messages=1),
    "M": Shape("M", dossiers=10, steps=5, docs_per_step=5, current=5, notifications=20,
               unread_messages=30, read_messages=20),
    "L": Shape("L", dossiers=100, steps=2, docs_per_step=5, current=2, notifications=20,
               unread_messages=30, read_messages=20),
}  # fmt: skip


@dataclass
class World:
    """Rows by table, plus the handles a benchmark needs."""

    rng: random.Random
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    clients: list[dict[str, Any]] = field(default_factory=list)  # credential rows
    agents: list[dict[str, Any]] = field(default_factory=list)  # credential rows
    dossier_ids: list[uuid.UUID] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def add(self, table: str, **row: Any) -> dict[str, Any]:
        row.setdefault("id", self.uuid())
        self.rows[table].append(row)
        return row

    def count(self) -> dict[str, int]:
        return {t: len(r) for t, r in self.rows.items() if r}


def _profile(world: World, name: str, status: str = "ACTIVE") -> dict[str, Any]:
    profile = world.add(
        "profiles",
        full_name=name,
        phone=None,
        status=status,
        stripe_customer_id=None,
        locale="en",
        created_at=BASE,
        updated_at=BASE,
    )
    email = f"{name.lower().replace(' ', '.')}.{profile['id'].hex[:8]}@bench.test"
    return world.add(
        "credentials",
        email=email,
        password_hash=PASSWORD_HASH,
        password_changed_at=BASE,
        profile_id=profile["id"],
        agent_id=None,
        created_at=BASE,
        updated_at=BASE,
    )


def agents(world: World, n: int) -> list[dict[str, Any]]:
    made = []
    for i in range(n):
        agent = world.add(
            "agents",
            email=f"agent{i}.{world.rng.getrandbits(32):08x}@bench.test",
            name=f"Agent {i}",
            active=True,
            role="AGENT",
            locale="en",
            created_at=BASE,
            updated_at=BASE,
        )
        credential = world.add(
            "credentials",
            email=agent["email"],
            password_hash=PASSWORD_HASH,
            password_changed_at=BASE,
            profile_id=None,
            agent_id=agent["id"],
            created_at=BASE,
            updated_at=BASE,
        )
        world.agents.append(credential)
        made.append(agent)
    return made


def product(world: World, code: str, steps: int, docs_per_step: int) -> dict[str, Any]:
    """A product, its steps in order and each step's document types."""
    item = world.add(
        "products",
        code=code,
        name=f"Product {code}",
        description=None,
        dossier_type="IMMIGRATION",
        stripe_product_id=None,
        stripe_price_id=None,
        price_amount=150_000,
        currency="eur",
        initial_status="CREATED",
        active=True,
        created_at=BASE,
        updated_at=BASE,
    )
    item["_steps"] = []
    for position in range(1, steps + 1):
        step = world.add(
            "steps",
            code=f"{code}_STEP_{position}",
            label=f"{code} step {position}",
            description=None,
            position=position,
            created_at=BASE,
        )
        world.add(
            "product_steps",
            product_id=item["id"],
            step_id=step["id"],
            position=position,
            is_required=True,
            estimated_duration_hours=72,
            created_at=BASE,
        )
        types = [
            world.add(
                "document_types",
                code=f"{code}_DOC_{position}_{n}",
                label=f"Document {position}.{n}",
                description=None,
                required_step_id=step["id"],
                max_file_size_mb=10,
                allowed_extensions=["pdf", "jpg", "png"],
                created_at=BASE,
                updated_at=BASE,
            )
            for n in range(1, docs_per_step + 1)
        ]
        for document_type in types:  # what the step asks for; the type's id (no RNG draw)
            world.add(
                "step_document_types",
                id=document_type["id"],
                step_id=step["id"],
                document_type_id=document_type["id"],
                position=0,
                created_at=BASE,
            )
        item["_steps"].append((step, types))
    return item


def _version(world: World, document: dict[str, Any], uploader: uuid.UUID, at: datetime) -> dict:
    version = world.add(
        "document_versions",
        document_id=document["id"],
        file_url=f"documents/{world.uuid().hex}",
        file_name=f"scan-{world.rng.randrange(10_000):04d}.pdf",
        file_size_bytes=world.rng.randrange(20_000, 4_000_000),
        mime_type="application/pdf",
        uploaded_by_type="USER",
        uploaded_by_id=uploader,
        version_number=1,
        uploaded_at=at,
        # in the review queue while the document waits (app.services.documents)
        awaiting_review_since=at if document["status"] == "UPLOADED" else None,
    )
    document["current_version_id"] = version["id"]
    return version


def _dossier(
    world: World,
    owner: uuid.UUID,
    item: dict[str, Any],
    *,
    current: int,
    at: datetime,
    doc_status: Any,
    assignee: uuid.UUID | None = None,
    status: str = "IN_PROGRESS",
) -> dict[str, Any]:
    """A dossier at step `current` (earlier steps completed, their documents approved);
    `doc_status(position_in_step)` gives each current document's status."""
    dossier = world.add(
        "dossiers",
        user_id=owner,
        product_id=item["id"],
        type="IMMIGRATION",
        status=status,
        current_step_instance_id=None,
        metadata={},
        created_at=at,
        updated_at=at,
        completed_at=None,
        reference=f"PV-{at.year}-{uuid.uuid4().int % 10**12:012d}",  # unique: past any counter
    )
    world.dossier_ids.append(dossier["id"])
    world.add(
        "dossier_status_history",
        dossier_id=dossier["id"],
        old_status=None,
        new_status="CREATED",
        changed_by_type="SYSTEM",
        changed_by_id=None,
        reason=None,
        metadata={},
        created_at=at,
    )
    for position, (step, types) in enumerate(item["_steps"], start=1):
        started = at + timedelta(days=position - 1) if position <= current else None
        done = position < current
        instance = world.add(
            "step_instances",
            dossier_id=dossier["id"],
            step_id=step["id"],
            assigned_to=assignee if position == current else None,
            position=position,
            is_required=True,
            started_at=started,
            completed_at=started + timedelta(hours=20) if done and started else None,
            skipped_at=None,
            due_at=started + timedelta(hours=72) if started else None,
            estimated_duration_hours=72,
            metadata={},
            created_at=at,
        )
        if position == current:
            dossier["current_step_instance_id"] = instance["id"]
        if position > current:
            continue  # documents are made when a step starts
        for n, kind in enumerate(types):
            state = "APPROVED" if done else doc_status(n)
            document = world.add(
                "documents",
                dossier_id=dossier["id"],
                document_type_id=kind["id"],
                step_instance_id=instance["id"],
                status=state,
                current_version_id=None,
                created_at=(started or at) + timedelta(seconds=n),
                updated_at=(started or at) + timedelta(seconds=n),
            )
            if state != "PENDING":
                uploaded = (started or at) + timedelta(hours=1, seconds=world.rng.randrange(3600))
                _version(world, document, owner, uploaded)
    return dossier


def client_world(size: str, *, seed: int = 7, world: World | None = None) -> World:
    """One client with the dossiers, notifications and messages of shape S, M or L."""
    shape = SHAPES[size]
    world = world or World(random.Random(f"{seed}-{size}"))
    reviewer = agents(world, 1)[0]
    item = product(world, f"{size}{seed}", shape.steps, shape.docs_per_step)
    credential = _profile(world, f"Client {size}")
    world.clients.append(credential)
    owner = credential["profile_id"]
    statuses = ("PENDING", "CHANGES_REQUESTED", "APPROVED", "PENDING", "APPROVED")
    made = [
        _dossier(
            world,
            owner,
            item,
            current=shape.current,
            at=BASE + timedelta(hours=i),
            doc_status=lambda n: statuses[n % len(statuses)],
            status="CHANGES_REQUESTED",
        )
        for i in range(shape.dossiers)
    ]
    for i in range(shape.unread_messages + shape.read_messages):
        unread = i < shape.unread_messages
        world.add(
            "messages",
            dossier_id=made[i % len(made)]["id"],
            sender_type="AGENT",
            sender_id=reviewer["id"],
            content=f"Message {i}: please check the document list.",
            attachments=[],
            read_at=None if unread else BASE + timedelta(days=3),
            created_at=BASE + timedelta(days=2, minutes=i),
        )
    for i in range(shape.notifications):
        dossier = made[i % len(made)]
        world.add(
            "notifications",
            user_id=owner,
            agent_id=None,
            dossier_id=dossier["id"],
            event_id=None,
            title=f"Update {i} on your dossier",
            message="An agent reviewed one of your documents.",
            template_code="DOCUMENT_CHANGES_REQUESTED",
            payload={"eventType": "DOCUMENT_CHANGES_REQUESTED"},
            action_url=f"/dossiers/{dossier['id']}",
            read_at=BASE + timedelta(days=4) if i % 2 else None,
            group_key=None,
            created_at=BASE + timedelta(days=2, minutes=i),
        )
    return world


def queue_world(
    dossiers: int, *, seed: int = 11, start: int = 0, world: World | None = None
) -> World:
    """`dossiers` dossiers of 5 documents each; one document in five waits for review.
    `start` continues a world already seeded (2,000, then 18,000 more for 20,000)."""
    world = world or World(random.Random(f"{seed}-queue-{start}"))
    team = agents(world, 10)
    item = product(world, f"Q{seed}x{start}", 1, 5)
    owners = [_profile(world, f"Queue client {start + i}")["profile_id"] for i in range(200)]
    statuses = ("APPROVED", "PENDING", "APPROVED", "PENDING")
    for i in range(dossiers):
        index = start + i
        waiting = index % 5

        def state(n: int, waiting: int = waiting) -> str:
            return "UPLOADED" if n == waiting else statuses[n % 4]

        _dossier(
            world,
            owners[i % len(owners)],
            item,
            current=1,
            at=BASE + timedelta(minutes=index),
            doc_status=state,
            assignee=team[i % len(team)]["id"] if i % 2 == 0 else None,
        )
    return world


def pending_orders(n: int, *, seed: int = 13, world: World | None = None) -> World:
    """Prospects who registered (profile PENDING) with an order waiting for payment."""
    world = world or World(random.Random(f"{seed}-orders"))
    item = product(world, f"W{seed}", 3, 2)
    for i in range(n):
        credential = _profile(world, f"Prospect {i}", status="PENDING")
        order = world.add(
            "orders",
            user_id=credential["profile_id"],
            product_id=item["id"],
            payment_link_id=None,
            dossier_id=None,
            amount=item["price_amount"],
            currency=item["currency"],
            status="PENDING",
            stripe_checkout_session_id=f"cs_test_{world.uuid().hex}",
            stripe_payment_intent_id=None,
            stripe_customer_id=None,
            metadata={},
            paid_at=None,
            created_at=BASE,
            updated_at=BASE,
        )
        world.orders.append(order)
    return world


# --- writers ---------------------------------------------------------------------------


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


async def copy_rows(connection: Any, world: World) -> dict[str, int]:
    """Write a world with asyncpg COPY, in one transaction (the two cyclic foreign keys
    are deferred to the commit)."""
    written = {}
    async with connection.transaction():
        await connection.execute("SET CONSTRAINTS ALL DEFERRED")
        for table in TABLE_ORDER:
            rows = [_plain(r) for r in world.rows.get(table, [])]
            if not rows:
                continue
            types = dict(
                await connection.fetch(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = $1 AND table_schema = current_schema()",
                    table,
                )
            )
            # a column this checkout's migrations do not have yet is left out
            columns = [c for c in rows[0] if c in types]
            json_columns = {c for c in columns if types.get(c) in ("json", "jsonb")}
            records = [
                tuple(orjson.dumps(r[c]).decode() if c in json_columns else r[c] for c in columns)
                for r in rows
            ]
            await connection.copy_records_to_table(table, records=records, columns=columns)
            written[table] = len(records)
    return written


async def orm_rows(world: World) -> None:
    """Write a world through the ORM (both backends), in one transaction."""
    from tortoise import Tortoise
    from tortoise.transactions import in_transaction

    models = {m._meta.db_table: m for m in Tortoise.apps["models"].values()}
    async with in_transaction():
        for table in TABLE_ORDER:
            rows = world.rows.get(table)
            if rows:
                model = models[table]
                # rows are keyed by column; a model takes attribute names (`assigned_to_id`
                # for the column `assigned_to`)
                names = {column: name for name, column in model_columns(model).items()}
                await model.bulk_create(
                    [model(**{names.get(k, k): v for k, v in _plain(r).items()}) for r in rows],
                    batch_size=500,
                )
