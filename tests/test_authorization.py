"""Authorisation as a property (SPEC §3), with hypothesis.

Random worlds of clients, agents, admins, dossiers (with their orders, documents, uploaded
versions and step instances), assignments, notifications and catalogue objects. In every
world, every query, mutation and subscription that takes an id is asked by every kind of
caller (anonymous, each client, an agent, an admin) about every object of the kind it takes,
plus a missing id, a malformed one and the id of an object of another kind, and:

- the answer is what the policy says: UNAUTHENTICATED without a token, FORBIDDEN for a role
  that may not call it at all (whatever the id), the object for those allowed to see it;
- what a caller may not see (another client's dossier, order, document, version, step,
  notification; an inactive product for a client; an id of another kind) is answered
  exactly like a missing id: the whole response body (data, and each error's message,
  path, locations and extensions) is identical;
- a refusal never depends on the id (all FORBIDDEN answers of one operation are identical).

The operations are discovered from the schema: `test_every_id_taking_field_has_a_policy`
fails when a root field taking an ID (directly or inside its input) has no case here.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from graphql import GraphQLInputObjectType, GraphQLList, GraphQLNonNull, GraphQLScalarType
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.auth import viewer_from_token
from app.models import (
    Credential,
    Document,
    DocumentType,
    DossierMember,
    Notification,
    Order,
    PaymentLink,
    Product,
    ProductStep,
    Step,
    StepDocumentType,
)
from app.models.desk import DossierNote
from app.models.enums import OrderStatus
from app.services import documents, outbox
from app.services.desk import notes as desk_notes
from app.services.desk import owners as desk_owners
from app.services.desk import tags as desk_tags
from app.services.payments.links import link_secret, token_digest
from app.services.sessions import open_session
from app.services.workflow.actions import StatusAction, assign_step, change_status
from app.subscriptions import topics
from tests.documents_support import PREFLIGHT, make_pdf, multipart_body
from tests.factories import Account, make_admin, make_agent, make_client, make_dossier, make_product
from tests.ws_support import settings_with, wait_until

EXAMPLES = int(os.environ.get("AUTHZ_EXAMPLES", "25"))
WS_EXAMPLES = int(os.environ.get("AUTHZ_WS_EXAMPLES", "6"))
MALFORMED = "not-a-uuid"
# Every dossier of a world has an internal note with this text (issue 19): no answer to a
# client or member, of any case, query or subscription, may ever carry it.
NOTE_SECRET = "internal-note-secret-7f3a: the client is not to know this"
OK, HIDDEN, MALFORMED_REJECTED = "OK", "HIDDEN", "MALFORMED_REJECTED"
UNAUTHENTICATED, FORBIDDEN = "UNAUTHENTICATED", "FORBIDDEN"
ANY_VIEWER = frozenset({"client", "agent", "admin"})
STAFF = frozenset({"agent", "admin"})
ADMIN = frozenset({"admin"})


# --- the schema's id-taking root fields ------------------------------------------------


def _takes_id(type_: Any, seen: tuple[str, ...] = ()) -> bool:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    if isinstance(type_, GraphQLScalarType):
        return type_.name == "ID"
    if isinstance(type_, GraphQLInputObjectType) and type_.name not in seen:
        return any(_takes_id(f.type, (*seen, type_.name)) for f in type_.fields.values())
    return False


def id_taking_fields() -> set[str]:
    from app.api import schema

    graphql_schema = schema._schema
    roots = (graphql_schema.query_type, graphql_schema.mutation_type)
    found = set()
    for root in (*roots, graphql_schema.subscription_type):
        for name, root_field in (root.fields if root else {}).items():
            if any(_takes_id(arg.type) for arg in root_field.args.values()):
                found.add(f"{root.name}.{name}")
    return found


# --- worlds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    clients: int
    agents: int
    admins: int
    owners: tuple[int, ...]  # one dossier per entry: the index of its client
    uploaded: tuple[bool, ...]  # per dossier: a version uploaded for its document
    assignments: tuple[tuple[int, int], ...]  # (dossier, staff member)
    pending_order_of: int | None  # a client with an unpaid order too
    inactive_product: bool
    notifications: tuple[int, ...]  # per account (clients, then staff): how many
    client_pick: int  # the client who asks (the others own the foreign objects)
    agent_pick: int
    admin_pick: int
    members: tuple[tuple[int, int], ...] = ()  # (dossier, client): a member of another's


# Every kind of object and caller at once: the client who asks owns two dossiers (one with
# an upload) and an unpaid order; another client owns a third; two agents, two admins,
# assignments, notifications on both sides, an inactive product.
RICH = Spec(
    clients=3,
    agents=2,
    admins=2,
    owners=(0, 1, 0),
    uploaded=(True, True, False),
    assignments=((0, 0), (1, 2)),
    pending_order_of=0,
    inactive_product=True,
    notifications=(2, 1, 0, 1, 0, 1, 0),
    client_pick=0,
    agent_pick=1,
    admin_pick=0,
    members=((1, 0), (0, 2)),  # the asker is a member of client 1's dossier
)


@st.composite
def specs(draw: Any) -> Spec:
    clients = draw(st.integers(1, 3))
    agents = draw(st.integers(0, 2))
    admins = draw(st.integers(1, 2))
    owners = tuple(draw(st.lists(st.integers(0, clients - 1), min_size=1, max_size=3)))
    staff = agents + admins
    return Spec(
        clients=clients,
        agents=agents,
        admins=admins,
        owners=owners,
        uploaded=tuple(draw(st.lists(st.booleans(), min_size=len(owners), max_size=len(owners)))),
        assignments=tuple(
            draw(
                st.lists(
                    st.tuples(st.integers(0, len(owners) - 1), st.integers(0, staff - 1)),
                    max_size=3,
                )
            )
        ),
        pending_order_of=draw(st.none() | st.integers(0, clients - 1)),
        inactive_product=draw(st.booleans()),
        notifications=tuple(
            draw(st.lists(st.integers(0, 2), min_size=clients + staff, max_size=clients + staff))
        ),
        client_pick=draw(st.integers(0, clients - 1)),
        agent_pick=draw(st.integers(0, max(agents - 1, 0))),
        admin_pick=draw(st.integers(0, admins - 1)),
        members=tuple(
            draw(
                st.lists(
                    st.tuples(st.integers(0, len(owners) - 1), st.integers(0, clients - 1)),
                    max_size=2,
                )
            )
        ),
    )


@dataclass(frozen=True)
class Target:
    value: str
    nature: str  # "real", "missing", "malformed" or "alien" (an id of another kind)
    owner: str | None = None  # the client (or, for notifications, the account) it belongs to
    active: bool = True  # products
    dossier: str | None = None  # what a dossier-scoped object belongs to
    members: frozenset[str] = frozenset()  # the clients who are members of that dossier


@dataclass(frozen=True)
class Who:
    role: str  # "anon", "client", "agent", "admin"
    account: Account | None = None

    @property
    def token(self) -> str | None:
        return self.account.token if self.account else None

    @property
    def id(self) -> str | None:
        return self.account.id if self.account else None

    def __str__(self) -> str:
        return f"{self.role}:{self.id}" if self.account else self.role


@dataclass
class World:
    clients: list[Account]
    staff: list[Account]
    viewers: list[Who]
    targets: dict[str, list[Target]] = field(default_factory=dict)
    main_product: str = ""
    first_step: str = ""
    some_document_type: str = ""  # one of the main product's (its first step asks for it)
    dossiers_of: dict[str, list[str]] = field(default_factory=dict)  # client -> dossiers
    orders_of: dict[str, list[str]] = field(default_factory=dict)  # client -> orders
    members_of: dict[str, frozenset[str]] = field(default_factory=dict)  # dossier -> members
    some_step_instance: str = ""
    notes: dict[str, tuple[str, str, str]] = field(
        default_factory=dict
    )  # id -> dossier, author, body

    def real(self, kind: str) -> list[Target]:
        return [t for t in self.targets[kind] if t.nature == "real"]


async def _upload(owner: Account, document_id: uuid.UUID, storage: Any) -> str:
    buffer = io.BytesIO(make_pdf("authz"))

    async def read(size: int) -> bytes:
        return buffer.read(size)

    viewer = await viewer_from_token(owner.token)
    upload = documents.UploadedFile(file_name="passport.pdf", read=read)
    _, version = await documents.upload_document(viewer, document_id, upload, storage=storage)
    return str(version.id)


async def build_world(spec: Spec, storage: Any) -> World:
    clients = [await make_client() for _ in range(spec.clients)]
    agents = [await make_agent() for _ in range(spec.agents)]
    admins = [await make_admin() for _ in range(spec.admins)]
    staff = agents + admins
    viewers = [Who("anon"), Who("client", clients[spec.client_pick])]
    if agents:
        viewers.append(Who("agent", agents[spec.agent_pick]))
    viewers.append(Who("admin", admins[spec.admin_pick]))
    world = World(clients=clients, staff=staff, viewers=viewers)

    product = await make_product((("pdf",), (), ()))
    products = [Target(str(product.id), "real")]
    if spec.inactive_product:
        inactive = await make_product(((),), active=False)
        products.append(Target(str(inactive.id), "real", active=False))
    world.main_product = str(product.id)
    main_steps = [
        str(ps.step_id)  # type: ignore[attr-defined]
        for ps in await ProductStep.filter(product_id=product.id).order_by("position")
    ]
    world.first_step = main_steps[0]
    document_types = {str(dt) for dt in await _document_types(main_steps)}
    world.some_document_type = sorted(document_types)[0]

    dossiers, orders, docs, versions, step_instances = [], [], [], [], []
    references: list[Target] = []  # the dossiers' case numbers (issue 19)
    admin_viewer = await viewer_from_token(admins[0].token)
    memberships = []
    for index, owner_index in enumerate(spec.owners):
        owner = clients[owner_index]
        dossier = await make_dossier(owner, product)
        did = str(dossier.id)
        member_ids: set[str] = set()
        for dossier_index, client_index in spec.members:
            member = clients[client_index]
            if dossier_index == index and member is not owner and member.id not in member_ids:
                row = await DossierMember.create(
                    dossier_id=dossier.id, profile_id=member.obj.id, role="SPOUSE"
                )
                member_ids.add(member.id)
                memberships.append((str(row.id), owner.id, did, member.id))
        members = frozenset(member_ids)
        world.members_of[did] = members
        dossiers.append(Target(did, "real", owner=owner.id, dossier=did, members=members))
        references.append(
            Target(dossier.reference, "real", owner=owner.id, dossier=did, members=members)
        )
        world.dossiers_of.setdefault(owner.id, []).append(did)
        order = await Order.get(dossier_id=dossier.id)
        orders.append(Target(str(order.id), "real", owner=owner.id, dossier=did))
        world.orders_of.setdefault(owner.id, []).append(str(order.id))
        document = await Document.get(dossier_id=dossier.id)
        docs.append(Target(str(document.id), "real", owner=owner.id, dossier=did, members=members))
        current = str(dossier.current_step_instance_id)
        step_instances.append(Target(current, "real", owner=owner.id, dossier=did, members=members))
        if spec.uploaded[index]:
            version = await _upload(owner, document.id, storage)
            versions.append(Target(version, "real", owner=owner.id, dossier=did, members=members))
    for dossier_index, staff_index in spec.assignments:
        step_id = uuid.UUID(step_instances[dossier_index].value)
        await assign_step(admin_viewer, step_id, staff[staff_index].obj.id)
    world.some_step_instance = step_instances[0].value
    # The agents' desk (issue 19): a note on every dossier (by a staff member, the owner of
    # every other dossier told), a tag, an owner; through the services and the outbox, so
    # their notifications and live updates are made as in production.
    note_targets = []
    async with outbox.collecting():
        for index, target in enumerate(dossiers):
            author = staff[index % len(staff)]
            author_viewer = await viewer_from_token(author.token)
            dossier_id = uuid.UUID(target.value)
            if index % 2 == 0:
                owner_agent = staff[(index + 1) % len(staff)].obj.id
                await desk_owners.assign_owner(admin_viewer, dossier_id, owner_agent)
            note = await desk_notes.add_note(author_viewer, dossier_id, NOTE_SECRET)
            await desk_tags.tag_dossier(author_viewer, dossier_id, ["internal-tag"])
            world.notes[str(note.id)] = (target.value, author.id, NOTE_SECRET)
            note_targets.append(Target(str(note.id), "real", owner=author.id, dossier=target.value))
    if spec.pending_order_of is not None:
        owner = clients[spec.pending_order_of]
        pending = await Order.create(
            user_id=owner.obj.id,
            product_id=product.id,
            amount=product.price_amount,
            currency=product.currency,
            status=OrderStatus.PENDING,
        )
        orders.append(Target(str(pending.id), "real", owner=owner.id))
        world.orders_of.setdefault(owner.id, []).append(str(pending.id))

    notifications = []
    for account, count in zip([*clients, *staff], spec.notifications, strict=True):
        for n in range(count):
            owner_field = "agent_id" if account in staff else "user_id"
            row = await Notification.create(
                **{owner_field: account.obj.id},
                title=f"n{n}",
                message="m",
                template_code="dossier_completed",
            )
            notifications.append(Target(str(row.id), "real", owner=account.id))

    def kind(reals: list[Target], alien: str) -> list[Target]:
        return [
            *reals,
            Target(str(uuid.uuid4()), "missing"),
            Target(MALFORMED, "malformed"),
            Target(alien, "alien"),
        ]

    # a second session of every account (never the one its token belongs to)
    sessions = [
        Target(
            str((await open_session(await Credential.get(email=a.email))).session.id),
            "real",
            owner=a.id,
        )
        for a in [*clients, *staff]
    ]

    links = []
    for n in range(2):
        link_id = uuid.uuid4()
        await PaymentLink.create(
            id=link_id,
            token=token_digest(link_secret(link_id)),
            product_id=product.id,
            prospect_email=f"prospect-{n}-{link_id.hex[:6]}@example.com",
            prospect_name="Prospect",
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        links.append(Target(str(link_id), "real"))

    some_client, some_dossier = clients[0].id, dossiers[0].value
    world.targets = {
        "payment_link": kind(links, some_dossier),
        "session": kind(sessions, some_dossier),
        "account": kind(
            [
                *(Target(c.id, "real", owner=c.id) for c in clients),
                *(Target(a.id, "real") for a in staff),
            ],
            some_dossier,
        ),
        "dossier": kind(dossiers, some_client),
        # A case number is accepted wherever a dossier id is: an unknown one is a missing id.
        "dossier_ref": [
            *references,
            Target("PV-1999-999999", "missing"),
            Target(MALFORMED, "malformed"),
            Target(some_client, "alien"),
        ],
        "member": kind(
            [
                Target(mid, "real", owner=oid, dossier=did, members=frozenset({pid}))
                for mid, oid, did, pid in memberships
            ],
            some_dossier,
        ),
        "order": kind(orders, some_dossier),
        "document": kind(docs, some_dossier),
        "version": kind(versions, some_dossier),
        "step_instance": kind(step_instances, some_dossier),
        "product": kind(products, some_dossier),
        "step": kind([Target(s, "real") for s in main_steps], some_dossier),
        "document_type": kind([Target(d, "real") for d in sorted(document_types)], some_dossier),
        "agent": kind([Target(a.id, "real") for a in staff], some_client),
        "notification": kind(notifications, some_dossier),
        "client": kind([Target(c.id, "real", owner=c.id) for c in clients], staff[0].id),
        # the GDPR's mutations: an agent's id is a staff account (STAFF_ACCOUNT, admins
        # only), so the id of another kind here is a dossier's
        "erasable": kind([Target(c.id, "real", owner=c.id) for c in clients], some_dossier),
        "note": kind(note_targets, some_dossier),
    }
    return world


async def _document_types(step_ids: list[str]) -> list[uuid.UUID]:
    rows = await StepDocumentType.filter(step_id__in=step_ids)
    return [row.document_type_id for row in rows]


# --- who may see what (SPEC §3) --------------------------------------------------------


def sees_dossier_scoped(_world: World, who: Who, target: Target) -> bool:
    """Clients their own and those they are a member of, agents and admins all."""
    return who.role in STAFF or target.owner == who.id or (who.id or "") in target.members


def sees_all(_world: World, _who: Who, _target: Target) -> bool:
    return True


def sees_own(_world: World, who: Who, target: Target) -> bool:
    return target.owner == who.id


def sees_product(_world: World, who: Who, target: Target) -> bool:
    return target.active or who.role in STAFF


def sees_client(_world: World, who: Who, target: Target) -> bool:
    return who.role in STAFF or target.owner == who.id


# --- answers --------------------------------------------------------------------------------


def codes(body: dict[str, Any]) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]


def not_found(body: dict[str, Any]) -> None:
    assert codes(body) == ["NOT_FOUND"], body


def no_errors(body: dict[str, Any]) -> dict[str, Any]:
    assert not body.get("errors"), body
    return body["data"]


def payload(body: dict[str, Any], name: str) -> dict[str, Any]:
    return no_errors(body)[name]


def user_error(name: str, code: str) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        errors = payload(body, name)["userErrors"]
        assert [e["code"] for e in errors] == [code], body

    return check


def empty(name: str) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        assert payload(body, name)["nodes"] == [], body

    return check


def returns_id(name: str, key: str | None = None) -> Callable[..., None]:
    def check(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
        data = payload(body, name)
        obj = data[key] if key else data
        assert obj is not None, body
        assert obj["id"] == target.value, body

    return check


def no_top_level_error(_world: World, _who: Who, _target: Target, body: dict[str, Any]) -> None:
    no_errors(body)


Ask = Callable[[httpx.AsyncClient, World, Who, Target], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Case:
    field: str  # "Query.dossier": the root field it covers
    kind: str  # which targets it is asked about
    roles: frozenset[str]  # who may call it at all
    ask: Ask
    sees: Callable[[World, Who, Target], bool]
    hidden: Callable[[dict[str, Any]], None]  # what a missing id gets
    ok: Callable[[World, Who, Target, dict[str, Any]], None]
    malformed_is_missing: bool = True  # False for list filters: a malformed id is refused
    only_if: Callable[[World, Who], bool] = lambda _w, _who: True
    name: str = ""

    def __str__(self) -> str:
        return self.name or self.field


async def post(
    http: httpx.AsyncClient, who: Who, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {who.token}"} if who.token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def by_id(query: str) -> Ask:
    async def ask(http: httpx.AsyncClient, _world: World, who: Who, target: Target) -> dict:
        return await post(http, who, query, {"id": target.value})

    return ask


def with_vars(query: str, make: Callable[[World, Who, Target], dict[str, Any]]) -> Ask:
    async def ask(http: httpx.AsyncClient, world: World, who: Who, target: Target) -> dict:
        return await post(http, who, query, make(world, who, target))

    return ask


def restoring(ask: Ask) -> Ask:
    """`ask`, then the catalogue put back as it was (what is archived, which step asks for
    which document type): an allowed archive, attach or detach must not change what the
    cases after it see."""

    async def run(http: httpx.AsyncClient, world: World, who: Who, target: Target) -> dict:
        archived = {
            model: set(await model.filter(archived_at__isnull=False).values_list("id", flat=True))
            for model in (Product, Step, DocumentType)
        }
        links = {
            (row["step_id"], row["document_type_id"]): row
            for row in await StepDocumentType.all().values(
                "id", "step_id", "document_type_id", "position", "created_at"
            )
        }
        required = dict(await DocumentType.all().values_list("id", "required_step_id"))
        body = await ask(http, world, who, target)
        for model, ids in archived.items():
            await (
                model.filter(archived_at__isnull=False)
                .exclude(id__in=list(ids))
                .update(archived_at=None)
            )
        now = {
            (row["step_id"], row["document_type_id"]): row
            for row in await StepDocumentType.all().values("id", "step_id", "document_type_id")
        }
        await StepDocumentType.filter(
            id__in=[r["id"] for k, r in now.items() if k not in links]
        ).delete()
        await StepDocumentType.bulk_create(
            [StepDocumentType(**row) for key, row in links.items() if key not in now]
        )
        for row in links.values():
            await StepDocumentType.filter(id=row["id"]).update(position=row["position"])
        for type_id, step_id in required.items():
            await DocumentType.filter(id=type_id).update(required_step_id=step_id)
        return body

    return run


UPLOAD = """
mutation Upload($input: UploadDocumentInput!) {
  uploadDocument(input: $input) { document { id } userErrors { code field message } }
}
"""


async def ask_upload(http: httpx.AsyncClient, _world: World, who: Who, target: Target) -> dict:
    operations = {
        "query": UPLOAD,
        "variables": {"input": {"documentId": target.value, "file": None}},
    }
    body, content_type = multipart_body(
        operations, [("scan.pdf", make_pdf("x"), "application/pdf")]
    )
    headers = {"content-type": content_type, **PREFLIGHT}
    if who.token:
        headers["authorization"] = f"Bearer {who.token}"
    response = await http.post("/graphql", content=body, headers=headers)
    if response.status_code == 401 and not who.token:  # refused before the body is read
        return {"data": None, "errors": [{"extensions": {"code": UNAUTHENTICATED}}]}
    assert response.status_code == 200, response.text
    return response.json()


SHARE = """
mutation Share($input: ShareFileInput!) {
  shareFile(input: $input) { sharedFile { id } userErrors { code field message } }
}
"""


async def ask_share(http: httpx.AsyncClient, _world: World, who: Who, target: Target) -> dict:
    operations = {"query": SHARE, "variables": {"input": {"dossierId": target.value, "file": None}}}
    body, content_type = multipart_body(
        operations, [("letter.pdf", make_pdf("x"), "application/pdf")]
    )
    headers = {"content-type": content_type, **PREFLIGHT}
    if who.token:
        headers["authorization"] = f"Bearer {who.token}"
    response = await http.post("/graphql", content=body, headers=headers)
    if response.status_code == 401 and not who.token:  # refused before the body is read
        return {"data": None, "errors": [{"extensions": {"code": UNAUTHENTICATED}}]}
    assert response.status_code == 200, response.text
    return response.json()


def _shared(_world: World, _who: Who, _target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "shareFile")
    assert data["userErrors"] == [], body
    assert data["sharedFile"]["id"], body


def _own_dossier(world: World, who: Who) -> str | None:
    if who.role in STAFF:
        return world.real("dossier")[0].value
    if who.role == "client":
        own = world.dossiers_of.get(who.id or "")
        return own[0] if own else None
    return world.real("dossier")[0].value  # anonymous: refused before it matters


def _visible_dossiers_of(world: World, who: Who, client_id: str) -> list[str]:
    """The client's dossiers the viewer sees: all for staff, else those they own or are a
    member of."""
    return [
        d
        for d in world.dossiers_of.get(client_id, [])
        if who.role in STAFF or client_id == who.id or (who.id or "") in world.members_of[d]
    ]


def sees_dossiers_of(world: World, who: Who, target: Target) -> bool:
    return bool(_visible_dossiers_of(world, who, target.value)) or sees_client(world, who, target)


def _expected_dossiers(world: World, who: Who, target: Target, body: dict[str, Any]) -> None:
    nodes = payload(body, "dossiers")["nodes"]
    expected = _visible_dossiers_of(world, who, target.value)
    assert sorted(n["id"] for n in nodes) == sorted(expected), body


def _expected_orders(world: World, who: Who, target: Target, body: dict[str, Any]) -> None:
    nodes = payload(body, "orders")["nodes"]
    assert sorted(n["id"] for n in nodes) == sorted(world.orders_of.get(target.value, [])), body


def _events_of(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    nodes = payload(body, "events")["nodes"]
    assert nodes, body  # opening a dossier records events
    assert {(n["entityType"], n["entityId"]) for n in nodes} == {("dossier", target.value)}


def _access_log_of(key: str) -> Callable[..., None]:
    """Only the accesses of the asked client, document or dossier (often none yet)."""

    def ok(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
        nodes = payload(body, "accessLog")["nodes"]
        assert {n[key] for n in nodes} <= {target.value}, body

    return ok


def _deliveries_of(world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    """Only how the asked client's notifications went out (in-app, to their e-mail)."""
    emails = {c.email for c in world.clients if c.id == target.value}
    nodes = payload(body, "clientDeliveries")["nodes"]
    assert {n["recipientAddress"] for n in nodes} <= {f"user:{target.value}", *emails}, body


