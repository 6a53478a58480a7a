"""Reading dossiers: who sees what, filters, the nested read, its SQL cost, pagination."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from app.models import Document, DocumentVersion, Dossier, StepInstance
from app.models.enums import ActorType, DocumentStatus, DossierStatus
from tests.factories import Account, make_agent, make_client, make_dossier, make_product
from tests.helpers import count_statements, error_codes, gql

DOSSIER_IDS = """
query Dossiers($filter: DossierFilter, $first: Int, $after: String) {
  dossiers(filter: $filter, first: $first, after: $after) {
    totalCount
    nodes { id }
  }
}
"""

ONE_DOSSIER = """
query One($id: ID!) { dossier(id: $id) { id status client { id } } }
"""

DOSSIER_FIELDS = """
fragment DossierFields on Dossier {
  id type status createdAt completedAt
  product {
    id code
    steps {
      position isRequired
      step { id code label documentTypes { id code allowedExtensions maxFileSizeMb } }
    }
  }
  client { id fullName email }
  steps {
    id position isRequired startedAt completedAt
    step { id code label }
    assignedTo { id email name }
    documents {
      id status
      documentType { id code }
      currentVersion { id versionNumber fileName mimeType uploadedByType }
    }
  }
  currentStep { id position step { code } documents { id status documentType { code } } }
  documents { id status documentType { id code } currentVersion { id versionNumber } }
  statusHistory { oldStatus newStatus changedByType changedById reason }
}
"""

NESTED_ONE = (
    """
query Nested($id: ID!) { dossier(id: $id) { ...DossierFields } }
"""
    + DOSSIER_FIELDS
)

NESTED_LIST = (
    """
