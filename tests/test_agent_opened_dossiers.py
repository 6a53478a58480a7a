"""Dossiers without online payment (issue 17, item 2): an agent records a bank transfer,
cash or a waived fee; the client is found by e-mail or created and invited; the order is
PAID with its method and who recorded it, and the dossier opens as a paid checkout's."""

from __future__ import annotations

import pytest

from app.consumers import install_consumers
from app.models import Credential, Dossier, Event, Order, Profile
from app.models.enums import DossierStatus, EventType, OrderStatus, PaymentMethod, UserStatus
from app.security import usable
from tests.factories import make_admin, make_agent, make_client, make_dossier, make_product
from tests.helpers import gql
from tests.notifications_support import parts
from tests.test_accounts import ACCEPT, NEW_PASSWORD, link_token, mails

OPEN = """
mutation($input: OpenDossierInput!) {
  openDossier(input: $input) {
    dossier { id status product { code } client { id } }
    order { id status amount paymentMethod paymentReference note recordedBy { id } }
    client { id fullName }
    invited
    userErrors { field code message }
  }
}
"""
MY_ORDERS = """
{ orders { nodes { id paymentMethod paymentReference note recordedBy { id } } }
  dossiers { totalCount nodes { id status } } }
"""


@pytest.fixture(autouse=True)
def _consumers():
    install_consumers()


def _invitations(messages) -> list:
    return [m for m in messages if "/accept-invitation?token=" in parts(m)[0]]


def _input(product, **extra) -> dict:
    return {
        "input": {
            "clientEmail": "Helene.Dupont@Example.com",
            "clientName": "Hélène Dupont",
            "productId": str(product.id),
            "paymentMethod": "BANK_TRANSFER",
            "reference": "VIR-2026-0042",
            "note": "Paid at the office, receipt in the drawer",
            **extra,
        }
    }


async def test_a_new_client_paying_by_transfer_gets_a_dossier_and_an_invitation(client, smtp):
    agent = await make_agent()
    product = await make_product()
    opened = (await gql(client, OPEN, _input(product), token=agent.token))["openDossier"]
    assert opened["userErrors"] == []
    assert opened["invited"] is True
    assert opened["order"]["status"] == "PAID"
    assert opened["order"]["paymentMethod"] == "BANK_TRANSFER"
    assert opened["order"]["paymentReference"] == "VIR-2026-0042"
    assert opened["order"]["recordedBy"] == {"id": str(agent.obj.id)}
    assert opened["order"]["amount"] == product.price_amount
    assert opened["dossier"]["status"] == "IN_PROGRESS"
    assert opened["dossier"]["client"]["id"] == opened["client"]["id"]

    profile = await Profile.get(id=opened["client"]["id"])
    assert profile.full_name == "Hélène Dupont"
    assert profile.status == UserStatus.ACTIVE
    credential = await Credential.get(profile_id=profile.id)
    assert credential.email == "helene.dupont@example.com"
    assert not usable(credential.password_hash)
    # the same fulfilment as a paid checkout: PAYMENT_SUCCEEDED by the agent, then the dossier
    paid = await Event.get(event_type=EventType.PAYMENT_SUCCEEDED, entity_id=opened["order"]["id"])
    assert paid.actor_id == agent.obj.id
    assert paid.payload["method"] == "BANK_TRANSFER"
    assert await Event.filter(event_type=EventType.DOSSIER_CREATED).count() == 1

    # the invitation reaches the client, who chooses a password and finds the dossier
    (invitation,) = _invitations(await mails(smtp))
    assert invitation["To"] == "helene.dupont@example.com"
    accepted = (
        await gql(client, ACCEPT, {"token": link_token(invitation), "password": NEW_PASSWORD})
    )["acceptInvitation"]
    assert accepted["userErrors"] == []
    mine = await gql(client, MY_ORDERS, token=accepted["token"])
    assert mine["dossiers"]["totalCount"] == 1
    (order,) = mine["orders"]["nodes"]
    assert order["paymentMethod"] == "BANK_TRANSFER"
    assert order["note"] is None  # the agents' note is not the client's
    assert order["recordedBy"] is None


async def test_an_existing_client_is_reused_and_not_invited(client, smtp):
    agent = await make_agent()
    account = await make_client(UserStatus.SUSPENDED)
    await make_dossier(account)
    product = await make_product()
    opened = (
        await gql(
            client,
            OPEN,
            _input(product, clientEmail=account.email, paymentMethod="CASH", reference=None),
            token=agent.token,
        )
    )["openDossier"]
    assert opened["userErrors"] == []
    assert opened["invited"] is False
    assert opened["client"]["id"] == str(account.obj.id)
    assert (await Profile.get(id=account.obj.id)).status == UserStatus.ACTIVE  # paid now
    assert await Dossier.filter(user_id=account.obj.id).count() == 2
    assert _invitations(await mails(smtp)) == []


async def test_a_waived_fee_is_an_order_of_nothing(client):
    agent = await make_agent()
    product = await make_product()
    opened = (
        await gql(
            client, OPEN, _input(product, paymentMethod="WAIVED", reference=None), token=agent.token
        )
    )["openDossier"]
    assert opened["userErrors"] == []
    order = await Order.get(id=opened["order"]["id"])
    assert order.amount == 0
    assert order.payment_method == PaymentMethod.WAIVED
    assert order.status == OrderStatus.PAID
    assert (await Dossier.get(id=order.dossier_id)).status == DossierStatus.IN_PROGRESS


async def test_bad_input_changes_nothing(client):
    agent = await make_agent()
    admin = await make_admin()
    product = await make_product()
    inactive = await make_product(active=False)
    first = (await gql(client, OPEN, _input(product), token=agent.token))["openDossier"]
    assert first["userErrors"] == []
    before = (await Order.all().count(), await Dossier.all().count(), await Profile.all().count())
    cases = [
        ({"paymentMethod": "CHECKOUT"}, "INVALID_PAYMENT_METHOD"),
        ({"reference": None}, "REQUIRED"),
        ({"reference": "VIR-2026-0042"}, "DUPLICATE_REFERENCE"),  # the same transfer twice
        ({"clientEmail": admin.email, "reference": "VIR-1"}, "STAFF_EMAIL"),
        ({"clientEmail": "not-an-email", "reference": "VIR-2"}, "INVALID_EMAIL"),
        ({"clientName": "Bad\r\nBcc: x@example.org", "reference": "VIR-3"}, "INVALID_TEXT"),
        ({"productId": str(inactive.id), "reference": "VIR-4"}, "PRODUCT_INACTIVE"),
    ]
    for extra, code in cases:
        body = (await gql(client, OPEN, _input(product, **extra), token=agent.token))["openDossier"]
        assert [e["code"] for e in body["userErrors"]] == [code], (extra, body)
        assert body["dossier"] is None
    after = (await Order.all().count(), await Dossier.all().count(), await Profile.all().count())
    assert after == before


async def test_clients_cannot_open_dossiers(client):
    account = await make_client()
    product = await make_product()
    body = await gql(client, OPEN, _input(product), token=account.token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await Dossier.all().count() == 0
