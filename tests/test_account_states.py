"""Account states (issue 16, item 7): a client whose account is not active (PENDING: has
never paid; SUSPENDED: a payment failed) may log in, see and pay its own orders, resume
checkout and edit its profile, nothing else; over HTTP and over a WebSocket."""

from __future__ import annotations

import pytest

from app.models import Order
from app.models.enums import OrderStatus, UserStatus
from tests.factories import make_client, make_dossier, make_product
from tests.helpers import error_codes, gql
from tests.test_chat import MESSAGE_ADDED
from tests.ws_support import Feed, error_codes_of, ws_session

ALLOWED = [
    "{ me { __typename ... on Profile { status } } }",
    "{ orders(first: 5) { nodes { id status } } }",
    "mutation { updateMyProfile(input: {fullName: 'Still Pending'}) { userErrors { code } } }",
    "{ mySessions(first: 5) { nodes { id } } }",
    "{ notifications(first: 5) { nodes { id } } }",
]
REFUSED = [
    "{ dossiers(first: 5) { nodes { id } } }",
    "{ events(first: 5) { nodes { id } } }",
    "{ me { __typename } dossiers(first: 1) { totalCount } }",  # one refused field: all
    "query Q { ...Root } fragment Root on Query { dossiers(first: 1) { totalCount } }",
]


def _quoted(query: str) -> str:
    return query.replace("'", '"')


@pytest.mark.parametrize("status", [UserStatus.PENDING, UserStatus.SUSPENDED])
async def test_an_inactive_client_may_only_see_its_orders_and_profile(client, status):
    account = await make_client(status)
    product = await make_product()
    order = await Order.create(
        user_id=account.obj.id,
        product_id=product.id,
        amount=product.price_amount,
        currency=product.currency,
        status=OrderStatus.PENDING,
    )
    for query in ALLOWED:
        await gql(client, _quoted(query), token=account.token)  # no errors
    seen = await gql(client, "query($id: ID!) { order(id: $id) { id } }", {"id": str(order.id)},
                     token=account.token)  # fmt: skip
    assert seen["order"]["id"] == str(order.id)
    for query in REFUSED:
        body = await gql(client, _quoted(query), token=account.token, expect_errors=True)
        assert set(error_codes(body)) == {"FORBIDDEN"}, (query, body)
        if "dossiers" in query:  # a client's own list: refused for the account's state
            assert status.value.lower() in body["errors"][0]["message"]


async def test_the_same_queries_work_once_the_account_is_active(client):
    account = await make_client(UserStatus.ACTIVE)
    for query in REFUSED:
        if "events" not in query:  # agents only, whatever the state
            await gql(client, _quoted(query), token=account.token)


async def test_a_suspended_client_cannot_read_or_follow_its_dossier(client, live_server):
    account = await make_client(UserStatus.SUSPENDED)
    dossier = await make_dossier(account)
    body = await gql(
        client,
        "query($id: ID!) { dossier(id: $id) { id } }",
        {"id": str(dossier.id)},
        token=account.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    async with ws_session(live_server.ws_url, account.token) as session:
        feed = Feed(session, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        items, ended = await feed.until_end(within=3)
        assert items == []
        assert error_codes_of(ended.error) == ["FORBIDDEN"]
