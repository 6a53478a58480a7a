"""A catalogue you can maintain (issue 17, item 5): updateStep; products, steps and document
types archived instead of deleted (out of the lists, never newly used, running dossiers
unaffected); a document type asked for by the steps of several products
(step_document_types, attachDocumentType / detachDocumentType), filled from
`required_step_id` by migration 0014."""

from __future__ import annotations

import asyncio
import importlib
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from app.models import DocumentType, Event, Order, Product, ProductStep, Step, StepDocumentType
from app.models.enums import EventType, OrderStatus
from app.services.catalog import product_on_sale
from app.services.workflow.steps import open_dossier
from tests.factories import Account, make_admin, make_agent, make_client, make_product
from tests.helpers import error_codes, gql
from tests.test_catalog import SET_PRODUCT_STEPS, UPDATE_DOCUMENT_TYPE, errors_of, snapshot

ROOT = Path(__file__).resolve().parent.parent

UPDATE_STEP = """
mutation UpdateStep($input: UpdateStepInput!) {
  updateStep(input: $input) {
    step { id code label description position archivedAt }
    userErrors { field message code }
  }
}
"""


def _archiving(mutation: str, input_field: str, payload_field: str) -> str:
    return f"""
mutation($id: ID!) {{
  {mutation}(input: {{{input_field}: $id}}) {{
    {payload_field} {{ id archivedAt }}
    userErrors {{ field message code }}
  }}
}}
"""


ARCHIVE_PRODUCT = _archiving("archiveProduct", "productId", "product")
UNARCHIVE_PRODUCT = _archiving("unarchiveProduct", "productId", "product")
ARCHIVE_STEP = _archiving("archiveStep", "stepId", "step")
UNARCHIVE_STEP = _archiving("unarchiveStep", "stepId", "step")
ARCHIVE_DOCUMENT_TYPE = _archiving("archiveDocumentType", "documentTypeId", "documentType")
UNARCHIVE_DOCUMENT_TYPE = _archiving("unarchiveDocumentType", "documentTypeId", "documentType")

ATTACH = """
mutation Attach($input: AttachDocumentTypeInput!) {
  attachDocumentType(input: $input) {
    step { id documentTypes { id code } }
    documentType { id requiredStep { id } }
    userErrors { field message code }
  }
}
"""

DETACH = """
mutation Detach($input: DetachDocumentTypeInput!) {
  detachDocumentType(input: $input) {
    step { id documentTypes { id code } }
    documentType { id requiredStep { id } }
    userErrors { field message code }
  }
}
"""

CREATE_DOCUMENT_TYPE = """
mutation CreateDocumentType($input: CreateDocumentTypeInput!) {
  createDocumentType(input: $input) {
    documentType { id requiredStep { id } }
    userErrors { field message code }
  }
}
"""

PRODUCTS = """
query Products($includeArchived: Boolean! = false) {
  products(first: 100, includeArchived: $includeArchived) {
    totalCount nodes { id archivedAt }
  }
}
"""

PRODUCT = """
query Product($id: ID!) {
  product(id: $id) {
    id archivedAt
    steps { position step { id archivedAt documentTypes { id code } } }
  }
}
"""

STEPS = """
query Steps($includeArchived: Boolean! = false) {
  steps(first: 100, includeArchived: $includeArchived) {
    totalCount nodes { id archivedAt documentTypes { id } }
  }
}
"""

DOCUMENT_TYPES = """
query DocumentTypes($stepId: ID, $includeArchived: Boolean! = false) {
  documentTypes(first: 100, stepId: $stepId, includeArchived: $includeArchived) {
    totalCount nodes { id archivedAt }
  }
}
"""

DOSSIER = """
query Dossier($id: ID!) {
  dossier(id: $id) {
    id status
    product { id archivedAt }
    currentStep { id position }
    progress { documentsTotal }
    steps {
      id position startedAt completedAt
      step { id label }
      documents { id status documentType { id code } }
    }
  }
}
"""