def _document_types_of(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    nodes = payload(body, "documentTypes")["nodes"]
    assert {n["requiredStep"]["id"] for n in nodes} <= {target.value}, body


def _download(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    assert f"/files/{target.value}?" in payload(body, "documentDownloadUrl")["url"]


def _payment_link(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "createPaymentLink")
    if target.active:
        assert data["userErrors"] == [], body
        assert data["paymentLink"]["product"]["id"] == target.value
    else:
        assert [e["code"] for e in data["userErrors"]] == ["PRODUCT_INACTIVE"], body


def _member_answer(name: str) -> Callable[..., None]:
    """Its client and agents manage members; a member sees the dossier but may not."""

    def check(_world: World, who: Who, target: Target, body: dict[str, Any]) -> None:
        data = payload(body, name)
        if who.role in STAFF or target.owner == who.id:
            assert data["userErrors"] == [], body
            assert data["member"] is not None, body
        else:
            assert [e["code"] for e in data["userErrors"]] == ["NOT_ALLOWED"], body

    return check


async def _ask_and_restore_member(
    http: httpx.AsyncClient, _world: World, who: Who, target: Target
) -> dict:
    body = await post(
        http,
        who,
        "mutation($id: ID!) { removeDossierMember(input: {memberId: $id}) "
        "{ member { id } userErrors { code field message } } }",
        {"id": target.value},
    )
    if target.nature == "real":  # the next caller finds the member as it was
        await DossierMember.filter(id=target.value).update(removed_at=None)
    return body


def _fresh_email() -> str:
    return f"walk-in-{uuid.uuid4().hex[:10]}@example.com"


def _opened_dossier(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "openDossier")
    if target.active:
        assert data["userErrors"] == [], body
        assert data["dossier"]["product"]["id"] == target.value
    else:
        assert [e["code"] for e in data["userErrors"]] == ["PRODUCT_INACTIVE"], body


def _link_answer(name: str) -> Callable[..., None]:
    """The link itself, or (revoked earlier in this world) the refusal that says so."""

    def check(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
        data = payload(body, name)
        if data["paymentLink"] is None:
            assert [e["code"] for e in data["userErrors"]] == ["LINK_REVOKED"], body
        else:
            assert data["paymentLink"]["id"] == target.value, body

    return check


def _marked(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    assert [n["id"] for n in payload(body, "markNotificationsRead")["notifications"]] == [
        target.value
    ]


def _ignored(body: dict[str, Any]) -> None:
    data = payload(body, "markNotificationsRead")
    assert data["notifications"] == [], body
    assert data["userErrors"] == [], body


def _message_in(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "sendMessage")
    assert data["userErrors"] == [], body
    assert data["message"]["dossierId"] == target.value, body


def _attached(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "sendMessage")
    assert data["userErrors"] == [], body
    assert [a["documentVersionId"] for a in data["message"]["attachments"]] == [target.value]


def _attachment_in_own_dossier(world: World, who: Who, target: Target) -> bool:
    return target.dossier == _own_dossier(world, who)


def _assigned(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "assignStep")
    assert data["userErrors"] == [], body
    assert data["stepInstance"]["assignedTo"]["id"] == target.value


def _has_step(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "setProductSteps")
    assert data["userErrors"] == [], body
    assert [s["step"]["id"] for s in data["product"]["steps"]] == [target.value]


def _document_type_for(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "createDocumentType")
    assert data["userErrors"] == [], body
    assert data["documentType"]["requiredStep"]["id"] == target.value


def _attached_to(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "attachDocumentType")
    assert data["userErrors"] == [], body
    assert data["step"]["id"] == target.value, body
    assert data["documentType"]["id"] in [t["id"] for t in data["step"]["documentTypes"]], body


def _type_attached(world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "attachDocumentType")
    assert data["userErrors"] == [], body
    assert data["documentType"]["id"] == target.value, body
    assert data["step"]["id"] == world.first_step, body


def _detached_from(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "detachDocumentType")
    assert data["userErrors"] == [], body
    assert data["step"]["id"] == target.value, body
    assert data["documentType"]["id"] not in [t["id"] for t in data["step"]["documentTypes"]]


def _type_detached(world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "detachDocumentType")
    assert data["userErrors"] == [], body
    assert data["documentType"]["id"] == target.value, body
    assert target.value not in [t["id"] for t in data["step"]["documentTypes"]], body


def _archiving_case(mutation: str, kind: str, input_field: str, key: str) -> Case:
    """(Un)archiving one catalogue object (admins); the world is put back after each call."""
    return Case(
        f"Mutation.{mutation}",
        kind,
        ADMIN,
        restoring(
            by_id(
                f"mutation($id: ID!) {{ {mutation}(input: {{{input_field}: $id}}) "
                f"{{ {key} {{ id }} userErrors {{ code field message }} }} }}"
            )
        ),
        sees_all,
        not_found,
        returns_id(mutation, key),
    )


def _in_a_month() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).isoformat()


def _unique_code() -> str:
    return f"AUTHZ_{uuid.uuid4().hex[:10].upper()}"


CASES: list[Case] = [
    # --- queries -------------------------------------------------------------------------
    Case(
        "Query.dossier",
        "dossier",
        ANY_VIEWER,
        by_id("query($id: ID!) { dossier(id: $id) { id } }"),
        sees_dossier_scoped,
        not_found,
        returns_id("dossier"),
    ),
    Case(
        "Query.order",
        "order",
        ANY_VIEWER,
        by_id("query($id: ID!) { order(id: $id) { id } }"),
        sees_dossier_scoped,
        not_found,
        returns_id("order"),
    ),
    Case(
        "Query.product",
        "product",
        ANY_VIEWER,
        by_id("query($id: ID) { product(id: $id) { id } }"),
        sees_product,
        not_found,
        returns_id("product"),
    ),
    Case(
        "Query.documentTypes",
        "step",
        ANY_VIEWER,
        by_id("query($id: ID) { documentTypes(stepId: $id) { nodes { id requiredStep { id } } } }"),
        sees_all,
        empty("documentTypes"),
        _document_types_of,
        malformed_is_missing=False,
    ),
    Case(
        "Query.dossiers",
        "client",
        ANY_VIEWER,
        by_id("query($id: ID) { dossiers(filter: {clientId: $id}, first: 50) { nodes { id } } }"),
        sees_dossiers_of,
        empty("dossiers"),
        _expected_dossiers,
        malformed_is_missing=False,
        name="Query.dossiers(filter.clientId)",
    ),
    Case(
        "Query.orders",
        "client",
        ANY_VIEWER,
        by_id("query($id: ID) { orders(filter: {clientId: $id}, first: 50) { nodes { id } } }"),
        sees_client,
        empty("orders"),
        _expected_orders,
        malformed_is_missing=False,
        name="Query.orders(filter.clientId)",
    ),
    Case(
        "Query.events",
        "dossier",
        STAFF,
        by_id(
            'query($id: ID) { events(entityType: "dossier", entityId: $id, first: 100) '
            "{ nodes { entityType entityId } } }"
        ),
        sees_all,
        empty("events"),
        _events_of,
    ),
    Case(
        "Query.clientDeliveries",
        "client",
        STAFF,
        by_id(
            "query($id: ID!) { clientDeliveries(clientId: $id, first: 100) "
            "{ nodes { channel status recipientAddress } } }"
        ),
        sees_all,
        empty("clientDeliveries"),
        _deliveries_of,
    ),
    Case(
        "Query.accessLog",
        "client",
        ADMIN,
        by_id("query($id: ID) { accessLog(clientId: $id, first: 100) { nodes { clientId } } }"),
        sees_all,
        empty("accessLog"),
        _access_log_of("clientId"),
        name="Query.accessLog(clientId)",
    ),
    Case(
        "Query.accessLog",
        "document",
        ADMIN,
        by_id("query($id: ID) { accessLog(documentId: $id, first: 100) { nodes { documentId } } }"),
        sees_all,
        empty("accessLog"),
        _access_log_of("documentId"),
        name="Query.accessLog(documentId)",
    ),
    Case(
        "Query.accessLog",
        "dossier",
        ADMIN,
        by_id("query($id: ID) { accessLog(dossierId: $id, first: 100) { nodes { dossierId } } }"),
        sees_all,
        empty("accessLog"),
        _access_log_of("dossierId"),
        name="Query.accessLog(dossierId)",
    ),
    Case(
        "Query.documentDownloadUrl",
        "version",
        ANY_VIEWER,
        by_id("query($id: ID!) { documentDownloadUrl(versionId: $id) { url } }"),
        sees_dossier_scoped,
        not_found,
        _download,
    ),
    # --- mutations: the catalogue, agents and payment links (admins) ------------------------
    Case(
        "Mutation.updateAgent",
        "agent",
        ADMIN,
        by_id(
            "mutation($id: ID!) { updateAgent(input: {id: $id}) "
            "{ agent { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("updateAgent", "agent"),
    ),
    Case(
        "Mutation.revokePaymentLink",
        "payment_link",
        ADMIN,
        by_id(
            "mutation($id: ID!) { revokePaymentLink(input: {paymentLinkId: $id}) "
            "{ paymentLink { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        _link_answer("revokePaymentLink"),
    ),
    Case(
        "Mutation.resendPaymentLink",
        "payment_link",
        ADMIN,
        by_id(
            "mutation($id: ID!) { resendPaymentLink(input: {paymentLinkId: $id}) "
            "{ paymentLink { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        _link_answer("resendPaymentLink"),
    ),
    Case(
        "Mutation.updateProduct",
        "product",
        ADMIN,
        by_id(
            "mutation($id: ID!) { updateProduct(input: {id: $id}) "
            "{ product { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("updateProduct", "product"),
    ),
    Case(
        "Mutation.setProductSteps",
        "product",
        ADMIN,
        with_vars(
            "mutation($id: ID!, $step: ID!) { setProductSteps(input: {productId: $id, "
            "steps: [{stepId: $step}]}) { product { id } userErrors { code field message } } }",
            lambda world, _who, target: {"id": target.value, "step": world.first_step},
        ),
        sees_all,
        not_found,
        returns_id("setProductSteps", "product"),
        name="Mutation.setProductSteps(productId)",
    ),
    Case(
        "Mutation.setProductSteps",
        "step",
        ADMIN,
        with_vars(
            "mutation($product: ID!, $id: ID!) { setProductSteps(input: {productId: $product, "
            "steps: [{stepId: $id}]}) { product { id steps { step { id } } } "
            "userErrors { code field message } } }",
            lambda world, _who, target: {"product": world.main_product, "id": target.value},
        ),
        sees_all,
        user_error("setProductSteps", "UNKNOWN_STEP"),
        _has_step,
        name="Mutation.setProductSteps(steps.stepId)",
    ),
    Case(
        "Mutation.createDocumentType",
        "step",
        ADMIN,
        with_vars(
            "mutation($code: String!, $id: ID) { createDocumentType(input: {code: $code, "
            'label: "Scan", requiredStepId: $id, allowedExtensions: ["pdf"]}) '
            "{ documentType { requiredStep { id } } userErrors { code field message } } }",
            lambda _world, _who, target: {"code": _unique_code(), "id": target.value},
        ),
        sees_all,
        user_error("createDocumentType", "UNKNOWN_STEP"),
        _document_type_for,
    ),
    Case(
        "Mutation.updateDocumentType",
        "document_type",
        ADMIN,
        by_id(
            "mutation($id: ID!) { updateDocumentType(input: {id: $id}) "
            "{ documentType { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("updateDocumentType", "documentType"),
    ),
    Case(
        "Mutation.updateStep",
        "step",
        ADMIN,
        by_id(
            "mutation($id: ID!) { updateStep(input: {stepId: $id}) "
            "{ step { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("updateStep", "step"),
    ),
    _archiving_case("archiveProduct", "product", "productId", "product"),
    _archiving_case("unarchiveProduct", "product", "productId", "product"),
    _archiving_case("archiveStep", "step", "stepId", "step"),
    _archiving_case("unarchiveStep", "step", "stepId", "step"),
    _archiving_case("archiveDocumentType", "document_type", "documentTypeId", "documentType"),
    _archiving_case("unarchiveDocumentType", "document_type", "documentTypeId", "documentType"),
    Case(
        "Mutation.attachDocumentType",
        "step",
        ADMIN,
        restoring(
            with_vars(
                "mutation($id: ID!, $type: ID!) { attachDocumentType(input: {stepId: $id, "
                "documentTypeId: $type}) { step { id documentTypes { id } } documentType { id } "
                "userErrors { code field message } } }",
                lambda world, _who, target: {"id": target.value, "type": world.some_document_type},
            )
        ),
        sees_all,
        not_found,
        _attached_to,
        name="Mutation.attachDocumentType(stepId)",
    ),
    Case(
        "Mutation.attachDocumentType",
        "document_type",
        ADMIN,
        restoring(
            with_vars(
                "mutation($step: ID!, $id: ID!) { attachDocumentType(input: {stepId: $step, "
                "documentTypeId: $id}) { step { id } documentType { id } "
                "userErrors { code field message } } }",
                lambda world, _who, target: {"step": world.first_step, "id": target.value},
            )
        ),
        sees_all,
        not_found,
        _type_attached,
        name="Mutation.attachDocumentType(documentTypeId)",
    ),
    Case(
        "Mutation.detachDocumentType",
        "step",
        ADMIN,
        restoring(
            with_vars(
                "mutation($id: ID!, $type: ID!) { detachDocumentType(input: {stepId: $id, "
                "documentTypeId: $type}) { step { id documentTypes { id } } documentType { id } "
                "userErrors { code field message } } }",
                lambda world, _who, target: {"id": target.value, "type": world.some_document_type},
            )
        ),
        sees_all,
        not_found,
        _detached_from,
        name="Mutation.detachDocumentType(stepId)",
    ),
    Case(
        "Mutation.detachDocumentType",
        "document_type",
        ADMIN,
        restoring(
            with_vars(
                "mutation($step: ID!, $id: ID!) { detachDocumentType(input: {stepId: $step, "
                "documentTypeId: $id}) { step { id documentTypes { id } } documentType { id } "
                "userErrors { code field message } } }",
                lambda world, _who, target: {"step": world.first_step, "id": target.value},
            )
        ),
        sees_all,
        not_found,
        _type_detached,
        name="Mutation.detachDocumentType(documentTypeId)",
    ),
    Case(
        "Mutation.createPaymentLink",
        "product",
        ADMIN,
        by_id(
            "mutation($id: ID!) { createPaymentLink(input: {productId: $id, "
            'prospectEmail: "prospect@example.com", prospectName: "Pat"}) '
            "{ paymentLink { product { id } } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        _payment_link,
    ),
    Case(
        "Mutation.openDossier",
        "product",
        STAFF,
        with_vars(
            "mutation($id: ID!, $email: String!) { openDossier(input: {productId: $id, "
            'clientEmail: $email, clientName: "Pat", paymentMethod: CASH}) '
            "{ dossier { product { id } } userErrors { code field message } } }",
            lambda _world, _who, _target: {"id": _target.value, "email": _fresh_email()},
        ),
        sees_all,
        not_found,
        _opened_dossier,
    ),
    Case(
        "Mutation.refundOrder",
        "order",
        ADMIN,
        by_id(
            "mutation($id: ID!) { refundOrder(input: {orderId: $id, amount: 1, reason: OTHER}) "
            "{ order { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        no_top_level_error,  # this world's orders have nothing to refund: a userError
    ),
    # --- mutations: a client's own things ----------------------------------------------------
    Case(
        "Mutation.resumeCheckout",
        "order",
        ANY_VIEWER,
        by_id(
            "mutation($id: ID!) { resumeCheckout(input: {orderId: $id}) "
            "{ checkoutUrl userErrors { code field message } } }"
        ),
        sees_own,  # the order's client only: an agent's answer is the missing one
        not_found,
        no_top_level_error,
    ),
    Case(
        "Mutation.markNotificationsRead",
        "notification",
        ANY_VIEWER,
        by_id(
            "mutation($id: ID!) { markNotificationsRead(input: {ids: [$id]}) "
            "{ notifications { id } unreadCount userErrors { code field message } } }"
        ),
        sees_own,
        _ignored,
        _marked,
    ),
    Case(
        "Mutation.uploadDocument",
        "document",
        ANY_VIEWER,
        ask_upload,
        sees_dossier_scoped,
        not_found,
        no_top_level_error,
    ),
    Case(
        "Mutation.addDossierMember",
        "dossier",
        ANY_VIEWER,
        with_vars(
            "mutation($id: ID!, $email: String!) { addDossierMember(input: {dossierId: $id, "
            'email: $email, fullName: "Kim", role: "CHILD"}) '
            "{ member { id } userErrors { code field message } } }",
            lambda _world, _who, _target: {"id": _target.value, "email": _fresh_email()},
        ),
        sees_dossier_scoped,
        not_found,
        _member_answer("addDossierMember"),
    ),
    Case(
        "Mutation.removeDossierMember",
        "member",
        ANY_VIEWER,
        _ask_and_restore_member,
        sees_dossier_scoped,
        not_found,
        _member_answer("removeDossierMember"),
    ),
    Case(
        "Mutation.sendMessage",
        "dossier",
        ANY_VIEWER,
        by_id(
            'mutation($id: ID!) { sendMessage(input: {dossierId: $id, content: "hello"}) '
            "{ message { dossierId } userErrors { code field message } } }"
        ),
        sees_dossier_scoped,
        not_found,
        _message_in,
        name="Mutation.sendMessage(dossierId)",
    ),
    Case(
        "Mutation.sendMessage",
        "version",
        ANY_VIEWER,
        with_vars(
            "mutation($dossier: ID!, $id: ID!) { sendMessage(input: {dossierId: $dossier, "
            'content: "see attached", attachments: [$id]}) '
            "{ message { attachments { documentVersionId } } userErrors { code field message } } }",
            lambda world, who, target: {"dossier": _own_dossier(world, who), "id": target.value},
        ),
        _attachment_in_own_dossier,
        user_error("sendMessage", "INVALID_ATTACHMENT"),
        _attached,
        only_if=lambda world, who: _own_dossier(world, who) is not None,
        name="Mutation.sendMessage(attachments)",
    ),
    Case(
        "Mutation.markDossierMessagesRead",
        "dossier",
        ANY_VIEWER,
        by_id(
            "mutation($id: ID!) { markDossierMessagesRead(input: {dossierId: $id}) "
            "{ dossier { id } userErrors { code field message } } }"
        ),
        sees_dossier_scoped,
        not_found,
        returns_id("markDossierMessagesRead", "dossier"),
    ),
    # --- mutations: agents' work -------------------------------------------------------------
    Case(
        "Mutation.reviewDocument",
        "version",
        STAFF,
        by_id(
            "mutation($id: ID!) { reviewDocument(input: {versionId: $id, "
            'decision: CHANGES_REQUESTED, reason: "Blurry"}) '
            "{ userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        no_top_level_error,
    ),
    Case(
        "Mutation.changeDossierStatus",
        "dossier",
        STAFF,
        by_id(
            "mutation($id: ID!) { changeDossierStatus(input: {dossierId: $id, action: HOLD, "
            'reason: "Waiting"}) { dossier { id } userErrors { code field message } } }'
        ),
        sees_all,
        not_found,
        no_top_level_error,
    ),
    Case(
        "Mutation.completeStep",
        "step_instance",
        STAFF,
        by_id(
            "mutation($id: ID!) { completeStep(input: {stepInstanceId: $id}) "
            "{ stepInstance { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        no_top_level_error,
    ),
    Case(
        "Mutation.skipStep",
        "step_instance",
        STAFF,
        by_id(
            "mutation($id: ID!) { skipStep(input: {stepInstanceId: $id}) "
            "{ stepInstance { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        no_top_level_error,
    ),
    Case(
        "Mutation.moveStepDueDate",
        "step_instance",
        STAFF,
        with_vars(
            "mutation($id: ID!, $due: DateTime!) { moveStepDueDate(input: {stepInstanceId: $id, "
            'dueAt: $due, reason: "Holidays"}) { stepInstance { id } '
            "userErrors { code field message } } }",
            lambda _world, _who, target: {"id": target.value, "due": _in_a_month()},
        ),
        sees_all,
        not_found,
        no_top_level_error,
    ),
    Case(
        "Mutation.assignStep",
        "step_instance",
        STAFF,
        by_id(
            "mutation($id: ID!) { assignStep(input: {stepInstanceId: $id}) "
            "{ stepInstance { id assignedTo { id } } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("assignStep", "stepInstance"),
        name="Mutation.assignStep(stepInstanceId)",
    ),
    Case(
        "Mutation.assignStep",
        "agent",
        STAFF,
        with_vars(
            "mutation($step: ID!, $id: ID) { assignStep(input: {stepInstanceId: $step, "
            "agentId: $id}) { stepInstance { id assignedTo { id } } "
            "userErrors { code field message } } }",
            lambda world, _who, target: {"step": world.some_step_instance, "id": target.value},
        ),
        sees_all,
        user_error("assignStep", "UNKNOWN_AGENT"),
        _assigned,
        name="Mutation.assignStep(agentId)",
    ),
]

CASES += [
    # --- documents requested on the fly, waived, files shared (issue 18): agents only -----
    Case(
        "Mutation.requestDocument",
        "step_instance",
        STAFF,
        by_id(
            "mutation($id: ID!) { requestDocument(input: {stepInstanceId: $id, "
            'label: "Payslip", allowedExtensions: ["pdf"], maxFileSizeMb: 5}) '
            "{ document { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        no_top_level_error,  # a step no longer open answers with a userError
    ),
    Case(
        "Mutation.waiveDocument",
        "document",
        STAFF,
        # An empty reason: past the lookup it is refused (REQUIRED) and the world stays as
        # it is; what the policy hides is answered as missing before that.
        by_id(
            'mutation($id: ID!) { waiveDocument(input: {documentId: $id, reason: ""}) '
            "{ document { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        lambda _w, _who, _t, body: user_error("waiveDocument", "REQUIRED")(body),
    ),
    Case("Mutation.shareFile", "dossier", STAFF, ask_share, sees_all, not_found, _shared),
    # --- accounts (issue 15) -----------------------------------------------------------
    Case(
        "Mutation.revokeSession",
        "session",
        ANY_VIEWER,
        by_id("mutation($id: ID!) { revokeSession(id: $id) { ok userErrors { code } } }"),
        sees_own,
        not_found,
        lambda _w, _who, _t, body: _ok(body, "revokeSession"),
    ),
    Case(
        "Query.accountEvents",
        "account",
        ADMIN,
        by_id("query($id: ID!) { accountEvents(accountId: $id, first: 5) { nodes { id } } }"),
        sees_all,
        not_found,
        no_top_level_error,
    ),
    Case(
        "Mutation.resendInvitation",
        "account",
        STAFF,
        by_id(
            "mutation($id: ID!) { resendInvitation(input: {accountId: $id}) "
            "{ ok userErrors { code field message } } }"
        ),
        # agents re-invite clients, admins anyone; every account here has its password
        lambda _w, who, target: who.role == "admin" or target.owner is not None,
        not_found,
        lambda _w, _who, _t, body: user_error("resendInvitation", "ALREADY_ACCEPTED")(body),
    ),
]


CASES += [
    # --- documents that expire (issue 18) ------------------------------------------------
    Case(
        "Mutation.setDocumentExpiry",
        "version",
        STAFF,
        by_id(
            "mutation($id: ID!) { setDocumentExpiry(input: {versionId: $id, "
            'expiresOn: "2099-01-01"}) { version { id expiresOn } '
            "userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("setDocumentExpiry", "version"),
    ),
    Case(
        "Mutation.updateProduct",
        "product",
        ADMIN,
        with_vars(
            "mutation($product: ID!, $id: ID) { updateProduct(input: {id: $product, "
            "renewalProductId: $id}) { product { id renewalProduct { id } } "
            "userErrors { code field message } } }",
            lambda world, _who, target: {"product": world.main_product, "id": target.value},
        ),
        sees_all,
        user_error("updateProduct", "UNKNOWN_PRODUCT"),
        lambda _w, _who, target, body: _renews_with(body, target.value),
        name="Mutation.updateProduct(renewalProductId)",
    ),
]


# --- reports for admins (issue 19, item 4) ---------------------------------------------------

REPORT_RANGE = '{from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z"'


def _report_of(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    nodes = no_errors(body)["reports"]["funnel"]["nodes"]
    assert {n["productId"] for n in nodes} <= {target.value}, body


def _empty_report(body: dict[str, Any]) -> None:
    assert no_errors(body)["reports"]["funnel"]["nodes"] == [], body


CASES += [
    Case(
        "Query.reports",
        "product",
        ADMIN,
        by_id(
            f"query($id: ID!) {{ reports(filter: {REPORT_RANGE}, productIds: [$id]}}) "
            "{ funnel(first: 10) { nodes { productId sent } } } }"
        ),
        sees_all,
        _empty_report,
        _report_of,
        malformed_is_missing=False,
        name="Query.reports(filter.productIds)",
    ),
]

# Admins' root fields that take no id: refused to everyone else whatever they ask, as a
# role-refused id-taking field is (UNAUTHENTICATED without a token, FORBIDDEN otherwise).
ADMIN_ONLY_WITHOUT_ID = {
    "Query.reports": (
        f"{{ reports(filter: {REPORT_RANGE}}}) {{ funnel {{ totalCount }} "
        "revenue { totalCount } stepDurations { totalCount } dossierDurations { totalCount } "
        "reviewTurnaround { totalCount } } }"
    ),
    "Mutation.createCsvExport": (
        "mutation { createCsvExport(input: {kind: EVENTS, "
        'from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z"}) { url userErrors { code } } }'
    ),
    "Mutation.registerTrustedDocuments": (
        'mutation { registerTrustedDocuments(input: {documents: [{document: "{ __typename }"}]})'
        " { documents { sha256Hash } userErrors { code } } }"
    ),
}


async def test_admin_only_fields_without_an_id_refuse_everyone_else(authz_client):
    client, agent, admin = await make_client(), await make_agent(), await make_admin()
    for field_name, query in ADMIN_ONLY_WITHOUT_ID.items():
        refusals = set()
        for who, expected in (
            (Who("anon"), UNAUTHENTICATED),
            (Who("client", client), FORBIDDEN),
            (Who("agent", agent), FORBIDDEN),
        ):
            body = await post(authz_client, who, query, {})
            assert codes(body) == [expected], (field_name, who.role, body)
            assert body["data"] is None, (field_name, who.role, body)
            if expected == FORBIDDEN:
                refusals.add(json.dumps(body, sort_keys=True))
        assert len(refusals) == 1, (field_name, refusals)  # a client and an agent alike
        no_errors(await post(authz_client, Who("admin", admin), query, {}))


def _notes_answer(_world: World, who: Who, _target: Target, body: dict[str, Any]) -> None:
    """Staff read the dossier's notes; its client or member is refused (FORBIDDEN: the
    notes field is staff-only) and is given no note."""
    if who.role in STAFF:
        bodies = [n["body"] for n in payload(body, "dossier")["notes"]["nodes"]]
        assert NOTE_SECRET in bodies, body
    else:
        assert codes(body) == ["FORBIDDEN"], body
        assert body["data"] is None, body


def _note_edited(_world: World, who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "editDossierNote")
    if target.owner == who.id:
        assert data["userErrors"] == [], body
        assert data["note"]["id"] == target.value, body
    else:
        assert [e["code"] for e in data["userErrors"]] == ["NOT_AUTHOR"], body


def _note_deleted(_world: World, who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "deleteDossierNote")
    if target.owner == who.id or who.role == "admin":
        assert data["deletedNoteId"] == target.value, body
    else:
        assert [e["code"] for e in data["userErrors"]] == ["NOT_AUTHOR"], body


def _restoring_note(ask: Ask) -> Ask:
    """`ask`, then the note put back if it was deleted (the next callers find it)."""

    async def run(http: httpx.AsyncClient, world: World, who: Who, target: Target) -> dict:
        body = await ask(http, world, who, target)
        if target.value in world.notes and not await DossierNote.filter(id=target.value).exists():
            dossier_id, author_id, text = world.notes[target.value]
            await DossierNote.create(
                id=target.value, dossier_id=dossier_id, author_id=author_id, body=text
            )
        return body

    return run


def _owner_is(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    data = payload(body, "assignDossierOwner")
    assert data["userErrors"] == [], body
    assert data["dossier"]["owner"]["id"] == target.value, body


CASES += [
    # --- the agents' desk (issue 19): notes, tags, owners — staff only ------------------
    Case(
        "Query.dossier",
        "dossier",
        ANY_VIEWER,
        by_id("query($id: ID!) { dossier(id: $id) { id notes(first: 20) { nodes { body } } } }"),
        sees_dossier_scoped,
        not_found,
        _notes_answer,
        name="Query.dossier(notes)",
    ),
    Case(
        "Mutation.addDossierNote",
        "dossier",
        STAFF,
        by_id(
            'mutation($id: ID!) { addDossierNote(input: {dossierId: $id, body: "Called"}) '
            "{ note { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        lambda _w, _who, _t, body: _ok_payload(body, "addDossierNote", "note"),
    ),
    Case(
        "Mutation.editDossierNote",
        "note",
        STAFF,
        by_id(
            "mutation($id: ID!) { editDossierNote(input: {noteId: $id, pinned: true}) "
            "{ note { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        _note_edited,
    ),
    Case(
        "Mutation.deleteDossierNote",
        "note",
        STAFF,
        _restoring_note(
            by_id(
                "mutation($id: ID!) { deleteDossierNote(input: {noteId: $id}) "
                "{ deletedNoteId userErrors { code field message } } }"
            )
        ),
        sees_all,
        not_found,
        _note_deleted,
    ),
    Case(
        "Mutation.tagDossier",
        "dossier",
        STAFF,
        by_id(
            'mutation($id: ID!) { tagDossier(input: {dossierId: $id, tags: ["authz"]}) '
            "{ dossier { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("tagDossier", "dossier"),
    ),
    Case(
        "Mutation.untagDossier",
        "dossier",
        STAFF,
        by_id(
            'mutation($id: ID!) { untagDossier(input: {dossierId: $id, tags: ["authz"]}) '
            "{ dossier { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("untagDossier", "dossier"),
    ),
    Case(
        "Mutation.assignDossierOwner",
        "dossier",
        STAFF,
        by_id(
            "mutation($id: ID!) { assignDossierOwner(input: {dossierId: $id}) "
            "{ dossier { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        returns_id("assignDossierOwner", "dossier"),
        name="Mutation.assignDossierOwner(dossierId)",
    ),
    Case(
        "Mutation.assignDossierOwner",
        "agent",
        STAFF,
        with_vars(
            "mutation($dossier: ID!, $id: ID) { assignDossierOwner(input: {dossierId: $dossier, "
            "agentId: $id}) { dossier { id owner { id } } userErrors { code field message } } }",
            lambda world, _who, target: {
                "dossier": world.real("dossier")[0].value,
                "id": target.value,
            },
        ),
        sees_all,
        user_error("assignDossierOwner", "UNKNOWN_AGENT"),
        _owner_is,
        name="Mutation.assignDossierOwner(agentId)",
    ),
    Case(
        "Query.dossiers",
        "agent",
        STAFF,
        by_id("query($id: ID) { dossiers(filter: {ownerId: $id}, first: 50) { nodes { id } } }"),
        sees_all,
        empty("dossiers"),
        no_top_level_error,
        malformed_is_missing=False,
        name="Query.dossiers(filter.ownerId)",
    ),
]


def _ok_payload(body: dict[str, Any], name: str, key: str) -> None:
    data = payload(body, name)
    assert data["userErrors"] == [], body
    assert data[key] is not None, body


def _as_dossier(target: Target) -> Target:
    """A case-number target as the dossier id it stands for (what answers carry)."""
    return replace(target, value=target.dossier or target.value)


def _by_reference(case: Case) -> Case:
    """`case`, asked with the dossiers' case numbers instead of their ids."""
    return replace(
        case,
        kind="dossier_ref",
        ok=lambda world, who, target, body, ok=case.ok: ok(world, who, _as_dossier(target), body),
        name=f"{case} by reference",
    )


def _no_hits(body: dict[str, Any]) -> None:
    assert payload(body, "search")["edges"] == [], body


def _found_dossier(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    edges = payload(body, "search")["edges"]
    assert [e["node"]["dossier"]["id"] for e in edges] == [target.dossier], body


CASES += [_by_reference(case) for case in CASES if case.kind == "dossier"]
CASES.append(
    Case(
        "Query.search",
        "dossier_ref",
        STAFF,
        by_id(
            "query($id: String!) { search(query: $id) "
            "{ edges { node { score ... on DossierHit { dossier { id } } } } } }"
        ),
        sees_all,
        _no_hits,
        _found_dossier,
    )
)
# Root fields asked with something else than an ID (a case number in a search string).
STRING_KEYED = {"Query.search"}


def _renews_with(body: dict[str, Any], product_id: str) -> None:
    data = payload(body, "updateProduct")
    assert data["userErrors"] == [], body
    assert data["product"]["renewalProduct"]["id"] == product_id, body


def _ok(body: dict[str, Any], name: str) -> None:
    assert payload(body, name)["ok"] is True, body


def _export_asked(_world: World, _who: Who, _target: Target, body: dict[str, Any]) -> None:
    answer = payload(body, "requestDataExport")
    codes_ = [e["code"] for e in answer["userErrors"]]
    assert codes_ in ([], ["EXPORT_PENDING"]), body  # one pending export per client
    assert (answer["dataExport"] is not None) == (codes_ == []), body


CASES += [
    # --- the GDPR (issue 19): right of access and right to erasure -----------------------
    Case(
        "Mutation.requestDataExport",
        "erasable",
        ADMIN,
        by_id(
            "mutation($id: ID!) { requestDataExport(input: {profileId: $id}) "
            "{ dataExport { id } userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        _export_asked,
    ),
    Case(
        "Mutation.eraseClient",
        "erasable",
        ADMIN,
        # without a reason: a real client is refused (REQUIRED) and nothing is erased, so
        # the cases after this one still see the world as it was built
        by_id(
            'mutation($id: ID!) { eraseClient(input: {profileId: $id, reason: "", '
            "force: true}) { alreadyErased userErrors { code field message } } }"
        ),
        sees_all,
        not_found,
        lambda _w, _who, _t, body: user_error("eraseClient", "REQUIRED")(body),
    ),
]


def _opted_in(_world: World, _who: Who, target: Target, body: dict[str, Any]) -> None:
    """The world's clients have no phone: the opt-in is refused for that (NO_PHONE), never
    hidden; with one, the consent is the target's."""
    data = payload(body, "recordWhatsappOptIn")
    if data["userErrors"]:
        assert [e["code"] for e in data["userErrors"]] == ["NO_PHONE"], body
    else:
        assert data["consent"]["clientId"] == target.value, body


CASES += [
    # --- phone channels (issue 20): a client opts themselves in, an agent any client -----
    Case(
        "Mutation.recordWhatsappOptIn",
        "client",
        ANY_VIEWER,
        by_id(
            "mutation($id: ID) { recordWhatsappOptIn(input: {clientId: $id}) "
            "{ consent { clientId } userErrors { code field message } } }"
        ),
        sees_client,
        not_found,
        _opted_in,
    ),
]

SUBSCRIPTIONS = {
    "Subscription.messageAdded": (
        "subscription($id: ID!) { messageAdded(dossierId: $id) { cursor } }",
        topics.dossier_messages,
    ),
    "Subscription.documentReviewed": (
        "subscription($id: ID) { documentReviewed(dossierId: $id) { eventId } }",
        topics.dossier_reviews,
    ),
    "Subscription.dossierUpdated": (
        "subscription($id: ID) { dossierUpdated(dossierId: $id) { eventId } }",
        topics.dossier_updates,
    ),
}


def test_every_id_taking_field_has_a_policy():
    """A new root field taking an ID fails here until it has a case above."""
    covered = {case.field for case in CASES} | set(SUBSCRIPTIONS)
    assert covered - STRING_KEYED == id_taking_fields()


# --- the property ------------------------------------------------------------------------------


def expectation(case_roles: frozenset[str], sees: Any, malformed_is_missing: bool) -> Any:
    def expect(world: World, who: Who, target: Target) -> str:
        if who.role == "anon":
            return UNAUTHENTICATED
        if who.role not in case_roles:
            return FORBIDDEN
        if target.nature == "malformed" and not malformed_is_missing:
            return MALFORMED_REJECTED
        if target.nature == "real" and sees(world, who, target):
            return OK
        return HIDDEN

    return expect


def judge(
    label: str,
    answers: list[tuple[Target, str, dict[str, Any]]],
    hidden: Callable[[dict[str, Any]], None],
    ok: Callable[[Target, dict[str, Any]], None],
) -> None:
    """Each answer is what the policy says; answers that must not tell targets apart are
    identical, body for body."""
    alike: dict[str, set[str]] = {}
    for target, expected, body in answers:
        where = f"{label} on {target.nature} {target.value}"
        assert "INTERNAL_SERVER_ERROR" not in codes(body), (where, body)
        if expected in (UNAUTHENTICATED, FORBIDDEN):
            assert codes(body) == [expected], (where, body)
        elif expected == MALFORMED_REJECTED:
            assert codes(body) == ["NOT_FOUND"], (where, body)
        elif expected == HIDDEN:
            try:
                hidden(body)
            except AssertionError as error:
                raise AssertionError(f"{where}: not answered like a missing id") from error
        else:
            try:
                ok(target, body)
            except AssertionError as error:
                raise AssertionError(f"{where}: refused or wrong") from error
        if expected != OK:
            alike.setdefault(expected, set()).add(json.dumps(body, sort_keys=True))
    for expected, bodies in alike.items():
        assert len(bodies) == 1, f"{label}: {expected} answers differ by target: {bodies}"


def pick(
    targets: list[Target], expect: Callable[[Target], str], rnd: random.Random
) -> list[Target]:
    """One target of each kind of answer (a visible object, an invisible one, a missing, a
    malformed and an alien id), drawn by hypothesis; refusals first, then the allowed calls
    (which may change what later calls see). A role refused whatever the id gets a real
    object and a missing id: its two answers must be the same."""
    groups: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        groups.setdefault((target.nature, expect(target)), []).append(target)
    chosen = [rnd.choice(group) for _, group in sorted(groups.items())]
    if any(expect(t) in (UNAUTHENTICATED, FORBIDDEN) for t in chosen):
        chosen = [t for t in chosen if t.nature in ("real", "missing")][:2] or chosen
    return sorted(chosen, key=lambda t: expect(t) == OK)


@pytest.fixture(scope="module")
def authz_app(database_url):
    """The app, with a rate limit no property run reaches (rate limiting is tested in
    tests/test_abuse.py; here it would only make answers depend on what ran before)."""
    from app.main import create_app

    return create_app(settings_with(rate_limit_points=1_000_000_000), manage_db=False)


@pytest.fixture
async def authz_client(authz_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=authz_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    spec=specs(),
    rnd=st.randoms(use_true_random=False),
    cases=st.frozensets(st.integers(0, len(CASES) - 1), min_size=8, max_size=10),
)
@example(spec=RICH, rnd=random.Random(0), cases=frozenset(range(len(CASES))))
async def test_queries_and_mutations_answer_as_the_policy_says(
    authz_client, authz_app, spec, rnd, cases
):
    """Every case in one rich world (the explicit example, so each case runs every time),
    then random worlds, each asked a random third of the cases."""
    world = await build_world(spec, authz_app.state.storage)
    for index, case in enumerate(CASES):
        if index not in cases:
            continue
        expect = expectation(case.roles, case.sees, case.malformed_is_missing)
        for who in world.viewers:
            if not case.only_if(world, who):
                continue
            answers = []
            for target in pick(
                world.targets[case.kind],
                lambda t, who=who, expect=expect: expect(world, who, t),
                rnd,
            ):
                body = await case.ask(authz_client, world, who, target)
                if who.role == "client":  # a client or member: never an internal note
                    assert NOTE_SECRET not in json.dumps(body), (str(case), body)
                answers.append((target, expect(world, who, target), body))
            judge(
                f"{case} as {who}",
                answers,
                case.hidden,
                lambda target, body, who=who, case=case: case.ok(world, who, target, body),
            )


# --- subscriptions ------------------------------------------------------------------------------


async def _subscription_answer(ws: Any, op_id: str, query: str, target: Target) -> dict:
    """Everything the server says about one subscription that does not start."""
    await ws.send(
        json.dumps(
            {
                "id": op_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": {"id": target.value}},
            }
        )
    )
    said = []
    while True:
        message = json.loads(await ws.recv())
        if message.get("id") != op_id:
            continue  # a late word about an earlier, completed subscription
        said.append({k: v for k, v in message.items() if k != "id"})
        if message["type"] in ("complete", "error"):
            return {"messages": said}


async def _starts(ws: Any, hub: Any, op_id: str, query: str, channel: str, target: Target) -> None:
    before = hub.subscriber_count(channel)
    message = {"query": query, "variables": {"id": target.value}}
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": message}))
    await wait_until(lambda: hub.subscriber_count(channel) == before + 1, what=f"{op_id} live")
    await ws.send(json.dumps({"id": op_id, "type": "complete"}))
    await wait_until(lambda: hub.subscriber_count(channel) == before, what=f"{op_id} ended")


@settings(
    max_examples=WS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=specs())
async def test_subscriptions_answer_as_the_policy_says(live_server, app, spec):
    """Subscriptions are authorised when they start: the allowed ones go live (the hub has
    the subscriber), the others end at once with the answer a missing dossier gets. Without
    a token the socket never opens (tests/test_ws.py)."""
    from websockets.asyncio.client import connect

    world = await build_world(spec, app.state.storage)
    hub = app.state.hub
    expect = expectation(ANY_VIEWER, sees_dossier_scoped, True)
    for who in world.viewers:
        if who.role == "anon":
            continue
        async with connect(live_server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {who.token}"}}
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
            for n, (name, (query, channel_of)) in enumerate(SUBSCRIPTIONS.items()):
                answers = []
                # by id and by case number: hidden ones all answered alike
                targets = [*world.targets["dossier"], *world.targets["dossier_ref"]]
                for m, target in enumerate(targets):
                    op_id = f"{n}.{m}"
                    expected = expect(world, who, target)
                    if expected == OK:
                        channel = channel_of(_as_dossier(target).value)
                        await _starts(ws, hub, op_id, query, channel, target)
                        answers.append((target, expected, {}))
                    else:
                        body = await _subscription_answer(ws, op_id, query, target)
                        assert NOTE_SECRET not in json.dumps(body), body
                        answers.append((target, expected, body))
                judge(f"{name} as {who}", answers, _subscription_not_found, lambda _t, _b: None)
            if who.role == "client":
                await _no_note_reaches(ws, hub, world, who)


LIVE_FEEDS = (
    "subscription { notificationAdded { title message templateCode } }",
    "subscription { dossierUpdated { eventType reason } }",
)


async def _no_note_reaches(ws: Any, hub: Any, world: World, who: Who) -> None:
    """A client live on their notifications and dossier updates while staff write a note on
    every dossier of the world: nothing that reaches them carries its text."""
    channels = (topics.notifications("profile", who.id), topics.client_updates(who.id))
    before = [hub.subscriber_count(c) for c in channels]
    for n, query in enumerate(LIVE_FEEDS):
        await ws.send(
            json.dumps({"id": f"live.{n}", "type": "subscribe", "payload": {"query": query}})
        )
    await wait_until(
        lambda: all(hub.subscriber_count(c) > b for c, b in zip(channels, before, strict=True)),
        what="live feeds",
    )
    staff = await viewer_from_token(world.staff[0].token)
    async with outbox.collecting():
        for target in world.real("dossier"):
            await desk_notes.add_note(staff, uuid.UUID(target.value), NOTE_SECRET)
            await desk_tags.tag_dossier(staff, uuid.UUID(target.value), ["live-tag"])
            await desk_owners.assign_owner(staff, uuid.UUID(target.value), world.staff[-1].obj.id)
    own = world.dossiers_of.get(who.id or "")
    if own:  # a marker the client does hear: their dossier put on hold, after the notes
        async with outbox.collecting():
            await change_status(staff, uuid.UUID(own[0]), StatusAction.HOLD, "Waiting")
    heard = []
    while True:
        try:
            heard.append(await asyncio.wait_for(ws.recv(), 1.0))
        except TimeoutError:
            break
    assert not any(NOTE_SECRET in message for message in heard), heard
    assert not any("dossier_note_added" in message for message in heard), heard
    if own:
        assert any("DOSSIER_STATUS_CHANGED" in message for message in heard), heard
    for n in range(len(LIVE_FEEDS)):
        await ws.send(json.dumps({"id": f"live.{n}", "type": "complete"}))


def _subscription_not_found(body: dict[str, Any]) -> None:
    first = body["messages"][0]
    assert first["type"] == "next", body
    errors = first["payload"]["errors"]
    assert [(e.get("extensions") or {}).get("code") for e in errors] == ["NOT_FOUND"], body
