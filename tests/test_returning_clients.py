"""Returning clients (issue 17, item 1): a payment link for an e-mail that already has an
account says "log in to pay", the logged-in client redeems it for a new order and a new
dossier; links are revoked and resent; a link may carry its own price. Against the
Stripe stand-in, webhooks signed as Stripe signs them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.consumers import install_consumers
from app.models import Credential, Dossier, Event, Order, PaymentLink
from app.models.enums import DossierStatus, EventType, OrderStatus
from app.services.delivery import deliver_due
from app.services.payments.links import token_digest
from tests import stripe_support as ss
from tests.factories import make_admin, make_agent, make_client, make_product
from tests.helpers import gql
from tests.notifications_support import parts, peer_settings
from tests.test_payments import (
    PREVIEW,
    new_link,
    paid_session,
    post_event,
    register,
)

CREATE = """
mutation($input: CreatePaymentLinkInput!) {
  createPaymentLink(input: $input) {
    paymentLink { id token url state amount }
    existingClient
    userErrors { field code message }
  }
}
"""
REDEEM = """
mutation($token: String!) {
  redeemPaymentLink(input: {token: $token}) {
    order { id status amount client { id } }
    checkoutUrl
    userErrors { code message }
  }
}
"""
REVOKE = """
mutation($id: ID!) {
  revokePaymentLink(input: {paymentLinkId: $id}) {
    paymentLink { state revokedAt } userErrors { code } }
}
"""
RESEND = """
mutation($id: ID!, $hours: Int) {
  resendPaymentLink(input: {paymentLinkId: $id, expiresInHours: $hours}) {
    paymentLink { state token expiresAt } existingClient userErrors { code } }
}
"""
MINE = """
{ orders { totalCount nodes { status amount dossierId } }
  dossiers { totalCount nodes { id status product { code } } } }
