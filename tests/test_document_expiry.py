"""Documents that expire (issue 18, item 5): the date at upload or on approval, refused
when too soon or missing, the worker's reminders at each margin (once each, on the test
clock), the renewal link at the first, and the agents' list of expiring documents."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from app import clock
from app.consumers import install_consumers
from app.models import (
    Credential,
    Document,
    DocumentType,
    DocumentVersion,
    Event,
    Notification,
    PaymentLink,
    StepInstance,
)
from app.models.enums import EventType, NotificationChannel
from app.services import document_expiry
from app.services.delivery import deliver_due
from app.services.payments.links import link_secret
from tests.chasing_support import channels, current_step, documents_of, open_at, product_with
from tests.documents_support import PREFLIGHT, make_pdf, multipart_body
from tests.factories import make_admin, make_agent, make_client, make_product, token_for
from tests.helpers import gql
from tests.notifications_support import SmtpPeer, peer_settings

IN_APP, EMAIL = NotificationChannel.IN_APP, NotificationChannel.EMAIL

UPLOAD = """
mutation Upload($input: UploadDocumentInput!) {
  uploadDocument(input: $input) {
    document { id status expiresOn }
    version { id expiresOn }
    userErrors { field message code }
  }
}
"""
REVIEW = """
mutation Review($input: ReviewDocumentInput!) {
  reviewDocument(input: $input) {
    document { id status expiresOn currentVersion { expiresOn } }
    userErrors { field message code }
  }
}
"""
SET_EXPIRY = """
mutation Set($input: SetDocumentExpiryInput!) {
  setDocumentExpiry(input: $input) {
    version { id expiresOn }
    document { id expiresOn }
    userErrors { field message code }
  }
}
"""
UPDATE_PRODUCT = """
mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) { product { id renewalProduct { id } } userErrors { code } }
}
"""
EXPIRING = """
query($within: Int!, $first: Int, $after: String) {
  expiringDocuments(within: $within, first: $first, after: $after) {
    nodes { id expiresOn }
    pageInfo { hasNextPage endCursor }
  }
}
"""
REDEEM = """
mutation($token: String!) {
  redeemPaymentLink(input: {token: $token}) {
    order { id status client { id } }
    userErrors { code message }
  }
}
"""


@pytest.fixture(autouse=True)
def _consumers():
    install_consumers()  # what create_app and the worker do


@pytest.fixture(scope="module")
def smtp_server():
    peer = SmtpPeer().start()
    yield peer
    peer.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.reset()
    return smtp_server


def days(n: int) -> date:
    return clock.now().date() + timedelta(days=n)


async def upload(
    client: httpx.AsyncClient, token: str, document_id: str, expires_on: date | None
) -> dict[str, Any]:
    variables = {"input": {"documentId": document_id, "file": None}}
    if expires_on is not None:
        variables["input"]["expiresOn"] = expires_on.isoformat()
    body, content_type = multipart_body(
        {"query": UPLOAD, "variables": variables}, [("id.pdf", make_pdf(), "application/pdf")]
    )
    response = await client.post(
        "/graphql",
        content=body,
        headers={"content-type": content_type, "authorization": f"Bearer {token}", **PREFLIGHT},
    )
    assert response.status_code == 200, response.text
    assert not response.json().get("errors"), response.text
    return response.json()["data"]["uploadDocument"]


async def review(
    client: httpx.AsyncClient, token: str, version_id: str, expires_on: date | None = None
) -> dict[str, Any]:
    variables: dict[str, Any] = {"input": {"versionId": version_id, "decision": "APPROVED"}}
    if expires_on is not None:
        variables["input"]["expiresOn"] = expires_on.isoformat()
    return (await gql(client, REVIEW, variables, token=token))["reviewDocument"]


async def expiring_setup(*, min_validity_days: int | None = 30):
    """A client's dossier whose one document's type requires an expiry date."""
    owner = await make_client()
    product = await product_with([(("pdf",), 96)])
    dossier = await open_at(owner, product, clock.now().replace(microsecond=0))
    (document,) = await documents_of(dossier)
    await DocumentType.filter(id=document.document_type_id).update(
        requires_expiry=True, min_validity_days=min_validity_days
    )
    return owner, product, dossier, document


async def expiring_events(document: Document) -> list[Event]:
    return list(
        await Event.filter(entity_id=document.id, event_type=EventType.DOCUMENT_EXPIRING).order_by(
            "created_at"
        )
    )


async def run_pass() -> int:
    return (await document_expiry.send_expiry_reminders()).reminded


async def test_an_expiry_given_at_upload_drives_the_reminders_and_the_renewal_once(client, smtp):
    owner, product, dossier, document = await expiring_setup()
    agent, admin = await make_agent(), await make_admin()
    step = await current_step(dossier)
    await StepInstance.filter(id=step.id).update(assigned_to_id=agent.obj.id)
    renewal = await make_product()
    updated = await gql(
        client,
        UPDATE_PRODUCT,
        {"input": {"id": str(product.id), "renewalProductId": str(renewal.id)}},
        token=admin.token,
    )
    assert updated["updateProduct"]["product"]["renewalProduct"]["id"] == str(renewal.id)

    expires = days(200)
    sent = await upload(client, owner.token, str(document.id), expires)
    assert sent["userErrors"] == []
    assert sent["version"]["expiresOn"] == expires.isoformat()
    approved = await review(client, agent.token, sent["version"]["id"])  # the upload's date
    assert approved["userErrors"] == []
    assert approved["document"]["expiresOn"] == expires.isoformat()

    await deliver_due(settings=peer_settings(smtp))  # what came before: not ours
    smtp.reset()
    assert await run_pass() == 0  # 200 days ahead: nothing yet
    clock.travel(timedelta(days=109))  # 91 days before
    assert await run_pass() == 0
    clock.travel(timedelta(days=1))  # 90 days before
    assert await run_pass() == 1
    assert await run_pass() == 0  # once per margin
    (first,) = await expiring_events(document)
    assert first.payload["marginDays"] == 90
    assert first.payload["daysLeft"] == 90
    assert first.actor_type.value == "SYSTEM"

    # the client, in the app and by e-mail; the step's agent too
    (to_client,) = await Notification.filter(
        template_code="document_expiring", user_id=owner.obj.id
    )
    assert await channels(to_client) == {IN_APP: f"user:{owner.obj.id}", EMAIL: owner.email}
    (to_agent,) = await Notification.filter(template_code="document_expiring_agent")
    assert to_agent.agent_id == agent.obj.id  # type: ignore[attr-defined]

    # the renewal offered once, by the system, to the client as a returning client
    (link,) = await PaymentLink.filter(product_id=renewal.id)
    assert link.prospect_email == owner.email
    assert link.created_by_id is None  # type: ignore[attr-defined]
    (offered,) = await Event.filter(
        entity_id=dossier.id, event_type=EventType.DOSSIER_RENEWAL_OFFERED
    )
    assert offered.payload["paymentLinkId"] == str(link.id)
    assert offered.payload["existingClient"] is True

    await deliver_due(settings=peer_settings(smtp))
    received = {(m["To"], m["Subject"]) for m in smtp.accepted}
    assert any(to == owner.email and "expire" in subject for to, subject in received), received
    assert any(to == agent.email for to, _ in received), received
    assert len([to for to, _ in received if to == owner.email]) == 2  # reminder + link

    clock.travel(timedelta(days=59))  # 31 days before
    assert await run_pass() == 0
    clock.travel(timedelta(days=1))  # 30 days before
    assert await run_pass() == 1
    assert await run_pass() == 0
    assert [e.payload["marginDays"] for e in await expiring_events(document)] == [90, 30]
    assert await Notification.filter(template_code="document_expiring").count() == 2
    assert await PaymentLink.filter(product_id=renewal.id).count() == 1  # at the first only
    clock.travel(timedelta(days=60))
    assert await run_pass() == 0  # nothing left on the schedule

    # the client redeems the renewal link once logged in
    credential = await Credential.get(profile_id=owner.obj.id)
    token = await token_for(credential)
    redeemed = (await gql(client, REDEEM, {"token": link_secret(link.id)}, token=token))[
        "redeemPaymentLink"
    ]
    assert redeemed["userErrors"] == []
    assert redeemed["order"]["client"]["id"] == str(owner.obj.id)


async def test_margins_passed_together_make_one_reminder(client):
    """Approved 20 days before its expiry: one reminder (the 30-day one), not two."""
    owner, _product, _dossier, document = await expiring_setup(min_validity_days=None)
    agent = await make_agent()
    sent = await upload(client, owner.token, str(document.id), None)
    assert (await review(client, agent.token, sent["version"]["id"], days(20)))["userErrors"] == []
    assert await run_pass() == 1
    assert await run_pass() == 0
    assert [e.payload["marginDays"] for e in await expiring_events(document)] == [30]


async def test_a_too_short_expiry_is_refused_and_changes_nothing(client):
    owner, _product, _dossier, document = await expiring_setup(min_validity_days=30)
    agent = await make_agent()
    for too_soon in (days(29), days(0), days(-5)):
        refused = await upload(client, owner.token, str(document.id), too_soon)
        assert [e["code"] for e in refused["userErrors"]] == ["EXPIRES_TOO_SOON"], too_soon
        assert refused["userErrors"][0]["field"][-1] == "expiresOn"
    assert await DocumentVersion.filter(document_id=document.id).count() == 0
    assert (await Document.get(id=document.id)).status.value == "PENDING"

    sent = await upload(client, owner.token, str(document.id), days(30))
    assert sent["userErrors"] == []
    version_id = sent["version"]["id"]
    # the reviewer's date and the agents' correction are held to the same rule
    refused = await review(client, agent.token, version_id, days(10))
    assert [e["code"] for e in refused["userErrors"]] == ["EXPIRES_TOO_SOON"]
    assert (await Document.get(id=document.id)).status.value == "UPLOADED"
    corrected = await gql(
        client,
        SET_EXPIRY,
        {"input": {"versionId": version_id, "expiresOn": days(5).isoformat()}},
        token=agent.token,
    )
    assert [e["code"] for e in corrected["setDocumentExpiry"]["userErrors"]] == ["EXPIRES_TOO_SOON"]
    assert (await DocumentVersion.get(id=version_id)).expires_on == days(30)


async def test_approving_without_a_date_is_refused_when_the_type_requires_one(client):
    owner, _product, _dossier, document = await expiring_setup()
    agent = await make_agent()
    sent = await upload(client, owner.token, str(document.id), None)
    refused = await review(client, agent.token, sent["version"]["id"])
    assert [e["code"] for e in refused["userErrors"]] == ["EXPIRY_REQUIRED"]
    assert (await Document.get(id=document.id)).status.value == "UPLOADED"
    assert await run_pass() == 0

    approved = await review(client, agent.token, sent["version"]["id"], days(365))
    assert approved["userErrors"] == []
    assert approved["document"]["status"] == "APPROVED"
    assert approved["document"]["currentVersion"]["expiresOn"] == days(365).isoformat()


async def test_expiring_documents_soonest_first_for_agents_only(client):
    agent = await make_agent()
    expected: list[tuple[str, str]] = []
    for ahead in (300, 60, 120):
        owner, _product, _dossier, document = await expiring_setup(min_validity_days=None)
        sent = await upload(client, owner.token, str(document.id), None)
        assert (await review(client, agent.token, sent["version"]["id"], days(ahead)))[
            "userErrors"
        ] == []
        if ahead <= 200:
            expected.append((days(ahead).isoformat(), str(document.id)))
    expected.sort()

    first = (await gql(client, EXPIRING, {"within": 200, "first": 1}, token=agent.token))[
        "expiringDocuments"
    ]
    assert [(n["expiresOn"], n["id"]) for n in first["nodes"]] == expected[:1]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (
        await gql(
            client,
            EXPIRING,
            {"within": 200, "first": 10, "after": first["pageInfo"]["endCursor"]},
            token=agent.token,
        )
    )["expiringDocuments"]
    assert [(n["expiresOn"], n["id"]) for n in rest["nodes"]] == expected[1:]

    owner = await make_client()
    body = await gql(client, EXPIRING, {"within": 200}, token=owner.token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
