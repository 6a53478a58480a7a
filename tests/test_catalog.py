"""The catalogue through the GraphQL API: admin writes, validation, visibility, pagination."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from app.models import DocumentType, Event, Product, ProductStep, Step, StepDocumentType
from app.models.enums import DossierKind
from tests.factories import make_admin, make_agent, make_client, make_product
from tests.helpers import count_statements, error_codes, gql

# --- documents ---------------------------------------------------------------------------

PRODUCT_FIELDS = """
  id code name description dossierType priceAmount currency initialStatus active
  steps {
    position isRequired estimatedDurationHours
    step { id code label documentTypes { id code allowedExtensions maxFileSizeMb } }
  }
"""

CREATE_PRODUCT = f"""
mutation CreateProduct($input: CreateProductInput!) {{
  createProduct(input: $input) {{
    product {{ {PRODUCT_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

UPDATE_PRODUCT = f"""
mutation UpdateProduct($input: UpdateProductInput!) {{
  updateProduct(input: $input) {{
    product {{ {PRODUCT_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

CREATE_STEP = """
mutation CreateStep($input: CreateStepInput!) {
  createStep(input: $input) {
    step { id code label description position }
    userErrors { field message code }
  }
}
"""

SET_PRODUCT_STEPS = f"""
mutation SetProductSteps($input: SetProductStepsInput!) {{
  setProductSteps(input: $input) {{
    product {{ {PRODUCT_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

CREATE_DOCUMENT_TYPE = """
mutation CreateDocumentType($input: CreateDocumentTypeInput!) {
  createDocumentType(input: $input) {
    documentType {
      id code label description maxFileSizeMb allowedExtensions requiredStep { id code }
    }
    userErrors { field message code }
  }
}
"""

UPDATE_DOCUMENT_TYPE = """
mutation UpdateDocumentType($input: UpdateDocumentTypeInput!) {
  updateDocumentType(input: $input) {
    documentType {
      id code label description maxFileSizeMb allowedExtensions requiredStep { id code }
    }
    userErrors { field message code }
  }
}
"""

PRODUCT_BY_ID = f"""
query ProductById($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}
"""

PRODUCT_BY_CODE = """
query ProductByCode($code: String!) { product(code: $code) { id code active } }
"""

PRODUCTS = """
query Products($first: Int, $after: String, $last: Int, $before: String,
               $includeInactive: Boolean! = false) {
  products(first: $first, after: $after, last: $last, before: $before,
           includeInactive: $includeInactive) {
    totalCount
    edges { cursor node { id code active } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

PRODUCTS_WITH_STEPS = """
query ProductsWithSteps {
  products(first: 100) {
    nodes { id steps { position step { id code documentTypes { id code } } } }
  }
}
"""

STEPS = """
query Steps { steps(first: 100) { totalCount nodes { id code position } } }
"""

DOCUMENT_TYPES = """
query DocumentTypes($stepId: ID) {
  documentTypes(first: 100, stepId: $stepId) { totalCount nodes { id code } }
}
"""


# --- helpers -----------------------------------------------------------------------------

CATALOG_MODELS = (Product, Step, ProductStep, DocumentType, StepDocumentType, Event)


async def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of the catalogue tables and of the event log."""
    return {model.__name__: await model.all().order_by("id").values() for model in CATALOG_MODELS}


async def make_products(codes: list[str], *, active: bool = True) -> list[Product]:
    return [
        await Product.create(
            code=code,
            name=f"Product {code}",
            dossier_type=DossierKind.OTHER,
            price_amount=10_000,
            currency="eur",
            active=active,
        )
        for code in codes
    ]


async def catalogue() -> dict[str, str]:
    """A product with three steps (the first asks for a PDF) and a spare step."""
    product = await make_product((("pdf",), (), ()))
    product_steps = await ProductStep.filter(product_id=product.id).order_by("position")
    document_type = await DocumentType.get(required_step_id=product_steps[0].step_id)
    spare = await Step.create(code="SPARE", label="Spare step")
    return {
        "product": str(product.id),
        "step1": str(product_steps[0].step_id),
        "step2": str(product_steps[1].step_id),
        "step3": str(product_steps[2].step_id),
        "spare": str(spare.id),
        "document_type": str(document_type.id),
    }


def errors_of(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


async def create_product(client, token: str, **overrides: Any) -> dict:
    product_input = {
        "code": "VISA-FR",
        "name": "Residence permit",
        "dossierType": "IMMIGRATION",
        "priceAmount": 150_000,
        **overrides,
    }
    data = await gql(client, CREATE_PRODUCT, {"input": product_input}, token=token)
    return data["createProduct"]


async def create_step(client, token: str, code: str, **overrides: Any) -> dict:
    data = await gql(
        client,
        CREATE_STEP,
        {"input": {"code": code, "label": f"Step {code}", **overrides}},
        token=token,
    )
    return data["createStep"]


async def create_document_type(client, token: str, **overrides: Any) -> dict:
    type_input = {"code": "ID_DOCUMENT", "label": "Identity document", **overrides}
    type_input.setdefault("allowedExtensions", ["pdf"])
    data = await gql(client, CREATE_DOCUMENT_TYPE, {"input": type_input}, token=token)
    return data["createDocumentType"]


async def set_steps(client, token: str, product_id: str, steps: list[Any]) -> dict:
    steps = [s if isinstance(s, dict) else {"stepId": s} for s in steps]
    data = await gql(
        client,
        SET_PRODUCT_STEPS,
        {"input": {"productId": product_id, "steps": steps}},
        token=token,
    )
    return data["setProductSteps"]


# --- every admin mutation is refused to everyone else ------------------------------------

# (document, payload field, variables built from the `catalogue()` ids). Each input is valid:
# the same call succeeds for an admin (see test_admin_mutation_with_the_same_input_succeeds).
ADMIN_MUTATIONS: dict[str, tuple[str, str, Callable[[dict[str, str]], dict]]] = {
    "createProduct": (
        CREATE_PRODUCT,
        "product",
        lambda _ids: {
            "input": {
                "code": "NEWPROD",
                "name": "New product",
                "dossierType": "TAX",
                "priceAmount": 5_000,
            }
        },
    ),
    "updateProduct": (
        UPDATE_PRODUCT,
        "product",
        lambda ids: {
            "input": {
                "id": ids["product"],
                "name": "Renamed",
                "priceAmount": 1,
                "active": False,
            }
        },
    ),
    "createStep": (
        CREATE_STEP,
        "step",
        lambda _ids: {"input": {"code": "NEWSTEP", "label": "New step"}},
    ),
    "setProductSteps": (
        SET_PRODUCT_STEPS,
        "product",
        lambda ids: {
            "input": {
                "productId": ids["product"],
                "steps": [{"stepId": ids["spare"]}, {"stepId": ids["step1"]}],
            }
        },
    ),
    "createDocumentType": (
        CREATE_DOCUMENT_TYPE,
        "documentType",
        lambda ids: {
            "input": {
                "code": "NEWDOC",
                "label": "New document",
                "allowedExtensions": ["png"],
                "requiredStepId": ids["step2"],
            }
        },
    ),
    "updateDocumentType": (
        UPDATE_DOCUMENT_TYPE,
        "documentType",
        lambda ids: {
            "input": {
                "id": ids["document_type"],
                "label": "Renamed",
                "allowedExtensions": ["png"],
                "requiredStepId": None,
            }
        },
    ),
}


@pytest.mark.parametrize("mutation", list(ADMIN_MUTATIONS))
@pytest.mark.parametrize(
    ("actor", "code"),
    [("agent", "FORBIDDEN"), ("client", "FORBIDDEN"), ("anonymous", "UNAUTHENTICATED")],
)
async def test_admin_mutation_refused(client, mutation, actor, code):
    ids = await catalogue()
    token = None
    if actor == "agent":
        token = (await make_agent()).token
    elif actor == "client":
        token = (await make_client()).token
    document, _, variables = ADMIN_MUTATIONS[mutation]
    before = await snapshot()
    body = await gql(client, document, variables(ids), token=token, expect_errors=True)
    assert error_codes(body) == [code]
    assert body["data"] is None
    assert await snapshot() == before


@pytest.mark.parametrize("mutation", list(ADMIN_MUTATIONS))
async def test_admin_mutation_with_the_same_input_succeeds(client, mutation):
    ids = await catalogue()
    admin = await make_admin()
    document, field, variables = ADMIN_MUTATIONS[mutation]
    before = await snapshot()
    data = await gql(client, document, variables(ids), token=admin.token)
    payload = data[mutation]
    assert payload["userErrors"] == []
    assert payload[field] is not None
    after = await snapshot()
    assert after != before
    assert len(after["Event"]) == len(before["Event"]) + 1


# --- the admin builds a product ----------------------------------------------------------


async def test_admin_builds_a_product_with_steps_and_document_types(client):
    admin = await make_admin()
    created = await create_product(
        client,
        admin.token,
        code=" visa-fr ",
        name="  Residence permit ",
        description="For non-EU nationals.",
        currency="EUR",
        initialStatus="IN_PROGRESS",
    )
    assert created["userErrors"] == []
    product = created["product"]
    assert {k: v for k, v in product.items() if k != "id"} == {
        "code": "VISA-FR",
        "name": "Residence permit",
        "description": "For non-EU nationals.",
        "dossierType": "IMMIGRATION",
        "priceAmount": 150_000,
        "currency": "eur",
        "initialStatus": "IN_PROGRESS",
        "active": True,
        "steps": [],
    }
    stored = await Product.get(id=product["id"])
    assert (stored.code, stored.price_amount, stored.currency) == ("VISA-FR", 150_000, "eur")

    steps = []
    for code in ("identity", "supporting", "filing"):
        payload = await create_step(client, admin.token, code, description="About " + code)
        assert payload["userErrors"] == []
        assert payload["step"]["code"] == code.upper()
        assert payload["step"]["description"] == "About " + code
        steps.append(payload["step"]["id"])
    identity, supporting, filing = steps

    payload = await set_steps(
        client,
        admin.token,
        product["id"],
        [
            {"stepId": identity, "estimatedDurationHours": 48},
            supporting,
            {"stepId": filing, "isRequired": False},
        ],
    )
    assert payload["userErrors"] == []
    assert [
        (s["position"], s["step"]["id"], s["isRequired"], s["estimatedDurationHours"])
        for s in payload["product"]["steps"]
    ] == [(1, identity, True, 48), (2, supporting, True, None), (3, filing, False, None)]

    # setting the steps again replaces the previous workflow entirely
    payload = await set_steps(client, admin.token, product["id"], [filing, identity])
    assert payload["userErrors"] == []
    assert [(s["position"], s["step"]["id"]) for s in payload["product"]["steps"]] == [
        (1, filing),
        (2, identity),
    ]
    rows = await ProductStep.filter(product_id=product["id"]).order_by("position")
    assert [(r.position, str(r.step_id)) for r in rows] == [(1, filing), (2, identity)]  # type: ignore[attr-defined]

    created_type = await create_document_type(
        client,
        admin.token,
        code="id_document",
        description="Passport or ID card",
        requiredStepId=identity,
        maxFileSizeMb=10,
        allowedExtensions=[".PDF", "jpg", " png ", "pdf"],
    )
    assert created_type["userErrors"] == []
    document_type = created_type["documentType"]
    assert document_type["code"] == "ID_DOCUMENT"
    assert document_type["allowedExtensions"] == ["jpg", "pdf", "png"]
    assert document_type["maxFileSizeMb"] == 10
    assert document_type["requiredStep"] == {"id": identity, "code": "IDENTITY"}
    other_type = await create_document_type(
        client, admin.token, code="ADDRESS_PROOF", requiredStepId=identity
    )
    assert other_type["userErrors"] == []

    # anyone logged in reads the product, its steps in order with their document types
    reader = await make_client()
    for token in (reader.token, admin.token):
        read = (await gql(client, PRODUCT_BY_ID, {"id": product["id"]}, token=token))["product"]
        assert read["code"] == "VISA-FR"
        assert [s["step"]["code"] for s in read["steps"]] == ["FILING", "IDENTITY"]
        assert read["steps"][0]["step"]["documentTypes"] == []
        assert [d["code"] for d in read["steps"][1]["step"]["documentTypes"]] == [
            "ADDRESS_PROOF",
            "ID_DOCUMENT",
        ]
    by_code = await gql(client, PRODUCT_BY_CODE, {"code": "visa-fr"}, token=reader.token)
    assert by_code["product"]["id"] == product["id"]

    listed = await gql(client, DOCUMENT_TYPES, {"stepId": identity}, token=reader.token)
    assert listed["documentTypes"]["totalCount"] == 2
    listed = await gql(client, DOCUMENT_TYPES, {"stepId": filing}, token=reader.token)
    assert listed["documentTypes"]["totalCount"] == 0
    all_steps = await gql(client, STEPS, token=reader.token)
    assert {s["id"] for s in all_steps["steps"]["nodes"]} == set(steps)


async def test_set_product_steps_to_nothing(client):
    admin = await make_admin()
    ids = await catalogue()
    payload = await set_steps(client, admin.token, ids["product"], [])
    assert payload["userErrors"] == []
    assert payload["product"]["steps"] == []
    assert not await ProductStep.filter(product_id=ids["product"]).exists()
    # the steps themselves are still there
    assert await Step.filter(id=ids["step1"]).exists()


async def test_update_document_type(client):
    admin = await make_admin()
    ids = await catalogue()
    data = await gql(
        client,
        UPDATE_DOCUMENT_TYPE,
        {
            "input": {
                "id": ids["document_type"],
                "label": "Passport",
                "description": "Valid passport",
                "maxFileSizeMb": 20,
                "allowedExtensions": ["JPEG", "pdf"],
                "requiredStepId": ids["step2"],
            }
        },
        token=admin.token,
    )
    payload = data["updateDocumentType"]
    assert payload["userErrors"] == []
    document_type = payload["documentType"]
    assert document_type["label"] == "Passport"
    assert document_type["description"] == "Valid passport"
    assert document_type["maxFileSizeMb"] == 20
    assert document_type["allowedExtensions"] == ["jpeg", "pdf"]
    assert document_type["requiredStep"]["id"] == ids["step2"]

    # absent fields stay, null clears
    data = await gql(
        client,
        UPDATE_DOCUMENT_TYPE,
        {"input": {"id": ids["document_type"], "description": None, "requiredStepId": None}},
        token=admin.token,
    )
    document_type = data["updateDocumentType"]["documentType"]
    assert document_type["description"] is None
    assert document_type["requiredStep"] is None
    assert document_type["label"] == "Passport"
    assert document_type["allowedExtensions"] == ["jpeg", "pdf"]
    stored = await DocumentType.get(id=ids["document_type"])
    assert stored.required_step_id is None  # type: ignore[attr-defined]
    assert stored.description is None


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"code": "x"}, "INVALID_CODE", ["code"]),
        ({"code": "bad code!"}, "INVALID_CODE", ["code"]),
        ({"code": "-leading"}, "INVALID_CODE", ["code"]),
        ({"code": "C" * 65}, "INVALID_CODE", ["code"]),
        ({"priceAmount": 0}, "INVALID_AMOUNT", ["priceAmount"]),
        ({"priceAmount": -100}, "INVALID_AMOUNT", ["priceAmount"]),
        ({"priceAmount": 100_000_001}, "INVALID_AMOUNT", ["priceAmount"]),
        ({"currency": "euro"}, "INVALID_CURRENCY", ["currency"]),
        ({"currency": "e1r"}, "INVALID_CURRENCY", ["currency"]),
        ({"currency": ""}, "INVALID_CURRENCY", ["currency"]),
        ({"initialStatus": "COMPLETED"}, "INVALID_STATUS", ["initialStatus"]),
        ({"name": "  "}, "REQUIRED", ["name"]),
    ],
)
async def test_create_product_validation(client, override, code, field):
    admin = await make_admin()
    before = await snapshot()
    payload = await create_product(client, admin.token, **override)
    assert payload["product"] is None
    assert errors_of(payload) == [(code, field)]
    assert await snapshot() == before


@pytest.mark.parametrize("second_code", ["VISA-FR", "visa-fr", " Visa-Fr "])
async def test_create_product_with_a_taken_code(client, second_code):
    admin = await make_admin()
    assert (await create_product(client, admin.token, code="VISA-FR"))["userErrors"] == []
    before = await snapshot()
    payload = await create_product(client, admin.token, code=second_code, name="Other")
    assert payload["product"] is None
    assert errors_of(payload) == [("CODE_TAKEN", ["code"])]
    assert await snapshot() == before
    assert await Product.all().count() == 1


async def test_create_step_validation_and_taken_code(client):
    admin = await make_admin()
    assert (await create_step(client, admin.token, "identity"))["userErrors"] == []
    before = await snapshot()
    for code, expected in (("IDENTITY", "CODE_TAKEN"), ("i", "INVALID_CODE")):
        payload = await create_step(client, admin.token, code)
        assert payload["step"] is None
        assert errors_of(payload) == [(expected, ["code"])]
    payload = await create_step(client, admin.token, "other", label=" ")
    assert errors_of(payload) == [("REQUIRED", ["label"])]
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"allowedExtensions": ["exe"]}, "UNSUPPORTED_EXTENSION", ["allowedExtensions"]),
        ({"allowedExtensions": ["pdf", ".exe"]}, "UNSUPPORTED_EXTENSION", ["allowedExtensions"]),
        ({"allowedExtensions": []}, "REQUIRED", ["allowedExtensions"]),
        ({"maxFileSizeMb": 0}, "INVALID_SIZE", ["maxFileSizeMb"]),
        ({"maxFileSizeMb": -5}, "INVALID_SIZE", ["maxFileSizeMb"]),
        ({"maxFileSizeMb": 101}, "INVALID_SIZE", ["maxFileSizeMb"]),
        ({"requiredStepId": str(uuid.uuid4())}, "UNKNOWN_STEP", ["requiredStepId"]),
        ({"requiredStepId": "not-a-uuid"}, "UNKNOWN_STEP", ["requiredStepId"]),
        ({"code": "x y"}, "INVALID_CODE", ["code"]),
        ({"code": "ID_DOCUMENT"}, "CODE_TAKEN", ["code"]),
        ({"code": "id_document"}, "CODE_TAKEN", ["code"]),
    ],
)
async def test_create_document_type_validation(client, override, code, field):
    admin = await make_admin()
    await DocumentType.create(code="ID_DOCUMENT", label="Existing", allowed_extensions=["pdf"])
    before = await snapshot()
    payload = await create_document_type(client, admin.token, **{"code": "NEW_DOC", **override})
    assert payload["documentType"] is None
    assert errors_of(payload) == [(code, field)]
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"allowedExtensions": ["exe"]}, "UNSUPPORTED_EXTENSION", ["allowedExtensions"]),
        ({"allowedExtensions": []}, "REQUIRED", ["allowedExtensions"]),
        ({"maxFileSizeMb": 0}, "INVALID_SIZE", ["maxFileSizeMb"]),
        ({"requiredStepId": str(uuid.uuid4())}, "UNKNOWN_STEP", ["requiredStepId"]),
        ({"requiredStepId": "garbage"}, "UNKNOWN_STEP", ["requiredStepId"]),
        ({"label": ""}, "REQUIRED", ["label"]),
    ],
)
async def test_update_document_type_validation(client, override, code, field):
    admin = await make_admin()
    ids = await catalogue()
    before = await snapshot()
    data = await gql(
        client,
        UPDATE_DOCUMENT_TYPE,
        {"input": {"id": ids["document_type"], "description": "would change", **override}},
        token=admin.token,
    )
    payload = data["updateDocumentType"]
    assert payload["documentType"] is None
    assert errors_of(payload) == [(code, field)]
    assert await snapshot() == before


@pytest.mark.parametrize("document_type_id", ["garbage", str(uuid.uuid4())])
async def test_update_unknown_document_type_is_not_found(client, document_type_id):
    admin = await make_admin()
    body = await gql(
        client,
        UPDATE_DOCUMENT_TYPE,
        {"input": {"id": document_type_id, "label": "X"}},
        token=admin.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["NOT_FOUND"]


@pytest.mark.parametrize(
    ("steps", "code", "field"),
    [
        (["step1", "step2", "step1"], "DUPLICATE_STEP", ["steps"]),
        (["spare", "unknown"], "UNKNOWN_STEP", ["steps", "1", "stepId"]),
        (["spare", "step1", "malformed"], "UNKNOWN_STEP", ["steps", "2", "stepId"]),
        (["malformed", "spare"], "UNKNOWN_STEP", ["steps", "0", "stepId"]),
        (
            [{"stepId": "spare", "estimatedDurationHours": 0}],
            "INVALID_DURATION",
            ["steps", "0", "estimatedDurationHours"],
        ),
    ],
)
async def test_set_product_steps_validation(client, steps, code, field):
    admin = await make_admin()
    ids = {**await catalogue(), "unknown": str(uuid.uuid4()), "malformed": "step-one"}
    before = await snapshot()
    specs = [
        {**s, "stepId": ids[s["stepId"]]} if isinstance(s, dict) else {"stepId": ids[s]}
        for s in steps
    ]
    payload = await set_steps(client, admin.token, ids["product"], specs)
    assert payload["product"] is None
    assert errors_of(payload) == [(code, field)]
    assert await snapshot() == before


async def test_set_product_steps_same_uuid_in_other_case_is_a_duplicate(client):
    admin = await make_admin()
    ids = await catalogue()
    before = await snapshot()
    payload = await set_steps(
        client, admin.token, ids["product"], [ids["spare"], ids["spare"].upper()]
    )
    assert errors_of(payload) == [("DUPLICATE_STEP", ["steps"])]
    assert await snapshot() == before


@pytest.mark.parametrize("product_id", ["garbage", str(uuid.uuid4())])
async def test_set_steps_of_unknown_product_is_not_found(client, product_id):
    admin = await make_admin()
    ids = await catalogue()
    before = await snapshot()
    body = await gql(
        client,
        SET_PRODUCT_STEPS,
        {"input": {"productId": product_id, "steps": [{"stepId": ids["spare"]}]}},
        token=admin.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["NOT_FOUND"]
    assert await snapshot() == before


# --- updateProduct -----------------------------------------------------------------------


async def test_update_product_description_null_clears_absent_keeps(client):
    admin = await make_admin()
    product = (await create_product(client, admin.token, description="Long text"))["product"]

    data = await gql(
        client,
        UPDATE_PRODUCT,
        {"input": {"id": product["id"], "name": "Renamed"}},
        token=admin.token,
    )
    updated = data["updateProduct"]["product"]
    assert updated["name"] == "Renamed"
    assert updated["description"] == "Long text"  # absent: unchanged
    assert (await Product.get(id=product["id"])).description == "Long text"

    data = await gql(
        client,
        UPDATE_PRODUCT,
        {"input": {"id": product["id"], "description": None}},
        token=admin.token,
    )
    updated = data["updateProduct"]["product"]
    assert updated["description"] is None  # null: cleared
    assert updated["name"] == "Renamed"
    assert updated["priceAmount"] == 150_000
    assert (await Product.get(id=product["id"])).description is None

    data = await gql(
        client,
        UPDATE_PRODUCT,
        {
            "input": {
                "id": product["id"],
                "description": "Back",
                "priceAmount": 99_00,
                "currency": "USD",
                "initialStatus": "IN_PROGRESS",
            }
        },
        token=admin.token,
    )
    updated = data["updateProduct"]["product"]
    assert (
        updated["description"],
        updated["priceAmount"],
        updated["currency"],
        updated["initialStatus"],
    ) == ("Back", 9_900, "usd", "IN_PROGRESS")


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"priceAmount": 0}, "INVALID_AMOUNT", ["priceAmount"]),
        ({"currency": "dollars"}, "INVALID_CURRENCY", ["currency"]),
        ({"initialStatus": "CANCELLED"}, "INVALID_STATUS", ["initialStatus"]),
        ({"name": " "}, "REQUIRED", ["name"]),
    ],
)
async def test_update_product_validation_writes_nothing(client, override, code, field):
    admin = await make_admin()
    ids = await catalogue()
    before = await snapshot()
    data = await gql(
        client,
        UPDATE_PRODUCT,
        {
            "input": {
                "id": ids["product"],
                "description": "would change",
                "active": False,
                **override,
            }
        },
        token=admin.token,
    )
    payload = data["updateProduct"]
    assert payload["product"] is None
    assert errors_of(payload) == [(code, field)]
    assert await snapshot() == before


@pytest.mark.parametrize("product_id", ["garbage", str(uuid.uuid4())])
async def test_update_unknown_product_is_not_found(client, product_id):
    admin = await make_admin()
    body = await gql(
        client,
        UPDATE_PRODUCT,
        {"input": {"id": product_id, "name": "X"}},
        token=admin.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["NOT_FOUND"]
    assert body["data"] is None


# --- who sees what -----------------------------------------------------------------------


async def test_clients_do_not_see_inactive_products(client):
    active, inactive = await make_products(["ACTIVE1", "INACTIVE1"])
    inactive.active = False
    await inactive.save()
    reader = await make_client()

    for include_inactive in (False, True):
        listed = (
            await gql(client, PRODUCTS, {"includeInactive": include_inactive}, token=reader.token)
        )["products"]
        assert [e["node"]["id"] for e in listed["edges"]] == [str(active.id)]
        assert listed["totalCount"] == 1

    seen = await gql(client, PRODUCT_BY_ID, {"id": str(active.id)}, token=reader.token)
    assert seen["product"]["id"] == str(active.id)

    hidden = await gql(
        client, PRODUCT_BY_ID, {"id": str(inactive.id)}, token=reader.token, expect_errors=True
    )
    missing = await gql(
        client, PRODUCT_BY_ID, {"id": str(uuid.uuid4())}, token=reader.token, expect_errors=True
    )
    assert error_codes(hidden) == ["NOT_FOUND"]
    assert hidden == missing  # exactly as if it did not exist
    by_code = await gql(
        client, PRODUCT_BY_CODE, {"code": "INACTIVE1"}, token=reader.token, expect_errors=True
    )
    assert error_codes(by_code) == ["NOT_FOUND"]
    malformed = await gql(
        client, PRODUCT_BY_ID, {"id": "garbage"}, token=reader.token, expect_errors=True
    )
    assert error_codes(malformed) == ["NOT_FOUND"]


async def test_agents_see_inactive_products_when_they_ask(client):
    active, inactive = await make_products(["ACTIVE1", "INACTIVE1"])
    inactive.active = False
    await inactive.save()
    agent = await make_agent()

    listed = (await gql(client, PRODUCTS, token=agent.token))["products"]
    assert [e["node"]["id"] for e in listed["edges"]] == [str(active.id)]
    listed = (await gql(client, PRODUCTS, {"includeInactive": True}, token=agent.token))["products"]
    assert [(e["node"]["id"], e["node"]["active"]) for e in listed["edges"]] == [
        (str(active.id), True),
        (str(inactive.id), False),
    ]
    assert listed["totalCount"] == 2
    read = await gql(client, PRODUCT_BY_ID, {"id": str(inactive.id)}, token=agent.token)
    assert read["product"]["active"] is False


async def test_deactivating_a_product_hides_it_from_clients(client):
    admin = await make_admin()
    reader = await make_client()
    product = (await create_product(client, admin.token))["product"]
    assert (await gql(client, PRODUCT_BY_ID, {"id": product["id"]}, token=reader.token))["product"]
    data = await gql(
        client, UPDATE_PRODUCT, {"input": {"id": product["id"], "active": False}}, token=admin.token
    )
    assert data["updateProduct"]["product"]["active"] is False
    body = await gql(
        client, PRODUCT_BY_ID, {"id": product["id"]}, token=reader.token, expect_errors=True
    )
    assert error_codes(body) == ["NOT_FOUND"]
    listed = (await gql(client, PRODUCTS, token=reader.token))["products"]
    assert listed["totalCount"] == 0


@pytest.mark.parametrize("document", [PRODUCTS, STEPS, DOCUMENT_TYPES])
async def test_catalogue_reads_need_a_token(client, document):
    await catalogue()
    body = await gql(client, document, expect_errors=True)
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_product_read_needs_a_token(client):
    ids = await catalogue()
    body = await gql(client, PRODUCT_BY_ID, {"id": ids["product"]}, expect_errors=True)
    assert error_codes(body) == ["UNAUTHENTICATED"]


# --- pagination --------------------------------------------------------------------------

CODES = [f"P{i:02d}" for i in range(1, 8)]


async def test_products_pagination_forwards_and_backwards(client):
    products = await make_products(CODES)
    await make_products(["P00-HIDDEN", "P99-HIDDEN"], active=False)
    expected = [str(p.id) for p in products]  # by code
    reader = await make_client()

    seen: list[str] = []
    after = None
    pages = []
    while True:
        page = (await gql(client, PRODUCTS, {"first": 3, "after": after}, token=reader.token))[
            "products"
        ]
        assert page["totalCount"] == 7
        pages.append([e["node"]["id"] for e in page["edges"]])
        seen += pages[-1]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert len(pages) < 10
    assert [len(p) for p in pages] == [3, 3, 1]
    assert seen == expected
    assert len(set(seen)) == 7

    # from the end, backwards
    page = (await gql(client, PRODUCTS, {"last": 3}, token=reader.token))["products"]
    assert [e["node"]["id"] for e in page["edges"]] == expected[4:]
    assert page["pageInfo"]["hasPreviousPage"] is True
    page = (
        await gql(
            client,
            PRODUCTS,
            {"last": 3, "before": page["pageInfo"]["startCursor"]},
            token=reader.token,
        )
    )["products"]
    assert [e["node"]["id"] for e in page["edges"]] == expected[1:4]
    assert page["pageInfo"]["hasPreviousPage"] is True
    assert page["pageInfo"]["hasNextPage"] is True
    page = (
        await gql(
            client,
            PRODUCTS,
            {"last": 3, "before": page["pageInfo"]["startCursor"]},
            token=reader.token,
        )
    )["products"]
    assert [e["node"]["id"] for e in page["edges"]] == expected[:1]
    assert page["pageInfo"]["hasPreviousPage"] is False

    # a cursor from the middle, forwards
    cursors = {
        e["node"]["id"]: e["cursor"]
        for e in (await gql(client, PRODUCTS, {"first": 100}, token=reader.token))["products"][
            "edges"
        ]
    }
    page = (
        await gql(client, PRODUCTS, {"first": 2, "after": cursors[expected[2]]}, token=reader.token)
    )["products"]
    assert [e["node"]["id"] for e in page["edges"]] == expected[3:5]

    # zero items is a legal page
    page = (await gql(client, PRODUCTS, {"first": 0}, token=reader.token))["products"]
    assert page["edges"] == []
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["totalCount"] == 7


async def test_products_default_page_and_page_size_limit(client):
    await make_products([f"Q{i:03d}" for i in range(25)])
    reader = await make_client()
    page = (await gql(client, PRODUCTS, token=reader.token))["products"]
    assert len(page["edges"]) == 20
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["totalCount"] == 25
    page = (await gql(client, PRODUCTS, {"first": 100}, token=reader.token))["products"]
    assert len(page["edges"]) == 25
    assert page["pageInfo"]["hasNextPage"] is False


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "variables",
    [
        {"first": 101},
        {"last": 101},
        {"first": -1},
        {"last": -1},
        {"first": 2, "last": 2},
        {"first": 2, "after": "garbage"},
        {"first": 2, "after": "!!!"},
        {"last": 2, "before": "not-a-cursor"},
        {"first": 2, "after": _cursor(b'["P01"]')},
        {"first": 2, "after": _cursor(b'["P01", "not-a-uuid"]')},
        {"first": 2, "after": _cursor(b'{"code": "P01"}')},
        {"first": 2, "after": _cursor(b"not json")},
    ],
    ids=lambda v: ",".join(f"{k}={v[k]}" for k in v),
)
async def test_products_bad_pagination_arguments(client, variables):
    await make_products(CODES)
    reader = await make_client()
    body = await gql(client, PRODUCTS, variables, token=reader.token, expect_errors=True)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None


async def test_products_with_steps_load_in_a_bounded_number_of_queries(client):
    reader = await make_client()
    await make_product((("pdf",), ("png",)))
    with count_statements() as few:
        small = await gql(client, PRODUCTS_WITH_STEPS, token=reader.token)
    for _ in range(5):
        await make_product((("pdf", "jpg"), ("png",), ()))
    with count_statements() as many:
        large = await gql(client, PRODUCTS_WITH_STEPS, token=reader.token)
    assert len(small["products"]["nodes"]) == 1
    assert len(large["products"]["nodes"]) == 6
    assert all(len(p["steps"]) in (2, 3) for p in large["products"]["nodes"])
    assert len(many) == len(few)