SKIP_STEP = """
mutation Skip($id: ID!) {
  skipStep(input: {stepInstanceId: $id}) { stepInstance { id } userErrors { code field } }
}
"""


# --- helpers -----------------------------------------------------------------------------


async def steps_of(product: Product) -> list[uuid.UUID]:
    rows = await ProductStep.filter(product_id=product.id).order_by("position")
    return [row.step_id for row in rows]


async def types_of(step_id: uuid.UUID) -> list[uuid.UUID]:
    links = await StepDocumentType.filter(step_id=step_id).order_by("position", "id")
    return [link.document_type_id for link in links]


async def optional_product(documents: tuple[tuple[str, ...], ...]) -> Product:
    """`make_product`, every step optional (an agent skips them to move a dossier on)."""
    product = await make_product(documents)
    await ProductStep.filter(product_id=product.id).update(is_required=False)
    return product


async def open_for(client: Account, product: Product) -> str:
    order = await Order.create(
        user_id=client.obj.id,
        product_id=product.id,
        amount=product.price_amount,
        currency=product.currency,
        status=OrderStatus.PAID,
        paid_at=datetime.now(UTC),
    )
    return str((await open_dossier(order)).id)


async def view(http, token: str, dossier_id: str) -> dict[str, Any]:
    return (await gql(http, DOSSIER, {"id": dossier_id}, token=token))["dossier"]


def documents_by_step(dossier: dict[str, Any]) -> list[list[str]]:
    return [[d["documentType"]["id"] for d in s["documents"]] for s in dossier["steps"]]


async def skip_current(http, agent: Account, dossier: dict[str, Any]) -> None:
    data = await gql(http, SKIP_STEP, {"id": dossier["currentStep"]["id"]}, token=agent.token)
    assert data["skipStep"]["userErrors"] == []


async def attach(http, token: str, step_id: Any, document_type_id: Any, **extra: Any) -> dict:
    variables = {
        "input": {"stepId": str(step_id), "documentTypeId": str(document_type_id), **extra}
    }
    return (await gql(http, ATTACH, variables, token=token))["attachDocumentType"]


async def detach(http, token: str, step_id: Any, document_type_id: Any) -> dict:
    variables = {"input": {"stepId": str(step_id), "documentTypeId": str(document_type_id)}}
    return (await gql(http, DETACH, variables, token=token))["detachDocumentType"]


async def archive(http, token: str, document: str, entity_id: Any) -> dict:
    data = await gql(http, document, {"id": str(entity_id)}, token=token)
    return next(iter(data.values()))


async def world() -> dict[str, str]:
    """A product of two steps (a PDF, then a PNG), a spare step, a spare document type,
    an archived step, product and document type."""
    product = await make_product((("pdf",), ("png",)))
    step1, step2 = await steps_of(product)
    spare_step = await Step.create(code=f"SPARE{uuid.uuid4().hex[:6]}", label="Spare")
    spare_type = await DocumentType.create(
        code=f"SPAREDOC{uuid.uuid4().hex[:6]}", label="Spare", allowed_extensions=["pdf"]
    )
    now = datetime.now(UTC)
    old_step = await Step.create(code=f"OLD{uuid.uuid4().hex[:6]}", label="Old", archived_at=now)
    old_product = await make_product(((),))
    old_product.archived_at = now
    await old_product.save()
    old_type = await DocumentType.create(
        code=f"OLDDOC{uuid.uuid4().hex[:6]}", label="Old", allowed_extensions=["pdf"]
    )
    old_type.archived_at = now
    await old_type.save()
    return {
        "product": str(product.id),
        "step1": str(step1),
        "step2": str(step2),
        "type1": str((await types_of(step1))[0]),
        "spare_step": str(spare_step.id),
        "spare_type": str(spare_type.id),
        "old_step": str(old_step.id),
        "old_product": str(old_product.id),
        "old_type": str(old_type.id),
    }


# --- every new mutation: admins only, and one event when it changes something -------------

