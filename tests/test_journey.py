"""The whole onboarding journey (issue 3), every remote service a real local peer:
admin creates a link → the prospect's email arrives over SMTP → the prospect registers →
Stripe (stand-in) checkout → a signed `checkout.session.completed` → the client logs in
and sees an IN_PROGRESS dossier with its first step's documents."""

from __future__ import annotations

import re

import httpx
import pytest

from app.main import create_app
from app.services import delivery
from tests import stripe_support as ss
from tests.conftest import stripe_settings
from tests.factories import make_admin, make_product
from tests.helpers import gql
from tests.notifications_support import SmtpPeer, parts

CREATE_LINK = """
mutation($input: CreatePaymentLinkInput!) {
  createPaymentLink(input: $input) { paymentLink { id } userErrors { code } }
}
"""
REGISTER = """
mutation($input: RegisterWithPaymentLinkInput!) {
  registerWithPaymentLink(input: $input) {
    token checkoutUrl order { id } userErrors { code message }
  }
}
"""
LOGIN = """
mutation($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) { token userErrors { code } }
}
"""
DASHBOARD = """
{ me { ... on Profile { fullName status } }
  dossiers { nodes { status product { code }
    currentStep { position step { code } documents { status documentType { code } } } } }
  orders { nodes { status } } }
"""


@pytest.fixture
def smtp():
    peer = SmtpPeer().start()
    yield peer
    peer.stop()


async def test_admin_link_to_paid_dossier(stand_in, peer, smtp):
    settings = stripe_settings(
        stand_in, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False
    )
    app = create_app(settings, manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        admin = await make_admin()
        product = await make_product(steps=[("pdf", "jpg,png"), ("pdf",), ()])
        created = await gql(
            client,
            CREATE_LINK,
            {
                "input": {
                    "productId": str(product.id),
                    "prospectEmail": "lea@example.com",
                    "prospectName": "Léa Martin",
                }
            },
            token=admin.token,
        )
        assert created["createPaymentLink"]["userErrors"] == []

        # the worker delivers the email; the prospect reads it in their mailbox
        report = await delivery.deliver_due(settings=settings)
        assert report.sent >= 1
        mails = [m for m in smtp.accepted if m["To"] == "lea@example.com"]
        assert len(mails) == 1
        text, html = parts(mails[0])
        link = re.search(r"https?://\S+/register\?token=([\w.-]+)", text)
        assert link, text
        assert link.group(0) in html

        registered = await gql(
            client,
            REGISTER,
            {
                "input": {
                    "token": link.group(1),
                    "fullName": "Léa Martin",
                    "phone": "+33 6 11 22 33 44",
                    "password": "tulip-garden-7421",
                }
            },
        )
        payload = registered["registerWithPaymentLink"]
        assert payload["userErrors"] == []
        assert payload["checkoutUrl"].startswith("https://checkout.stripe.test/")

        # Stripe tells us the session was paid
        session = next(iter(peer.sessions.values()))
        assert session["client_reference_id"] == payload["order"]["id"]
        paid = {
            **session,
            "payment_status": "paid",
            "status": "complete",
            "payment_intent": "pi_journey_1",
        }
        body = ss.dumps(ss.event("checkout.session.completed", paid))
        response = await client.post(
            "/webhooks/stripe", content=body, headers={"stripe-signature": ss.sign(body)}
        )
        assert response.status_code == 200

        # the client logs in and finds the dossier at its first step
        credentials = {"email": "lea@example.com", "password": "tulip-garden-7421"}
        login = await gql(client, LOGIN, credentials)
        token = login["login"]["token"]
        dashboard = await gql(client, DASHBOARD, token=token)
        assert dashboard["me"] == {"fullName": "Léa Martin", "status": "ACTIVE"}
        assert dashboard["orders"]["nodes"] == [{"status": "PAID"}]
        [dossier] = dashboard["dossiers"]["nodes"]
        assert dossier["status"] == "IN_PROGRESS"
        assert dossier["product"]["code"] == product.code
        assert dossier["currentStep"]["position"] == 1
        documents = dossier["currentStep"]["documents"]
        assert len(documents) == 2
        assert {d["status"] for d in documents} == {"PENDING"}

        # and the payment confirmation reached the client by email too
        await delivery.deliver_due(settings=settings)
        assert any(m["To"] == "lea@example.com" and m is not mails[0] for m in smtp.accepted)
