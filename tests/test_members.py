"""The members of a dossier (issue 18, items 1 and 2): a family's residence-permit file
with a spouse and a child, each invited by the client, each sending their own documents
(document types asked per member of a role), through every step to the end."""

from __future__ import annotations

import time

from app.auth import viewer_from_token
from app.consumers import install_consumers
from app.models import Credential, Document, DocumentType, Notification, StepDocumentType
from app.security import usable
from app.services import members
from app.subscriptions import topics
from tests.documents_support import make_pdf, review, upload
from tests.factories import make_agent, make_client, make_dossier, make_product
from tests.helpers import count_statements, error_codes, gql
from tests.notifications_support import parts
from tests.test_accounts import ACCEPT, NEW_PASSWORD, link_token, mails
from tests.ws_support import Feed, serve, settings_with, wait_until, ws_session

ADD = """
mutation($input: AddDossierMemberInput!) {
  addDossierMember(input: $input) {
    member { id role client { id fullName } } invited userErrors { code field message } }
}
"""
REMOVE = """
mutation($id: ID!) {
  removeDossierMember(input: {memberId: $id}) { member { removedAt } userErrors { code } } }
"""
VIEW = """
query($id: ID!) {
  dossier(id: $id) {
    id status members { id role client { fullName } }
    currentStep { position documents { id status member { id role } documentType { code } } }
  }
}
"""
MINE = "{ dossiers { totalCount nodes { id } } }"
MESSAGE_ADDED = """
subscription($dossierId: ID!) { messageAdded(dossierId: $dossierId) { node { content } } }
"""


async def _family_product():
    """Step 1: the client's passport and each child's birth certificate and the spouse's
    passport; step 2: proof of address (the dossier's own)."""
    product = await make_product((("pdf",), ("pdf",)))
    links = await StepDocumentType.filter(
        step_id__in=[ps.step_id for ps in await product.product_steps.all()]
    ).order_by("created_at")
    first_step = links[0].step_id
    for code, role in (("BIRTH_CERTIFICATE", "CHILD"), ("SPOUSE_PASSPORT", "SPOUSE")):
        document_type = await DocumentType.create(
            code=f"{code}_{product.code}",
            label=code.replace("_", " ").title(),
            max_file_size_mb=5,
            allowed_extensions=["pdf"],
            per_member_role=role,
        )
        await StepDocumentType.create(step_id=first_step, document_type_id=document_type.id)
    return product


async def _add(client, token, dossier_id, email, name, role) -> dict:
    data = await gql(
        client,
        ADD,
        {"input": {"dossierId": str(dossier_id), "email": email, "fullName": name, "role": role}},
        token=token,
    )
    return data["addDossierMember"]


async def _send_and_approve(client, sender_token, agent_token, document_id) -> dict:
    sent = await upload(client, sender_token, document_id, make_pdf("scan"), "scan.pdf")
    assert sent["userErrors"] == [], sent
    return await review(client, agent_token, sent["version"]["id"], "APPROVED")