MUTATIONS: dict[str, tuple[str, Callable[[dict[str, str]], dict[str, Any]]]] = {
    "updateStep": (
        UPDATE_STEP,
        lambda ids: {"input": {"stepId": ids["step1"], "label": "Renamed", "position": 3}},
    ),
    "archiveProduct": (ARCHIVE_PRODUCT, lambda ids: {"id": ids["product"]}),
    "unarchiveProduct": (UNARCHIVE_PRODUCT, lambda ids: {"id": ids["old_product"]}),
    "archiveStep": (ARCHIVE_STEP, lambda ids: {"id": ids["spare_step"]}),
    "unarchiveStep": (UNARCHIVE_STEP, lambda ids: {"id": ids["old_step"]}),
    "archiveDocumentType": (ARCHIVE_DOCUMENT_TYPE, lambda ids: {"id": ids["type1"]}),
    "unarchiveDocumentType": (UNARCHIVE_DOCUMENT_TYPE, lambda ids: {"id": ids["old_type"]}),
    "attachDocumentType": (
        ATTACH,
        lambda ids: {"input": {"stepId": ids["step2"], "documentTypeId": ids["spare_type"]}},
    ),
    "detachDocumentType": (
        DETACH,
        lambda ids: {"input": {"stepId": ids["step1"], "documentTypeId": ids["type1"]}},
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize(
    ("actor", "code"),
    [("agent", "FORBIDDEN"), ("client", "FORBIDDEN"), ("anonymous", "UNAUTHENTICATED")],
)
async def test_new_catalogue_mutations_are_refused_to_all_but_admins(client, mutation, actor, code):
    ids = await world()
    token = None
    if actor == "agent":
        token = (await make_agent()).token
    elif actor == "client":
        token = (await make_client()).token
    document, variables = MUTATIONS[mutation]
    before = await snapshot()
    body = await gql(client, document, variables(ids), token=token, expect_errors=True)
    assert error_codes(body) == [code]
    assert body["data"] is None
    assert await snapshot() == before


@pytest.mark.parametrize("mutation", list(MUTATIONS))
async def test_new_catalogue_mutations_record_one_event_and_repeat_as_a_no_op(client, mutation):
    ids = await world()
    admin = await make_admin()
    document, variables = MUTATIONS[mutation]
    before = await snapshot()
    data = await gql(client, document, variables(ids), token=admin.token)
    assert data[mutation]["userErrors"] == []
    after = await snapshot()
    assert after != before
    assert len(after["Event"]) == len(before["Event"]) + 1
    # the same call again changes nothing and records nothing
    data = await gql(client, document, variables(ids), token=admin.token)
    assert data[mutation]["userErrors"] == []
    assert await snapshot() == after


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (UPDATE_STEP, {"input": {"stepId": "{id}", "label": "X"}}),
        (ARCHIVE_PRODUCT, {"id": "{id}"}),
        (UNARCHIVE_STEP, {"id": "{id}"}),
        (ARCHIVE_DOCUMENT_TYPE, {"id": "{id}"}),
        (ATTACH, {"input": {"stepId": "{id}", "documentTypeId": "{type}"}}),
        (DETACH, {"input": {"stepId": "{step}", "documentTypeId": "{id}"}}),
    ],
)
@pytest.mark.parametrize("missing", ["garbage", "uuid"])
async def test_an_unknown_id_is_not_found(client, document, variables, missing):
    ids = await world()
    admin = await make_admin()
    missing_id = "garbage" if missing == "garbage" else str(uuid.uuid4())

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.format(id=missing_id, type=ids["spare_type"], step=ids["step1"])

    before = await snapshot()
    body = await gql(client, document, fill(variables), token=admin.token, expect_errors=True)
    assert error_codes(body) == ["NOT_FOUND"]
    assert await snapshot() == before


# --- updateStep ----------------------------------------------------------------------------


