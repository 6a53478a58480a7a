"""Safe in production by default (issue 16, items 1, 3 and 10): no free checkout, no weak
SECRET_KEY, and HTML pages that cannot be framed, cached or used to load foreign code."""

from __future__ import annotations

import logging
import secrets
import uuid

import httpx
import pytest
from pydantic import ValidationError

from app.main import create_app
from app.models import Order, PaymentReminder
from app.models.enums import NotificationChannel, OrderStatus
from app.providers.payments import CheckoutRequest, DummyProvider
from app.settings import DEV_SECRET, Settings
from tests.helpers import gql
from tests.test_payments import RESUME, new_link, register

# Everything else production asks for, so that each test meets only the refusal it is about.
PRODUCTION = {
    "env": "production",
    "secret_key": secrets.token_urlsafe(48),
    "smtp_host": "smtp.example.org",
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "t" * 32,
    "twilio_from_number": "+15005550006",
}
STRIPE = {"stripe_secret_key": "sk_test_" + "k" * 24, "stripe_webhook_secret": "whsec_" + "w" * 24}
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'

PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def _http(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _directives(csp: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in csp.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


def assert_page_headers(response: httpx.Response, *, csp: str | None = PAGE_CSP) -> None:
    """The headers every HTML page (and redirect) of this service sends."""
    headers = response.headers
    if csp is not None:
        assert headers["content-security-policy"] == csp, response.request.url
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


# --- item 1: the dummy payment provider ----------------------------------------------------


def test_production_refuses_the_dummy_provider_unless_allowed():
    with pytest.raises(ValidationError) as caught:
        Settings(**PRODUCTION)
    message = str(caught.value)
    assert "STRIPE_SECRET_KEY" in message
    assert "ALLOW_DUMMY_PAYMENTS=true" in message
    assert Settings(**PRODUCTION, **STRIPE).payment_provider == "stripe"
    assert Settings(**PRODUCTION, allow_dummy_payments=True).payment_provider == "dummy"
    assert Settings(env="development").payment_provider == "dummy"  # the local default


def test_allow_dummy_payments_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALLOW_DUMMY_PAYMENTS", "true")
    assert Settings(**PRODUCTION).allow_dummy_payments is True


def test_allowed_dummy_payments_in_production_are_announced_loudly(caplog):
    caplog.set_level(logging.INFO)
    app = create_app(Settings(**PRODUCTION, allow_dummy_payments=True), manage_db=False)
    assert app.state.payments.name == "dummy"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    messages = [r.getMessage() for r in warnings if "ALLOW_DUMMY_PAYMENTS" in r.getMessage()]
    assert len(messages) == 1, [r.getMessage() for r in warnings]
    assert "no money moves" in messages[0]
    assert "mark" in messages[0]
    assert "paid" in messages[0]

    caplog.clear()
    create_app(Settings(**PRODUCTION, **STRIPE), manage_db=False)
    create_app(Settings(env="development"), manage_db=False)
    assert not [r for r in caplog.records if "ALLOW_DUMMY_PAYMENTS" in r.getMessage()]


async def test_with_stripe_the_dummy_checkout_routes_do_not_exist(sclient, peer):
    token, _ = await new_link(sclient)
    reg = await register(sclient, token)
    assert reg["userErrors"] == []
    order = await Order.get(id=reg["order"]["id"])
    session_id = order.stripe_checkout_session_id
    assert session_id
    assert session_id.startswith("cs_test_")  # a real (stand-in) session
    # the very id the dummy routes would accept, if they were mounted
    assert (await sclient.get(f"/dummy-checkout/{session_id}")).status_code == 404
    assert (await sclient.post(f"/dummy-checkout/{session_id}/complete")).status_code == 404
    assert (await sclient.post("/dummy-checkout/x/complete")).status_code == 404
    await order.refresh_from_db()
    assert order.status == OrderStatus.PENDING


async def _reminder(order_id: str) -> PaymentReminder:
    """A sent e-mail reminder of this order (the link in it is `/pay/<its id>`)."""
    order = await Order.get(id=order_id)
    return await PaymentReminder.create(
        user_id=order.user_id, order_id=order.id, sent_via=NotificationChannel.EMAIL
    )


def _session_id(checkout_url: str) -> str:
    return httpx.URL(checkout_url).path.rsplit("/", 1)[-1]


async def test_dummy_session_ids_are_random_and_stable_within_an_attempt(client):
    regs = []
    for _ in range(2):
        token, _ = await new_link(client)
        regs.append(await register(client, token))
    ids = [_session_id(reg["checkoutUrl"]) for reg in regs]
    assert ids[0] != ids[1]
    for reg, session_id in zip(regs, ids, strict=True):
        order_id = reg["order"]["id"]
        # not the old formula, nor anything else written with the order's id
        derived = "cs_dummy_" + uuid.uuid5(uuid.NAMESPACE_URL, f"checkout-{order_id}-1").hex
        assert session_id != derived
        assert uuid.UUID(order_id).hex not in session_id
        assert len(session_id.removeprefix("cs_dummy_")) >= 40  # 32 random bytes
        order = await Order.get(id=order_id)
        assert order.stripe_checkout_session_id == session_id
    # the same attempt gets the same session back (a retry, a second click, a reminder)
    reg = regs[0]
    resume = {"input": {"orderId": reg["order"]["id"]}}
    again = await gql(client, RESUME, resume, token=reg["token"])
    assert again["resumeCheckout"]["userErrors"] == []
    assert again["resumeCheckout"]["checkoutUrl"] == reg["checkoutUrl"]
    reminder = await _reminder(reg["order"]["id"])
    clicked = await client.get(f"/pay/{reminder.id}")
    assert clicked.status_code == 303
    assert clicked.headers["location"] == reg["checkoutUrl"]


def _request(key: str) -> CheckoutRequest:
    return CheckoutRequest(
        order_id=uuid.uuid4(),
        customer_id="cus_dummy_x",
        product_name="Product",
        amount=100,
        currency="eur",
        success_url="https://app.example/ok",
        cancel_url="https://app.example/cancel",
        idempotency_key=key,
    )


async def test_dummy_provider_remembers_a_bounded_number_of_idempotency_keys():
    provider = DummyProvider("https://api.example")
    provider.SESSIONS_REMEMBERED = 3
    first = await provider.create_checkout_session(_request("checkout-a-1"))
    assert (await provider.create_checkout_session(_request("checkout-a-1"))) == first
    assert first.url == f"https://api.example/dummy-checkout/{first.id}"
    other = await provider.create_checkout_session(_request("checkout-a-2"))
    assert other.id != first.id
    for key in ("b", "c", "d"):
        await provider.create_checkout_session(_request(key))
    assert len(provider._sessions) == 3
    # forgotten: a new session (which becomes the order's current one), never an error
    assert (await provider.create_checkout_session(_request("checkout-a-1"))).id != first.id


# --- item 3: SECRET_KEY entropy ------------------------------------------------------------

WEAK_KEYS = {
    "repeated": "a" * 40,
    "alternating": "ab" * 20,
    "padded word": "password" + "0" * 32,
    "padded word 2": "password!" + "!" * 31,
    "repeated word": "password" * 5,
    "repeated phrase": "correcthorsebatterystaple" * 2,
    "phrase and digits": "correcthorsebatterystaple1234567",
    "keyboard walk": "qwertyuiopasdfghjklzxcvbnm123456",
    "sequence": "abcdefghijklmnopqrstuvwxyz0123456789",
    "short": secrets.token_urlsafe(16),  # random, but 22 characters
    "the development default": DEV_SECRET,
}


@pytest.mark.parametrize("key", WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_weak_secret_keys_are_refused_in_production(key):
    with pytest.raises(ValidationError) as caught:
        Settings(**{**PRODUCTION, **STRIPE, "secret_key": key})
    message = str(caught.value)
    assert "SECRET_KEY" in message
    assert GENERATE in message  # says how to make a good one
    assert key not in message  # and never prints the refused one
    assert "input_value" not in message  # nor any other value given (pydantic's tail of them)
    Settings(**{**STRIPE, "env": "development", "secret_key": key})  # development: any key


@pytest.mark.parametrize(
    "key",
    [secrets.token_urlsafe(48), secrets.token_hex(32), secrets.token_urlsafe(24)],
    ids=["token_urlsafe(48)", "token_hex(32) (bench)", "token_urlsafe(24) (32 chars)"],
)
def test_random_secret_keys_are_accepted_in_production(key):
    assert Settings(**{**PRODUCTION, **STRIPE, "secret_key": key}).secret_key == key


# --- item 10: headers of the HTML pages ----------------------------------------------------


async def test_payment_pages_send_the_security_headers(client):
    token, _ = await new_link(client)
    reg = await register(client, token)
    checkout = httpx.URL(reg["checkoutUrl"]).path

    page = await client.get(checkout)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert_page_headers(page, csp=None)
    csp = _directives(page.headers["content-security-policy"])
    assert csp.pop("form-action")[0] == "'self'"  # + PUBLIC_APP_URL's origin (the redirect)
    assert csp == {k: v for k, v in _directives(PAGE_CSP).items() if k != "form-action"}

    reminder = await _reminder(reg["order"]["id"])
    for response in (
        await client.get(f"/pay/{reminder.id}"),  # 303 to the checkout
        await client.get(f"/pay/{uuid.uuid4()}"),  # 404 page
        await client.get("/dummy-checkout/cs_dummy_unknown"),  # 404 page
        await client.get("/payment/success"),
        await client.get("/payment/cancelled"),
        await client.get("/payment/elsewhere"),  # 404 page
    ):
        assert response.status_code in (200, 303, 404)
        assert_page_headers(response)

    paid = await client.post(f"{checkout}/complete")
    assert paid.status_code == 303
    assert_page_headers(paid)
    already = await client.get(checkout)  # "This order is paid."
    assert "paid" in already.text
    assert_page_headers(already)
    assert_page_headers(await client.get(f"/pay/{reminder.id}"))  # 303 to the app


async def test_graphiql_allows_exactly_what_it_loads():
    """Our own files only (tests/test_graphiql.py checks each one and its integrity)."""
    app = create_app(Settings(env="development", graphiql=True), manage_db=False)
    async with _http(app) as http:
        response = await http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    csp = _directives(headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]  # no CDN, nothing inline, no eval
    assert csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'none'"]
    assert csp["connect-src"] == ["'self'", "ws://testserver"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