query NestedList { dossiers(first: 100) { totalCount nodes { ...DossierFields } } }
"""
    + DOSSIER_FIELDS
)

PAGE = """
query Page($first: Int, $after: String, $last: Int, $before: String) {
  dossiers(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


def ids(data: dict) -> set[str]:
    return {node["id"] for node in data["dossiers"]["nodes"]}


async def _raw(client, query: str, variables: dict, token: str | None = None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


# --- visibility -----------------------------------------------------------------------


async def test_client_sees_only_own_dossiers(client):
    alice, bob = await make_client(), await make_client()
    product = await make_product()
    alice_dossiers = {str((await make_dossier(alice, product)).id) for _ in range(2)}
    bob_dossier = await make_dossier(bob, product)

    data = await gql(client, DOSSIER_IDS, token=alice.token)
    assert ids(data) == alice_dossiers
    assert data["dossiers"]["totalCount"] == 2

    data = await gql(client, DOSSIER_IDS, token=bob.token)
    assert ids(data) == {str(bob_dossier.id)}
    assert data["dossiers"]["totalCount"] == 1

    # A client's clientId filter cannot widen what they see.
    data = await gql(client, DOSSIER_IDS, {"filter": {"clientId": bob.id}}, token=alice.token)
    assert ids(data) == set()
    assert data["dossiers"]["totalCount"] == 0


async def test_someone_elses_dossier_answers_exactly_like_a_missing_one(client):
    alice, bob = await make_client(), await make_client()
    bobs = await make_dossier(bob)

    # Control: the owner reads it.
    own = await gql(client, ONE_DOSSIER, {"id": str(bobs.id)}, token=bob.token)
    assert own["dossier"]["id"] == str(bobs.id)

    other = await _raw(client, ONE_DOSSIER, {"id": str(bobs.id)}, alice.token)
    missing = await _raw(client, ONE_DOSSIER, {"id": str(uuid.uuid4())}, alice.token)
    malformed = await _raw(client, ONE_DOSSIER, {"id": "not-a-uuid"}, alice.token)
    also_malformed = await _raw(client, ONE_DOSSIER, {"id": str(bobs.id)[:-1]}, alice.token)

    assert other.status_code == missing.status_code == malformed.status_code == 200
    body = other.json()
    assert body["data"] is None
    assert error_codes(body) == ["NOT_FOUND"]
    assert body["errors"][0]["path"] == ["dossier"]
    assert body["errors"][0]["message"] == "No such dossier."
    # Byte-for-byte the same answer, whatever the reason the dossier is not there.
    assert other.content == missing.content == malformed.content == also_malformed.content


async def test_agents_see_every_dossier(client):
    agent = await make_agent()
    alice, bob = await make_client(), await make_client()
    product = await make_product()
    expected = {str((await make_dossier(c, product)).id) for c in (alice, bob, bob)}

    data = await gql(client, DOSSIER_IDS, token=agent.token)
    assert ids(data) == expected
    assert data["dossiers"]["totalCount"] == 3
    one = await gql(client, ONE_DOSSIER, {"id": sorted(expected)[0]}, token=agent.token)
    assert one["dossier"]["id"] == sorted(expected)[0]


async def test_unauthenticated_requests_are_refused(client):
    dossier = await make_dossier(await make_client())
    for query, variables in ((DOSSIER_IDS, {}), (ONE_DOSSIER, {"id": str(dossier.id)})):
        body = await gql(client, query, variables, expect_errors=True)
        assert error_codes(body) == ["UNAUTHENTICATED"]
        assert body["data"] is None
        body = await gql(client, query, variables, token="not.a.jwt", expect_errors=True)
        assert error_codes(body) == ["UNAUTHENTICATED"]
        assert body["data"] is None


# --- filters --------------------------------------------------------------------------


async def test_filters(client):
    agent, other_agent = await make_agent(), await make_agent()
    alice, bob = await make_client(), await make_client()
    p1, p2 = await make_product(), await make_product()
    a1 = await make_dossier(alice, p1)
    a2 = await make_dossier(alice, p2)
    b1 = await make_dossier(bob, p1)
    await Dossier.filter(id=a2.id).update(status=DossierStatus.ON_HOLD)
    await Dossier.filter(id=b1.id).update(status=DossierStatus.COMPLETED)

    async def agent_ids(filter_: dict, token: str = agent.token) -> set[str]:
        data = await gql(client, DOSSIER_IDS, {"filter": filter_}, token=token)
        assert data["dossiers"]["totalCount"] == len(data["dossiers"]["nodes"])
        return ids(data)

    assert await agent_ids({}) == {str(a1.id), str(a2.id), str(b1.id)}
    assert await agent_ids({"status": ["IN_PROGRESS"]}) == {str(a1.id)}
    assert await agent_ids({"status": ["ON_HOLD", "COMPLETED"]}) == {str(a2.id), str(b1.id)}
    assert await agent_ids({"status": ["CANCELLED"]}) == set()
    assert await agent_ids({"productId": str(p1.id)}) == {str(a1.id), str(b1.id)}
    assert await agent_ids({"productId": str(p2.id)}) == {str(a2.id)}
    assert await agent_ids({"clientId": alice.id}) == {str(a1.id), str(a2.id)}
    assert await agent_ids({"clientId": bob.id}) == {str(b1.id)}
    assert await agent_ids({"clientId": alice.id, "productId": str(p1.id)}) == {str(a1.id)}
    assert await agent_ids({"clientId": alice.id, "status": ["COMPLETED"]}) == set()

    # Filters apply to a client's own dossiers too.
    data = await gql(client, DOSSIER_IDS, {"filter": {"status": ["ON_HOLD"]}}, token=alice.token)
    assert ids(data) == {str(a2.id)}
    data = await gql(client, DOSSIER_IDS, {"filter": {"productId": str(p1.id)}}, token=alice.token)
    assert ids(data) == {str(a1.id)}

    # assignedToMe: no mutation yet, so assign in the database. Two steps of a1 go to
    # `agent` (the dossier must still come back once), one step of b1 to the other agent.
    a1_steps = await StepInstance.filter(dossier_id=a1.id).order_by("position")
    b1_steps = await StepInstance.filter(dossier_id=b1.id).order_by("position")
    await StepInstance.filter(id__in=[a1_steps[0].id, a1_steps[2].id]).update(
        assigned_to_id=agent.obj.id
    )
    await StepInstance.filter(id=b1_steps[1].id).update(assigned_to_id=other_agent.obj.id)

    assert await agent_ids({"assignedToMe": True}) == {str(a1.id)}
    assert await agent_ids({"assignedToMe": True}, other_agent.token) == {str(b1.id)}
    assert await agent_ids({"assignedToMe": False}) == {str(a1.id), str(a2.id), str(b1.id)}
    assert await agent_ids({"assignedToMe": True, "status": ["COMPLETED"]}) == set()
    fresh_agent = await make_agent()
    assert await agent_ids({"assignedToMe": True}, fresh_agent.token) == set()

    body = await gql(
        client,
        DOSSIER_IDS,
        {"filter": {"assignedToMe": True}},
        token=alice.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None


# --- the nested read ------------------------------------------------------------------


async def test_nested_read_of_a_new_dossier(client):
    alice = await make_client()
    agent = await make_agent()
    product = await make_product((("pdf", "jpg,png"), ("pdf",), ()))
    dossier = await make_dossier(alice, product)
    instances = await StepInstance.filter(dossier_id=dossier.id).order_by("position")
    await StepInstance.filter(id=instances[0].id).update(assigned_to_id=agent.obj.id)

    for token in (alice.token, agent.token):
        data = (await gql(client, NESTED_ONE, {"id": str(dossier.id)}, token=token))["dossier"]
        assert data["id"] == str(dossier.id)
        assert data["status"] == "IN_PROGRESS"
        assert data["type"] == "OTHER"
        assert data["completedAt"] is None
        assert data["client"] == {
            "id": alice.id,
            "fullName": alice.obj.full_name,
            "email": alice.email,
        }

        # The product and its workflow, with the document types each step asks for.
        assert data["product"]["id"] == str(product.id)
        assert data["product"]["code"] == product.code
        product_steps = data["product"]["steps"]
        assert [ps["position"] for ps in product_steps] == [1, 2, 3]
        assert all(ps["isRequired"] for ps in product_steps)
        assert [ps["step"]["label"] for ps in product_steps] == ["Step 1", "Step 2", "Step 3"]
        extensions = [
            sorted(tuple(dt["allowedExtensions"]) for dt in ps["step"]["documentTypes"])
            for ps in product_steps
        ]
        assert extensions == [[("jpg", "png"), ("pdf",)], [("pdf",)], []]
        first_step_types = product_steps[0]["step"]["documentTypes"]
        assert [dt["code"] for dt in first_step_types] == sorted(
            dt["code"] for dt in first_step_types
        )

        # The dossier's steps: same steps in the same order, the first one started.
        steps = data["steps"]
        assert [s["id"] for s in steps] == [str(i.id) for i in instances]
        assert [s["position"] for s in steps] == [1, 2, 3]
        assert [s["step"]["id"] for s in steps] == [ps["step"]["id"] for ps in product_steps]
        assert steps[0]["startedAt"] is not None
        assert [s["startedAt"] for s in steps[1:]] == [None, None]
        assert all(s["completedAt"] is None for s in steps)
        assert steps[0]["assignedTo"] == {
            "id": agent.id,
            "email": agent.email,
            "name": agent.obj.name,
        }
        assert [s["assignedTo"] for s in steps[1:]] == [None, None]

        # Documents: one PENDING per document type of the first step, none for the others.
        first_docs = steps[0]["documents"]
        assert sorted(d["documentType"]["id"] for d in first_docs) == sorted(
            dt["id"] for dt in first_step_types
        )
        assert {d["status"] for d in first_docs} == {"PENDING"}
        assert [d["currentVersion"] for d in first_docs] == [None, None]
        assert [s["documents"] for s in steps[1:]] == [[], []]
        assert sorted(d["id"] for d in data["documents"]) == sorted(d["id"] for d in first_docs)
        assert {d["status"] for d in data["documents"]} == {"PENDING"}

        assert data["currentStep"]["id"] == str(instances[0].id)
        assert data["currentStep"]["position"] == 1
        assert data["currentStep"]["step"]["code"] == product_steps[0]["step"]["code"]
        assert sorted(d["id"] for d in data["currentStep"]["documents"]) == sorted(
            d["id"] for d in first_docs
        )

        assert data["statusHistory"] == [
            {
                "oldStatus": None,
                "newStatus": "CREATED",
                "changedByType": "SYSTEM",
                "changedById": None,
                "reason": None,
            },
            {
                "oldStatus": "CREATED",
                "newStatus": "IN_PROGRESS",
                "changedByType": "SYSTEM",
                "changedById": None,
                "reason": None,
            },
        ]


async def test_nested_read_shows_the_current_version(client):
    alice = await make_client()
    dossier = await make_dossier(alice)
    version = await _upload(alice, dossier)
    data = (await gql(client, NESTED_ONE, {"id": str(dossier.id)}, token=alice.token))["dossier"]
    (document,) = data["documents"]
    assert document["status"] == "UPLOADED"
    assert document["currentVersion"] == {"id": str(version.id), "versionNumber": 1}
    (step_document,) = data["steps"][0]["documents"]
    assert step_document["currentVersion"] == {
        "id": str(version.id),
        "versionNumber": 1,
        "fileName": "passport.pdf",
        "mimeType": "application/pdf",
        "uploadedByType": "USER",
    }


async def _upload(account: Account, dossier: Dossier) -> DocumentVersion:
    """A version for the dossier's first document, written directly (no upload API yet)."""
    document = await Document.filter(dossier_id=dossier.id).order_by("created_at").first()
    assert document is not None
    version = await DocumentVersion.create(
        document_id=document.id,
        file_url=f"documents/{uuid.uuid4().hex}",
        file_name="passport.pdf",
        file_size_bytes=1234,
        mime_type="application/pdf",
        uploaded_by_type=ActorType.USER,
        uploaded_by_id=account.obj.id,
        version_number=1,
    )
    await Document.filter(id=document.id).update(
        current_version_id=version.id, status=DocumentStatus.UPLOADED
    )
    await DocumentVersion.filter(document_id=document.id).update(awaiting_review_since=None)
    await DocumentVersion.filter(id=version.id).update(awaiting_review_since=version.uploaded_at)
    return version


async def _busy_dossier(account: Account, product, agent: Account) -> Dossier:
    """A dossier that uses every nested loader: an assigned step and an uploaded version."""
    dossier = await make_dossier(account, product)
    first = await StepInstance.filter(dossier_id=dossier.id, position=1).get()
    await StepInstance.filter(id=first.id).update(assigned_to_id=agent.obj.id)
    await _upload(account, dossier)
    return dossier


async def _nested_list_statements(client, token: str) -> tuple[list[str], dict]:
    with count_statements() as statements:
        data = await gql(client, NESTED_LIST, token=token)
    # The SQL text without its parameters ("<sql>: [values]") nor the length of IN lists.
    return [re.sub(r"IN \([^)]*\)", "IN (...)", s.split(": [")[0]) for s in statements], data


@pytest.mark.fast_paths
async def test_nested_list_costs_the_same_for_1_and_50_dossiers(client):
    viewer = await make_agent()
    agents = [await make_agent() for _ in range(3)]
    clients = [await make_client() for _ in range(7)]
    products = [await make_product((("pdf", "jpg"), ("pdf",), ())) for _ in range(4)]

    await _busy_dossier(clients[0], products[0], agents[0])
    one_sql, one = await _nested_list_statements(client, viewer.token)
    assert one["dossiers"]["totalCount"] == 1

    for i in range(1, 50):
        await _busy_dossier(clients[i % 7], products[i % 4], agents[i % 3])
    fifty_sql, fifty = await _nested_list_statements(client, viewer.token)

    # Every nested loader did work in the big read too.
    assert fifty["dossiers"]["totalCount"] == 50
    nodes = fifty["dossiers"]["nodes"]
    assert len(nodes) == 50
    assert len({n["id"] for n in nodes}) == 50
    assert {n["client"]["email"] for n in nodes} == {c.email for c in clients}
    assert {n["steps"][0]["assignedTo"]["id"] for n in nodes} == {a.id for a in agents}
    assert {n["product"]["id"] for n in nodes} == {str(p.id) for p in products}
    for node in nodes:
        assert len(node["product"]["steps"]) == 3
        assert len(node["product"]["steps"][0]["step"]["documentTypes"]) == 2
        assert len(node["steps"]) == 3
        assert len(node["documents"]) == 2
        assert sum(d["currentVersion"] is not None for d in node["documents"]) == 1
        assert len(node["statusHistory"]) == 2
        assert node["currentStep"]["id"] == node["steps"][0]["id"]

    assert len(fifty_sql) == len(one_sql), (one_sql, fifty_sql)
    # The viewer, the page, the count, then one batch per nested loader: product,
    # product steps, steps, their document types, client, client email, step instances,
    # assignee, documents by step, document types, versions, documents by dossier,
    # status history. No loader runs twice.
    assert len(one_sql) <= 16, one_sql
    assert len(set(fifty_sql)) == len(fifty_sql), fifty_sql


# --- pagination -----------------------------------------------------------------------


async def test_pagination_newest_first_without_duplicates(client):
    alice = await make_client()
    product = await make_product(((),))
    made = [await make_dossier(alice, product) for _ in range(7)]
    # Two dossiers created in the same instant: the id breaks the tie, nothing is lost.
    same_instant = datetime(2020, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    await Dossier.filter(id__in=[made[2].id, made[3].id]).update(created_at=same_instant)
    rows = await Dossier.filter(user_id=alice.obj.id)
    expected = [str(d.id) for d in sorted(rows, key=lambda d: (d.created_at, d.id), reverse=True)]
    assert set(expected) == {str(d.id) for d in made}
    assert expected[-2:] == sorted((str(made[2].id), str(made[3].id)), reverse=True)

    seen: list[str] = []
    after = None
    pages = []
    while True:
        data = (await gql(client, PAGE, {"first": 3, "after": after}, token=alice.token))[
            "dossiers"
        ]
        assert data["totalCount"] == 7
        pages.append([e["node"]["id"] for e in data["edges"]])
        seen += pages[-1]
        assert data["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
        assert len(pages) < 5, "pagination does not end"

    assert [len(p) for p in pages] == [3, 3, 1]
    assert seen == expected
    assert len(set(seen)) == len(seen)

    # Backwards from the end: the same order, page by page.
    back: list[str] = []
    before = None
    for _ in range(5):
        data = (await gql(client, PAGE, {"last": 3, "before": before}, token=alice.token))[
            "dossiers"
        ]
        back = [e["node"]["id"] for e in data["edges"]] + back
        if not data["pageInfo"]["hasPreviousPage"]:
            break
        before = data["pageInfo"]["startCursor"]
    assert back == expected


async def test_pagination_arguments_are_checked(client):
    alice = await make_client()
    await make_dossier(alice)
    for variables in ({"first": 101}, {"first": -1}, {"first": 1, "last": 1}, {"after": "!!"}):
        body = await gql(client, PAGE, variables, token=alice.token, expect_errors=True)
        assert error_codes(body) == ["BAD_USER_INPUT"], variables


async def test_page_sizes_out_of_range_are_refused_on_every_paged_field(client):
    # dossiers (paginate), Dossier.messages and Dossier.timeline share one page-size rule.
    owner = await make_client()
    dossier = await make_dossier(owner)
    messages = "query($id: ID!) { dossier(id: $id) { messages(last: -1) { totalCount } } }"
    timeline = "query($id: ID!) { dossier(id: $id) { timeline(last: 101) { kind } } }"
    cases = [
        ("{ dossiers(first: 101) { totalCount } }", "`first` must be between 0 and 100."),
        ("{ dossiers(first: 1, last: 1) { totalCount } }", "Pass either `first` or `last`"),
        (messages, "`last` must be between 0 and 100."),
        (timeline, "`last` must be between 0 and 100."),
    ]
    for query, message in cases:
        variables = {"id": str(dossier.id)} if "$id" in query else None
        body = await gql(client, query, variables, token=owner.token, expect_errors=True)
        assert message in body["errors"][0]["message"], body
        assert error_codes(body) == ["BAD_USER_INPUT"], body