async def test_admin_updates_a_step_and_everyone_sees_it(client):
    ids = await world()
    admin = await make_admin()
    reader = await make_client()
    dossier_id = await open_for(reader, await Product.get(id=ids["product"]))
    data = await gql(
        client,
        UPDATE_STEP,
        {
            "input": {
                "stepId": ids["step1"],
                "label": "  Identity   check ",
                "description": "Passport\nor ID card",
                "position": 7,
            }
        },
        token=admin.token,
    )
    step = data["updateStep"]["step"]
    assert data["updateStep"]["userErrors"] == []
    assert (step["label"], step["description"], step["position"]) == (
        "Identity check",
        "Passport\nor ID card",
        7,
    )
    event = await Event.get(entity_id=ids["step1"], event_type=EventType.STEP_UPDATED)
    assert event.payload["label"] == "Identity check"

    # absent fields stay, a null description clears
    data = await gql(
        client,
        UPDATE_STEP,
        {"input": {"stepId": ids["step1"], "description": None}},
        token=admin.token,
    )
    step = data["updateStep"]["step"]
    assert (step["label"], step["description"], step["position"]) == ("Identity check", None, 7)

    # the product and the running dossier show the step as it is now
    product = (await gql(client, PRODUCT, {"id": ids["product"]}, token=reader.token))["product"]
    assert product["steps"][0]["step"]["id"] == ids["step1"]
    dossier = await view(client, reader.token, dossier_id)
    assert dossier["steps"][0]["step"]["label"] == "Identity check"


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"label": "  "}, "REQUIRED", ["label"]),
        ({"label": "bad\u202elabel"}, "INVALID_TEXT", ["label"]),
        ({"label": "two\nlines"}, "INVALID_TEXT", ["label"]),
        ({"label": "x" * 300}, "TOO_LONG", ["label"]),
        ({"description": "x" * 5001}, "TOO_LONG", ["description"]),
        ({"position": -1}, "INVALID_POSITION", ["position"]),
        ({"position": 10_001}, "INVALID_POSITION", ["position"]),
    ],
)
async def test_update_step_validation_writes_nothing(client, override, code, field):
    ids = await world()
    admin = await make_admin()
    before = await snapshot()
    data = await gql(
        client,
        UPDATE_STEP,
        {"input": {"stepId": ids["step1"], "description": "would change", **override}},
        token=admin.token,
    )
    payload = data["updateStep"]
    assert payload["step"] is None
    assert errors_of(payload) == [(code, field)]
    assert await snapshot() == before


# --- archived: out of the lists, back when unarchived ----------------------------------------