async def test_a_family_dossier_with_two_members_runs_to_the_end(client, smtp):
    install_consumers()
    owner = await make_client()
    spouse = await make_client()  # already a client of the firm
    agent = await make_agent()
    dossier = await make_dossier(owner, await _family_product())

    added = await _add(client, owner.token, dossier.id, spouse.email, "Sam Spouse", "SPOUSE")
    assert added["userErrors"] == []
    assert added["invited"] is False
    child = await _add(client, owner.token, dossier.id, "kid@example.com", "Kim Kid", "CHILD")
    assert child["invited"] is True
    credential = await Credential.get(email="kid@example.com")
    assert not usable(credential.password_hash)
    to_kid = [m for m in await mails(smtp) if m["To"] == "kid@example.com"]
    (invitation,) = [m for m in to_kid if "/accept-invitation?token=" in parts(m)[0]]
    (told,) = [m for m in to_kid if m not in (invitation,)]  # added to the dossier
    assert "Kim Kid" in parts(told)[0]
    assert owner.obj.full_name in parts(told)[0]  # whose dossier it is
    accepted = (
        await gql(client, ACCEPT, {"token": link_token(invitation), "password": NEW_PASSWORD})
    )["acceptInvitation"]
    kid_token = accepted["token"]

    # everyone sees the dossier; the first step asks each member for their own document
    view = (await gql(client, VIEW, {"id": str(dossier.id)}, token=spouse.token))["dossier"]
    assert {m["role"] for m in view["members"]} == {"SPOUSE", "CHILD"}
    documents = view["currentStep"]["documents"]
    by_member = {(d["member"] or {}).get("role"): d for d in documents}
    assert set(by_member) == {None, "SPOUSE", "CHILD"}
    for token in (kid_token, spouse.token):
        assert (await gql(client, MINE, token=token))["dossiers"]["totalCount"] == 1

    # a member sends their own document, never another's
    refused = await upload(client, kid_token, by_member["SPOUSE"]["id"], make_pdf(), "x.pdf")
    assert [e["code"] for e in refused["userErrors"]] == ["NOT_YOURS"]
    await _send_and_approve(client, spouse.token, agent.token, by_member["SPOUSE"]["id"])
    await _send_and_approve(client, kid_token, agent.token, by_member["CHILD"]["id"])
    done = await _send_and_approve(client, owner.token, agent.token, by_member[None]["id"])
    assert done["dossier"]["currentStep"]["position"] == 2

    view = (await gql(client, VIEW, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    (last,) = view["currentStep"]["documents"]
    assert last["member"] is None
    finished = await _send_and_approve(client, owner.token, agent.token, last["id"])
    assert finished["dossier"]["status"] == "COMPLETED"

    # the members were told, as the client was
    for account_id in (spouse.obj.id, credential.profile_id):
        kinds = set(
            await Notification.filter(user_id=account_id).values_list("template_code", flat=True)
        )
        assert {"document_approved", "dossier_completed"} <= kinds


async def test_only_the_client_and_agents_manage_members(client):
    owner, spouse, stranger = await make_client(), await make_client(), await make_client()
    dossier = await make_dossier(owner)
    added = await _add(client, owner.token, dossier.id, spouse.email, "Sam", "SPOUSE")
    member_id = added["member"]["id"]
    # a member may not add or remove anyone
    by_member = await _add(client, spouse.token, dossier.id, "x@example.com", "X", "CHILD")
    assert [e["code"] for e in by_member["userErrors"]] == ["NOT_ALLOWED"]
    # a stranger is answered as for a missing dossier
    body = await gql(
        client,
        ADD,
        {
            "input": {
                "dossierId": str(dossier.id),
                "email": "y@example.com",
                "fullName": "Y",
                "role": "CHILD",
            }
        },
        token=stranger.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["NOT_FOUND"]
    cases = [
        ({"email": spouse.email, "role": "SPOUSE"}, "ALREADY_MEMBER"),
        ({"email": owner.email, "role": "SPOUSE"}, "IS_OWNER"),
        ({"email": "z@example.com", "role": "ASTRONAUT"}, "UNKNOWN_ROLE"),
        ({"email": (await make_agent()).email, "role": "SPOUSE"}, "STAFF_EMAIL"),
    ]
    for extra, code in cases:
        answer = await _add(
            client, owner.token, dossier.id, extra["email"], "Someone", extra["role"]
        )
        assert [e["code"] for e in answer["userErrors"]] == [code], (extra, answer)
    removed = (await gql(client, REMOVE, {"id": member_id}, token=owner.token))[
        "removeDossierMember"
    ]
    assert removed["userErrors"] == []
    assert removed["member"]["removedAt"] is not None
    assert (await gql(client, MINE, token=spouse.token))["dossiers"]["totalCount"] == 0
    gone = await gql(client, VIEW, {"id": str(dossier.id)}, token=spouse.token, expect_errors=True)
    assert error_codes(gone) == ["NOT_FOUND"]


async def test_removing_a_member_ends_their_live_subscription(client, live_server):
    owner, spouse = await make_client(), await make_client()
    dossier = await make_dossier(owner)
    member_id = (await _add(client, owner.token, dossier.id, spouse.email, "Sam", "SPOUSE"))[
        "member"
    ]["id"]
    settings = settings_with(subscription_recheck_seconds=0.2)
    async with serve(settings) as server, ws_session(server.ws_url, spouse.token) as ws:
        feed = Feed(ws, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        hub = server.app.state.hub
        channel = topics.dossier_messages(dossier.id)
        await wait_until(lambda: hub.subscriber_count(channel) >= 1, what="subscribed")
        await gql(client, REMOVE, {"id": member_id}, token=owner.token)
        started = time.monotonic()
        items, ended = await feed.until_end(within=3)
        assert time.monotonic() - started < 1.5
        assert items == []
        assert ended.error is not None


PAGE = """
query($id: ID!) {
  dossier(id: $id) {
    id members { id role client { fullName } }
    documents { id status member { id role client { fullName } } documentType { code } }
  }
}
"""


async def _dossier_with_members(count: int):
    owner = await make_client()
    dossier = await make_dossier(owner, await _family_product())
    for n in range(count):
        member = await make_client()
        await members.add_member(
            await viewer_from_token(owner.token),
            dossier.id,
            email=member.email,
            full_name=f"Child {n}",
            role="CHILD",
        )
    return owner, dossier


async def test_the_dossier_page_with_members_costs_the_same_for_1_or_5(client):
    costs = {}
    for count in (1, 5):
        owner, dossier = await _dossier_with_members(count)
        await gql(client, PAGE, {"id": str(dossier.id)}, token=owner.token)  # warm up
        with count_statements() as statements:
            data = await gql(client, PAGE, {"id": str(dossier.id)}, token=owner.token)
        page = data["dossier"]
        assert len(page["members"]) == count
        asked = [d for d in page["documents"] if d["member"]]
        assert len(asked) == count  # one birth certificate per child
        assert {d["member"]["client"]["fullName"] for d in asked} == {
            m["client"]["fullName"] for m in page["members"]
        }
        costs[count] = len(statements)
    assert costs[1] == costs[5], costs
    assert costs[5] <= 8, costs


REQUEST = """
mutation($input: RequestDocumentInput!) {
  requestDocument(input: $input) { document { id member { id role } label } userErrors { code } }
}
"""


async def test_an_agent_asks_one_member_for_a_document(client):
    owner, spouse, child = await make_client(), await make_client(), await make_client()
    agent = await make_agent()
    dossier = await make_dossier(owner)
    spouse_member = (await _add(client, owner.token, dossier.id, spouse.email, "S", "SPOUSE"))[
        "member"
    ]
    await _add(client, owner.token, dossier.id, child.email, "C", "CHILD")
    ask = {
        "stepInstanceId": str(dossier.current_step_instance_id),
        "label": "Marriage certificate",
        "allowedExtensions": ["pdf"],
        "maxFileSizeMb": 5,
    }
    asked = (
        await gql(
            client, REQUEST, {"input": {**ask, "memberId": spouse_member["id"]}}, token=agent.token
        )
    )["requestDocument"]
    assert asked["userErrors"] == []
    assert asked["document"]["member"] == {"id": spouse_member["id"], "role": "SPOUSE"}
    document_id = asked["document"]["id"]
    refused = await upload(client, child.token, document_id, make_pdf(), "x.pdf")
    assert [e["code"] for e in refused["userErrors"]] == ["NOT_YOURS"]
    sent = await upload(client, spouse.token, document_id, make_pdf("married"), "m.pdf")
    assert sent["userErrors"] == []
    # a member of another dossier (or none) is refused, and nothing is asked
    other = await make_dossier(await make_client())
    stranger = (await _add(client, agent.token, other.id, child.email, "C", "CHILD"))["member"]
    for member_id in (stranger["id"], "not-an-id"):
        body = (
            await gql(client, REQUEST, {"input": {**ask, "memberId": member_id}}, token=agent.token)
        )["requestDocument"]
        assert [e["code"] for e in body["userErrors"]] == ["UNKNOWN_MEMBER"]
    assert await Document.filter(dossier_id=dossier.id, label="Marriage certificate").count() == 1