"""


@pytest.fixture(autouse=True)
def _consumers():
    install_consumers()  # what create_app and the worker do


async def _link_for(client, email: str, product, **extra) -> dict:
    admin = await make_admin()
    data = await gql(
        client,
        CREATE,
        {
            "input": {
                "productId": str(product.id),
                "prospectEmail": email,
                "prospectName": "Returning Client",
                **extra,
            }
        },
        token=admin.token,
    )
    return data["createPaymentLink"]


async def _pay(sclient, peer, order_id: str) -> None:
    session = paid_session(peer, order_id)
    response = await post_event(sclient, ss.event("checkout.session.completed", session))
    assert response.json()["outcome"] == "processed"


async def test_a_returning_client_redeems_a_link_and_gets_a_second_dossier(sclient, peer):
    # a first purchase, the usual way
    first_token, _ = await new_link(sclient)
    registration = await register(sclient, first_token)
    await _pay(sclient, peer, registration["order"]["id"])
    credential = await Credential.get(profile_id=registration["profile"]["id"])

    renewal = await make_product()
    created = await _link_for(sclient, credential.email.upper(), renewal)
    assert created["userErrors"] == []
    assert created["existingClient"] is True
    assert created["paymentLink"]["url"].split("?")[0].endswith("/register")
    token = created["paymentLink"]["token"]
    preview = await gql(sclient, "query($t: String!) { paymentLink(token: $t) { existingClient } }",
                        {"t": token})  # fmt: skip
    assert preview["paymentLink"]["existingClient"] is True

    # registering again with it says to log in, and leaves the link usable
    again = await register(sclient, token)
    assert [e["code"] for e in again["userErrors"]] == ["EMAIL_TAKEN"]
    assert "log in" in again["userErrors"][0]["message"]
    assert (await PaymentLink.get(token=token_digest(token))).used_at is None

    redeemed = (await gql(sclient, REDEEM, {"token": token}, token=registration["token"]))[
        "redeemPaymentLink"
    ]
    assert redeemed["userErrors"] == []
    assert redeemed["order"]["status"] == "PENDING"
    assert redeemed["order"]["client"]["id"] == registration["profile"]["id"]
    assert redeemed["checkoutUrl"].startswith("https://checkout.stripe.test/")
    await _pay(sclient, peer, redeemed["order"]["id"])

    mine = await gql(sclient, MINE, token=registration["token"])
    assert mine["orders"]["totalCount"] == 2
    assert {o["status"] for o in mine["orders"]["nodes"]} == {"PAID"}
    assert mine["dossiers"]["totalCount"] == 2
    assert {d["product"]["code"] for d in mine["dossiers"]["nodes"]} >= {renewal.code}
    assert all(d["status"] == "IN_PROGRESS" for d in mine["dossiers"]["nodes"])

    # once used, it is used
    twice = (await gql(sclient, REDEEM, {"token": token}, token=registration["token"]))[
        "redeemPaymentLink"
    ]
    assert [e["code"] for e in twice["userErrors"]] == ["LINK_USED"]


async def test_the_email_of_a_returning_client_says_log_in_and_pay(client, smtp):
    account = await make_client()
    product = await make_product()
    created = await _link_for(client, account.email, product)
    token = created["paymentLink"]["token"]
    assert (await deliver_due(settings=peer_settings(smtp=smtp))).sent == 1
    (message,) = smtp.accepted
    assert message["Subject"] == "À régler : Product"
    text, _html = parts(message)
    assert "Connectez-vous" in text
    assert f"/pay?token={token}" in text
    event = await Event.get(event_type=EventType.PAYMENT_LINK_CREATED)
    assert token not in str(event.payload)


async def test_a_link_for_another_email_is_refused_and_left_unused(sclient):
    owner = await make_client()
    other = await make_client()
    token = (await _link_for(sclient, owner.email, await make_product()))["paymentLink"]["token"]
    body = (await gql(sclient, REDEEM, {"token": token}, token=other.token))["redeemPaymentLink"]
    assert [e["code"] for e in body["userErrors"]] == ["LINK_FOR_ANOTHER_ACCOUNT"]
    assert body["order"] is None
    assert (await PaymentLink.get(token=token_digest(token))).used_at is None
    assert await Order.filter(user_id=other.obj.id).count() == 0
    agent = await make_agent()
    body = (await gql(sclient, REDEEM, {"token": token}, token=agent.token))["redeemPaymentLink"]
    assert [e["code"] for e in body["userErrors"]] == ["NOT_A_CLIENT"]


async def test_a_staff_email_gets_no_link(client):
    agent = await make_agent()
    created = await _link_for(client, agent.email, await make_product())
    assert [e["code"] for e in created["userErrors"]] == ["STAFF_EMAIL"]
    assert await PaymentLink.all().count() == 0


async def test_a_revoked_link_can_no_longer_be_used(sclient):
    admin = await make_admin()
    token, _ = await new_link(sclient)
    link = await PaymentLink.get(token=token_digest(token))
    revoked = (await gql(sclient, REVOKE, {"id": str(link.id)}, token=admin.token))[
        "revokePaymentLink"
    ]
    assert revoked["userErrors"] == []
    assert revoked["paymentLink"]["state"] == "REVOKED"
    assert (await gql(sclient, PREVIEW, {"token": token}))["paymentLink"]["state"] == "REVOKED"
    refused = await register(sclient, token)
    assert [e["code"] for e in refused["userErrors"]] == ["LINK_REVOKED"]
    assert await Credential.all().count() == 2  # the admin's and nobody else's
    # a resend of a revoked link is refused too
    resent = (await gql(sclient, RESEND, {"id": str(link.id)}, token=admin.token))[
        "resendPaymentLink"
    ]
    assert [e["code"] for e in resent["userErrors"]] == ["LINK_REVOKED"]
    assert await Event.filter(event_type=EventType.PAYMENT_LINK_REVOKED).count() == 1


async def test_a_used_link_cannot_be_revoked(sclient):
    admin = await make_admin()
    token, _ = await new_link(sclient)
    assert (await register(sclient, token))["userErrors"] == []
    link = await PaymentLink.get(token=token_digest(token))
    body = (await gql(sclient, REVOKE, {"id": str(link.id)}, token=admin.token))[
        "revokePaymentLink"
    ]
    assert [e["code"] for e in body["userErrors"]] == ["LINK_USED"]
    assert (await PaymentLink.get(id=link.id)).revoked_at is None


async def test_a_resend_mails_the_same_link_and_can_revive_an_expired_one(client, smtp):
    admin = await make_admin()
    product = await make_product()
    created = await _link_for(client, "again@example.com", product, expiresInHours=1)
    token, link_id = created["paymentLink"]["token"], created["paymentLink"]["id"]
    await PaymentLink.filter(id=link_id).update(expires_at=_hours_from_now(-1))
    expired = (await gql(client, RESEND, {"id": link_id}, token=admin.token))["resendPaymentLink"]
    assert [e["code"] for e in expired["userErrors"]] == ["LINK_EXPIRED"]
    revived = (await gql(client, RESEND, {"id": link_id, "hours": 48}, token=admin.token))[
        "resendPaymentLink"
    ]
    assert revived["userErrors"] == []
    assert revived["paymentLink"]["state"] == "VALID"
    assert revived["paymentLink"]["token"] == token
    assert revived["existingClient"] is False
    assert (await deliver_due(settings=peer_settings(smtp=smtp))).sent == 2
    assert all(token in parts(m)[0] for m in smtp.accepted)


async def test_a_link_made_before_derived_secrets_is_resent_with_a_new_one(client):
    """Migration 0015 kept such links working by their hash; a resend replaces them."""
    admin = await make_admin()
    product = await make_product()
    legacy = "legacy-random-secret-" + uuid.uuid4().hex
    link = await PaymentLink.create(
        token=token_digest(legacy),
        product_id=product.id,
        prospect_email="legacy@example.com",
        prospect_name="Legacy",
        expires_at=_hours_from_now(24),
    )
    assert (await gql(client, PREVIEW, {"token": legacy}))["paymentLink"]["state"] == "VALID"
    resent = (await gql(client, RESEND, {"id": str(link.id)}, token=admin.token))[
        "resendPaymentLink"
    ]
    fresh = resent["paymentLink"]["token"]
    assert fresh
    assert fresh != legacy
    body = await gql(client, PREVIEW, {"token": legacy}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await gql(client, PREVIEW, {"token": fresh}))["paymentLink"]["state"] == "VALID"


UPDATE_PRODUCT = """
mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) {
    product { linkAmountMin linkAmountMax allowPromotionCodes } userErrors { field code } }
}
"""


async def _set_product(client, product, **fields) -> dict:
    admin = await make_admin()
    data = await gql(
        client, UPDATE_PRODUCT, {"input": {"id": str(product.id), **fields}}, token=admin.token
    )
    return data["updateProduct"]


async def test_a_link_with_its_own_price_charges_it(sclient, peer):
    product = await make_product()  # 10,000 cents
    fixed = await _link_for(sclient, "quote@example.com", product, amount=4_250)
    assert [e["code"] for e in fixed["userErrors"]] == ["INVALID_AMOUNT"]  # no range set
    ranged = await _set_product(sclient, product, linkAmountMin=2_000, linkAmountMax=12_000)
    assert ranged == {
        "product": {"linkAmountMin": 2_000, "linkAmountMax": 12_000, "allowPromotionCodes": False},
        "userErrors": [],
    }
    created = await _link_for(sclient, "quote@example.com", product, amount=4_250)
    assert created["paymentLink"]["amount"] == 4_250
    token = created["paymentLink"]["token"]
    assert (await gql(sclient, PREVIEW, {"token": token}))["paymentLink"]["priceAmount"] == 4_250
    registration = await register(sclient, token)
    assert registration["order"]["amount"] == 4_250
    session = next(
        s for s in peer.sessions.values() if s["client_reference_id"] == registration["order"]["id"]
    )
    assert session["amount_total"] == 4_250
    await _pay(sclient, peer, registration["order"]["id"])
    order = await Order.get(id=registration["order"]["id"])
    assert order.status == OrderStatus.PAID
    assert (await Dossier.get(id=order.dossier_id)).status == DossierStatus.IN_PROGRESS

    for amount in (0, 1_999, 12_001):
        bad = await _link_for(sclient, "quote@example.com", product, amount=amount)
        assert [e["code"] for e in bad["userErrors"]] == ["INVALID_AMOUNT"]
    assert await PaymentLink.all().count() == 1
    inverted = await _set_product(sclient, product, linkAmountMin=5_000, linkAmountMax=4_000)
    assert [e["code"] for e in inverted["userErrors"]] == ["INVALID_AMOUNT"]


async def test_a_promotion_code_is_what_the_order_records(sclient, peer):
    product = await make_product()
    assert (await _set_product(sclient, product, allowPromotionCodes=True))["userErrors"] == []
    token = (await _link_for(sclient, "promo@example.com", product))["paymentLink"]["token"]
    registration = await register(sclient, token)
    order_id = registration["order"]["id"]
    session = next(s for s in peer.sessions.values() if s["client_reference_id"] == order_id)
    assert session["allow_promotion_codes"] is True  # what Stripe was asked
    # Stripe charged less: the code took 30 %
    paid = paid_session(peer, order_id, amount_total=7_000)
    response = await post_event(sclient, ss.event("checkout.session.completed", paid))
    assert response.json()["outcome"] == "processed"
    order = await Order.get(id=order_id)
    assert order.status == OrderStatus.PAID
    assert order.amount == 7_000
    event = await Event.get(event_type=EventType.PAYMENT_SUCCEEDED, entity_id=order.id)
    assert event.payload["amount"] == 7_000
    assert event.payload["listAmount"] == 10_000


@pytest.mark.parametrize("charged", [7_000, 10_001])
async def test_a_session_charging_another_amount_opens_nothing(sclient, peer, charged):
    """Less without promotion codes, or more than the order: not this order's payment."""
    product = await make_product()
    token = (await _link_for(sclient, "other@example.com", product))["paymentLink"]["token"]
    order_id = (await register(sclient, token))["order"]["id"]
    paid = paid_session(peer, order_id, amount_total=charged)
    response = await post_event(sclient, ss.event("checkout.session.completed", paid))
    assert response.json()["outcome"] == "unmatched"
    order = await Order.get(id=order_id)
    assert order.status == OrderStatus.PENDING
    assert order.amount == 10_000
    assert await Dossier.filter(user_id=order.user_id).count() == 0


async def test_an_archived_product_is_not_sold(sclient):
    account = await make_client()
    product = await make_product()
    token = (await _link_for(sclient, account.email, product))["paymentLink"]["token"]
    admin = await make_admin()
    archived = await gql(
        sclient,
        "mutation($id: ID!) { archiveProduct(input: {productId: $id}) { userErrors { code } } }",
        {"id": str(product.id)},
        token=admin.token,
    )
    assert archived["archiveProduct"]["userErrors"] == []
    body = (await gql(sclient, REDEEM, {"token": token}, token=account.token))["redeemPaymentLink"]
    assert [e["code"] for e in body["userErrors"]] == ["PRODUCT_INACTIVE"]
    again = await _link_for(sclient, account.email, product)
    assert [e["code"] for e in again["userErrors"]] == ["PRODUCT_INACTIVE"]
    assert await Order.filter(user_id=account.obj.id).count() == 0


def _hours_from_now(hours: int) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)