async def test_archiving_hides_from_the_lists_and_unarchiving_brings_back(client):
    product = await make_product((("pdf", "png"), ("jpg",)))
    step1, step2 = await steps_of(product)
    kept_type, archived_type = await types_of(step1)
    admin, agent, reader = await make_admin(), await make_agent(), await make_client()

    for document, entity_id in (
        (ARCHIVE_PRODUCT, product.id),
        (ARCHIVE_STEP, step2),
        (ARCHIVE_DOCUMENT_TYPE, archived_type),
    ):
        payload = await archive(client, admin.token, document, entity_id)
        assert payload["userErrors"] == []
        assert next(v for k, v in payload.items() if k != "userErrors")["archivedAt"]

    async def listed(document: str, token: str, **variables: Any) -> list[str]:
        data = await gql(client, document, variables, token=token)
        return [n["id"] for n in next(iter(data.values()))["nodes"]]

    for token in (reader.token, agent.token):
        assert await listed(PRODUCTS, token) == []
        assert str(step2) not in await listed(STEPS, token)
        assert await listed(DOCUMENT_TYPES, token, stepId=str(step1)) == [str(kept_type)]
    # agents and admins see archived ones when they ask; clients never do
    for token in (agent.token, admin.token):
        assert await listed(PRODUCTS, token, includeArchived=True) == [str(product.id)]
        assert str(step2) in await listed(STEPS, token, includeArchived=True)
        assert sorted(
            await listed(DOCUMENT_TYPES, token, stepId=str(step1), includeArchived=True)
        ) == sorted([str(kept_type), str(archived_type)])
    assert await listed(PRODUCTS, reader.token, includeArchived=True) == []
    assert str(step2) not in await listed(STEPS, reader.token, includeArchived=True)
    assert await listed(DOCUMENT_TYPES, reader.token, stepId=str(step1), includeArchived=True) == [
        str(kept_type)
    ]

    # an archived product is not found by a client, an agent reads it with archivedAt; its
    # workflow is what a new dossier would run (no archived step, no archived type)
    body = await gql(
        client, PRODUCT, {"id": str(product.id)}, token=reader.token, expect_errors=True
    )
    assert error_codes(body) == ["NOT_FOUND"]
    read = (await gql(client, PRODUCT, {"id": str(product.id)}, token=agent.token))["product"]
    assert read["archivedAt"] is not None
    assert [s["step"]["id"] for s in read["steps"]] == [str(step1)]
    assert [t["id"] for t in read["steps"][0]["step"]["documentTypes"]] == [str(kept_type)]

    for document, entity_id in (
        (UNARCHIVE_PRODUCT, product.id),
        (UNARCHIVE_STEP, step2),
        (UNARCHIVE_DOCUMENT_TYPE, archived_type),
    ):
        payload = await archive(client, admin.token, document, entity_id)
        assert payload["userErrors"] == []
        assert next(v for k, v in payload.items() if k != "userErrors")["archivedAt"] is None

    assert await listed(PRODUCTS, reader.token) == [str(product.id)]
    assert str(step2) in await listed(STEPS, reader.token)
    assert sorted(await listed(DOCUMENT_TYPES, reader.token, stepId=str(step1))) == sorted(
        [str(kept_type), str(archived_type)]
    )
    read = (await gql(client, PRODUCT, {"id": str(product.id)}, token=reader.token))["product"]
    assert [s["step"]["id"] for s in read["steps"]] == [str(step1), str(step2)]
    assert len(read["steps"][0]["step"]["documentTypes"]) == 2
    kinds = [
        e.event_type
        for e in await Event.filter(entity_type__in=["product", "step", "document_type"]).order_by(
            "created_at"
        )
    ]
    assert kinds == [
        EventType.PRODUCT_ARCHIVED,
        EventType.STEP_ARCHIVED,
        EventType.DOCUMENT_TYPE_ARCHIVED,
        EventType.PRODUCT_UNARCHIVED,
        EventType.STEP_UNARCHIVED,
        EventType.DOCUMENT_TYPE_UNARCHIVED,
    ]


# --- archived: never newly used --------------------------------------------------------------


async def test_an_archived_step_cannot_join_a_workflow(client):
    ids = await world()
    admin = await make_admin()
    before = await snapshot()
    payload = (
        await gql(
            client,
            SET_PRODUCT_STEPS,
            {
                "input": {
                    "productId": ids["product"],
                    "steps": [{"stepId": ids["step1"]}, {"stepId": ids["old_step"]}],
                }
            },
            token=admin.token,
        )
    )["setProductSteps"]
    assert payload["product"] is None
    assert errors_of(payload) == [("STEP_ARCHIVED", ["steps", "1", "stepId"])]
    assert await snapshot() == before


async def test_an_archived_product_gets_no_new_workflow_until_unarchived(client):
    ids = await world()
    admin = await make_admin()
    variables = {"input": {"productId": ids["old_product"], "steps": [{"stepId": ids["step1"]}]}}
    before = await snapshot()
    payload = (await gql(client, SET_PRODUCT_STEPS, variables, token=admin.token))[
        "setProductSteps"
    ]
    assert errors_of(payload) == [("PRODUCT_ARCHIVED", ["productId"])]
    assert await snapshot() == before
    await archive(client, admin.token, UNARCHIVE_PRODUCT, ids["old_product"])
    payload = (await gql(client, SET_PRODUCT_STEPS, variables, token=admin.token))[
        "setProductSteps"
    ]
    assert payload["userErrors"] == []


async def test_product_on_sale_says_no_for_an_archived_or_inactive_product():
    product = await make_product(((),))
    assert product_on_sale(product)
    product.archived_at = datetime.now(UTC)
    assert not product_on_sale(product)
    product.archived_at = None
    product.active = False
    assert not product_on_sale(product)


async def test_archived_steps_and_document_types_take_no_new_link(client):
    ids = await world()
    admin = await make_admin()
    before = await snapshot()
    cases = [
        (
            ATTACH,
            {"input": {"stepId": ids["old_step"], "documentTypeId": ids["spare_type"]}},
            ("STEP_ARCHIVED", ["stepId"]),
        ),
        (
            ATTACH,
            {"input": {"stepId": ids["spare_step"], "documentTypeId": ids["old_type"]}},
            ("DOCUMENT_TYPE_ARCHIVED", ["documentTypeId"]),
        ),
        (
            CREATE_DOCUMENT_TYPE,
            {
                "input": {
                    "code": "NEWDOC",
                    "label": "New",
                    "allowedExtensions": ["pdf"],
                    "requiredStepId": ids["old_step"],
                }
            },
            ("STEP_ARCHIVED", ["requiredStepId"]),
        ),
        (
            UPDATE_DOCUMENT_TYPE,
            {"input": {"id": ids["type1"], "requiredStepId": ids["old_step"]}},
            ("STEP_ARCHIVED", ["requiredStepId"]),
        ),
        (
            UPDATE_DOCUMENT_TYPE,
            {"input": {"id": ids["old_type"], "requiredStepId": ids["spare_step"]}},
            ("DOCUMENT_TYPE_ARCHIVED", ["requiredStepId"]),
        ),
    ]
    for document, variables, expected in cases:
        payload = next(iter((await gql(client, document, variables, token=admin.token)).values()))
        assert errors_of(payload) == [expected], variables
    assert await snapshot() == before


# --- running dossiers are unaffected -----------------------------------------------------------


async def test_a_running_dossier_is_unaffected_by_archiving_its_product_step_and_type(client):
    product = await optional_product((("pdf",), ("png",), ("jpg",)))
    step1, step2, step3 = await steps_of(product)
    (type1,), (type2,), (type3,) = [await types_of(s) for s in (step1, step2, step3)]
    admin, agent, owner = await make_admin(), await make_agent(), await make_client()
    running = await open_for(owner, product)
    before = await view(client, owner.token, running)
    assert documents_by_step(before) == [[str(type1)], [], []]
    assert before["progress"]["documentsTotal"] == 3

    for document, entity_id in (
        (ARCHIVE_DOCUMENT_TYPE, type1),
        (ARCHIVE_DOCUMENT_TYPE, type2),
        (ARCHIVE_STEP, step3),
        (ARCHIVE_PRODUCT, product.id),
    ):
        assert (await archive(client, admin.token, document, entity_id))["userErrors"] == []

    # the running dossier: the same steps, documents and count of documents to come
    after = await view(client, owner.token, running)
    assert after["product"]["id"] == str(product.id)
    assert [s["id"] for s in after["steps"]] == [s["id"] for s in before["steps"]]
    assert [s["documents"] for s in after["steps"]] == [s["documents"] for s in before["steps"]]
    assert after["progress"]["documentsTotal"] == 3
    # its later steps still ask for the types it opened with, archived since
    await skip_current(client, agent, after)
    moved = await view(client, owner.token, running)
    assert moved["currentStep"]["position"] == 2
    assert documents_by_step(moved)[1] == [str(type2)]
    await skip_current(client, agent, moved)
    moved = await view(client, owner.token, running)
    assert moved["currentStep"]["position"] == 3  # the archived step runs here
    assert documents_by_step(moved)[2] == [str(type3)]

    # a dossier opened now (an order paid before the archiving, say) runs neither the
    # archived step nor asks for the archived types
    late = await view(client, owner.token, await open_for(owner, product))
    assert [s["step"]["id"] for s in late["steps"]] == [str(step1), str(step2)]
    assert documents_by_step(late) == [[], []]
    assert late["progress"]["documentsTotal"] == 0


# --- one document type, the steps of several products ------------------------------------------


async def test_a_document_type_attached_to_steps_of_two_products_is_asked_in_both(client):
    first = await optional_product(((), ("pdf",)))
    second = await optional_product((("png",),))
    first_steps, (second_step,) = await steps_of(first), await steps_of(second)
    (png_type,) = await types_of(second_step)
    admin, agent, owner = await make_admin(), await make_agent(), await make_client()
    shared = await DocumentType.create(
        code="PASSPORT", label="Passport", allowed_extensions=["pdf"]
    )

    payload = await attach(client, admin.token, first_steps[0], shared.id)
    assert payload["userErrors"] == []
    assert [t["id"] for t in payload["step"]["documentTypes"]] == [str(shared.id)]
    payload = await attach(client, admin.token, second_step, shared.id, position=5)
    assert payload["userErrors"] == []
    # in position order: the step's own type (position 0) first
    assert [t["id"] for t in payload["step"]["documentTypes"]] == [str(png_type), str(shared.id)]
    # requiredStep keeps naming the first step it was attached to
    assert payload["documentType"]["requiredStep"] == {"id": str(first_steps[0])}
    # attaching again moves it
    payload = await attach(client, admin.token, second_step, png_type, position=9)
    assert [t["id"] for t in payload["step"]["documentTypes"]] == [str(shared.id), str(png_type)]
    for step_id in (first_steps[0], second_step):
        listed = await gql(client, DOCUMENT_TYPES, {"stepId": str(step_id)}, token=owner.token)
        assert str(shared.id) in [n["id"] for n in listed["documentTypes"]["nodes"]]

    one = await view(client, owner.token, await open_for(owner, first))
    other = await view(client, owner.token, await open_for(owner, second))
    assert documents_by_step(one) == [[str(shared.id)], []]
    assert documents_by_step(other) == [[str(shared.id), str(png_type)]]
    # the first product's second step asks for its own type when it starts
    await skip_current(client, agent, one)
    one = await view(client, owner.token, one["id"])
    assert documents_by_step(one)[1] == [str(t) for t in await types_of(first_steps[1])]
    assert str(shared.id) not in documents_by_step(one)[1]


async def test_detaching_keeps_running_dossiers_documents(client):
    product = await optional_product((("pdf",), ("png",)))
    step1, step2 = await steps_of(product)
    (type1,), (type2,) = await types_of(step1), await types_of(step2)
    admin, agent, owner = await make_admin(), await make_agent(), await make_client()
    # type1 is asked for at both steps; the dossier has it at its first step
    assert (await attach(client, admin.token, step2, type1))["userErrors"] == []
    running = await view(client, owner.token, await open_for(owner, product))
    assert documents_by_step(running) == [[str(type1)], []]

    payload = await detach(client, admin.token, step1, type1)
    assert payload["userErrors"] == []
    assert payload["step"]["documentTypes"] == []
    # requiredStep moves to the step that still asks for it
    assert payload["documentType"]["requiredStep"] == {"id": str(step2)}
    assert await Event.filter(event_type=EventType.DOCUMENT_TYPE_DETACHED).count() == 1

    # the running dossier keeps its document (still to send), a new one gets none there
    kept = await view(client, owner.token, running["id"])
    assert kept["steps"][0]["documents"] == running["steps"][0]["documents"]
    fresh = await view(client, owner.token, await open_for(owner, product))
    assert documents_by_step(fresh)[0] == []
    # the step that still asks for it does so when it starts
    await skip_current(client, agent, kept)
    moved = await view(client, owner.token, running["id"])
    assert sorted(documents_by_step(moved)[1]) == sorted([str(type1), str(type2)])
    # detached from its last step, the type has no step; the documents stay
    payload = await detach(client, admin.token, step2, type1)
    assert payload["documentType"]["requiredStep"] is None
    assert (await DocumentType.get(id=type1)).required_step_id is None
    assert await view(client, owner.token, running["id"]) == moved


async def test_update_document_type_required_step_moves_only_that_link(client):
    ids = await world()
    admin = await make_admin()
    assert (await attach(client, admin.token, ids["spare_step"], ids["type1"]))["userErrors"] == []
    data = await gql(
        client,
        UPDATE_DOCUMENT_TYPE,
        {"input": {"id": ids["type1"], "requiredStepId": ids["step2"]}},
        token=admin.token,
    )
    assert data["updateDocumentType"]["documentType"]["requiredStep"]["id"] == ids["step2"]
    links = {
        str(s)
        for s in await StepDocumentType.filter(document_type_id=ids["type1"]).values_list(
            "step_id", flat=True
        )
    }
    assert links == {ids["step2"], ids["spare_step"]}  # step1 detached, the other link kept


# --- migration 0014: every required_step_id becomes a link -----------------------------------

_MIGRATE = """
import asyncio, sys
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate
from app.db import tortoise_config

async def main(url, target):
    try:
        await migrate(config=tortoise_config(url), target=target or None)
    finally:
        await Tortoise.close_connections()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _migrate(url: str, target: str = "") -> None:
    env = {**os.environ, "ENV": "test", "DATABASE_URL": url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _MIGRATE,
        url,
        target,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out.decode(), err.decode())


@pytest.fixture
async def fresh_database_url(backend, tmp_path: Path) -> AsyncIterator[str]:
    if not backend.is_postgres:
        yield f"sqlite://{tmp_path / 'fresh.sqlite3'}"
        return
    import asyncpg

    name = f"test_catalogue_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(backend.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(backend.admin_url)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(backend.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _execute(url: str, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """Run statements on a database that is not the ORM's; the last one's rows."""
    rows: list[Any] = []
    if url.startswith("sqlite://"):
        with closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            for sql, values in statements:
                sql = sql.replace("$1", "?").replace("$2", "?").replace("$3", "?")
                params = [v if v is None or isinstance(v, str | int) else str(v) for v in values]
                rows = conn.execute(sql, params).fetchall()
            conn.commit()
        return [tuple(r) for r in rows]
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for sql, values in statements:
            rows = await conn.fetch(sql, *values)
    finally:
        await conn.close()
    return [tuple(str(v) if isinstance(v, uuid.UUID) else v for v in r) for r in rows]


async def test_migration_links_every_document_type_to_its_required_step(fresh_database_url):
    (path,) = (ROOT / "app" / "models" / "migrations").glob("*_catalogue.py")
    migration = importlib.import_module(f"app.models.migrations.{path.stem}")
    app_label, previous = migration.Migration.dependencies[0]
    await _migrate(fresh_database_url, f"{app_label}.{previous}")

    step, attached, loose = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    postgres = not fresh_database_url.startswith("sqlite://")
    at = now if postgres else now.isoformat(sep=" ")
    extensions = '["pdf"]'
    await _execute(
        fresh_database_url,
        [
            (
                'INSERT INTO "steps" ("id", "code", "label", "position", "created_at") '
                "VALUES ($1, 'LEGACY', 'Legacy', 0, $2)",
                (step, at),
            ),
            *(
                (
                    'INSERT INTO "document_types" ("id", "code", "label", "required_step_id", '
                    '"max_file_size_mb", "allowed_extensions", "created_at", "updated_at") '
                    f"VALUES ($1, $2, 'Doc', $3, 10, '{extensions}', '{at}', '{at}')",
                    (type_id, code, step_id),
                )
                for type_id, code, step_id in ((attached, "ATTACHED", step), (loose, "LOOSE", None))
            ),
        ],
    )
    await _migrate(fresh_database_url)
    rows = await _execute(
        fresh_database_url,
        [
            (
                'SELECT "step_id", "document_type_id", "position" FROM "step_document_types"',
                (),
            )
        ],
    )
    assert rows == [(str(step), str(attached), 0)]
