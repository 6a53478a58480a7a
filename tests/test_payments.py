"""Payment links, registration, Stripe Checkout and the webhook (SPEC 2.1), against real
protocol peers: stripe-python → our Stripe stand-in (checkout sessions) → localstripe
(customers); webhook bodies shaped like Stripe's events and signed as Stripe signs."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.models import (
    Credential,
    Document,
    Dossier,
    DossierStatusHistory,
    Event,
    Order,
    PaymentLink,
    PaymentReminder,
    Profile,
    StripeEvent,
)
from app.models.enums import (
    DocumentStatus,
    DossierStatus,
    EventType,
    NotificationChannel,
    OrderStatus,
    UserStatus,
)
from app.services import reminders
from app.services.payments.links import token_digest
from tests import stripe_support as ss
from tests.factories import make_admin, make_agent, make_client, make_product
from tests.helpers import error_codes, gql

CREATE_LINK = """
mutation($input: CreatePaymentLinkInput!) {
  createPaymentLink(input: $input) {
    paymentLink { id token url state expiresAt product { code } }
    userErrors { field message code }
  }
}
"""
PREVIEW = """
query($token: String!) {
  paymentLink(token: $token) {
    state productName priceAmount currency prospectName prospectEmail expiresAt
  }
}
"""
REGISTER = """
mutation($input: RegisterWithPaymentLinkInput!) {
  registerWithPaymentLink(input: $input) {
    token checkoutUrl
    profile { id fullName phone status email }
    order { id amount currency status }
    userErrors { field message code }
  }
}
"""
MY_DOSSIERS = """
{ me { ... on Profile { status } }
  dossiers { totalCount nodes { id status currentStep { step { code } }
    documents { status documentType { code } } } } }
"""
RESUME = """
mutation($input: ResumeCheckoutInput!) {
  resumeCheckout(input: $input) { checkoutUrl userErrors { code message } }
}
"""
ORDERS = "{ orders { totalCount nodes { id status amount client { id } } } }"
ORDER = "query($id: ID!) { order(id: $id) { id status dossierId } }"
LINKS = """
query($state: PaymentLinkState) {
  paymentLinks(state: $state) { totalCount nodes { prospectEmail state } }
}
"""
LOGIN = """
mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }
"""


async def post_event(client: httpx.AsyncClient, evt: dict, **sign_kwargs) -> httpx.Response:
    body = ss.dumps(evt)
    return await client.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "stripe-signature": ss.sign(body, **sign_kwargs),
            "content-type": "application/json",
        },
    )


# --- helpers ----------------------------------------------------------------------------


async def new_link(client, *, email=None, hours=None, product=None) -> tuple[str, object]:
    admin = await make_admin()
    product = product or await make_product()
    data = await gql(
        client,
        CREATE_LINK,
        {
            "input": {
                "productId": str(product.id),
                "prospectEmail": email or f"prospect-{uuid.uuid4().hex[:8]}@example.com",
                "prospectName": "Pat Prospect",
                **({"expiresInHours": hours} if hours is not None else {}),
            }
        },
        token=admin.token,
    )
    payload = data["createPaymentLink"]
    assert payload["userErrors"] == []
    return payload["paymentLink"]["token"], product


async def register(client, token: str, *, phone: str = "06 12 34 56 78") -> dict:
    data = await gql(
        client,
        REGISTER,
        {
            "input": {
                "token": token,
                "fullName": "Pat Prospect",
                "phone": phone,
                "password": "a-good-password",
            }
        },
    )
    return data["registerWithPaymentLink"]


def paid_session(peer, order_id: str, **overrides) -> dict:
    session = next(s for s in peer.sessions.values() if s["client_reference_id"] == order_id)
    return {
        **session,
        "payment_status": "paid",
        "status": "complete",
        "payment_intent": f"pi_{uuid.uuid4().hex[:16]}",
        **overrides,
    }


async def registered_order(sclient) -> tuple[dict, Order]:
    token, _ = await new_link(sclient)
    reg = await register(sclient, token)
    assert reg["userErrors"] == [], reg
    return reg, await Order.get(id=reg["order"]["id"])


# --- payment links ----------------------------------------------------------------------


async def test_admin_creates_a_link_that_previews_without_a_token(client):
    token, product = await new_link(client, email="Someone@Example.com")
    link = await PaymentLink.get(token=token_digest(token))
    assert len(token) >= 40  # a 256-bit MAC after the link's id
    assert link.token != token  # the row keeps only the secret's hash
    assert link.prospect_email == "someone@example.com"
    assert timedelta(days=6, hours=23) < link.expires_at - datetime.now(UTC) <= timedelta(days=7)
    data = await gql(client, PREVIEW, {"token": token})
    assert data["paymentLink"] == {
        "state": "VALID",
        "productName": product.name,
        "priceAmount": product.price_amount,
        "currency": "eur",
        "prospectName": "Pat Prospect",
        "prospectEmail": "someone@example.com",
        "expiresAt": data["paymentLink"]["expiresAt"],
    }
    event = await Event.get(entity_id=link.id, event_type=EventType.PAYMENT_LINK_CREATED)
    assert token not in str(event.payload)  # the e-mail's link is derived when it is written
    assert event.payload["paymentLinkId"] == str(link.id)


async def test_unknown_token_preview_is_not_found(client):
    body = await gql(client, PREVIEW, {"token": "nope"}, expect_errors=True)
    assert error_codes(body) == ["NOT_FOUND"]


@pytest.mark.parametrize("who", ["agent", "client", "anonymous"])
async def test_only_admins_create_links(client, who):
    product = await make_product()
    token = None
    if who == "agent":
        token = (await make_agent()).token
    elif who == "client":
        token = (await make_client()).token
    body = await gql(
        client,
        CREATE_LINK,
        {
            "input": {
                "productId": str(product.id),
                "prospectEmail": "x@example.com",
                "prospectName": "X",
            }
        },
        token=token,
        expect_errors=True,
    )
    assert error_codes(body) == ["UNAUTHENTICATED" if who == "anonymous" else "FORBIDDEN"]
    assert await PaymentLink.all().count() == 0


async def test_link_validation(client):
    admin = await make_admin()
    inactive = await make_product(active=False)
    cases = [
        ({"productId": str(inactive.id)}, "PRODUCT_INACTIVE"),
        ({"prospectEmail": "not-an-email"}, "INVALID_EMAIL"),
        ({"expiresInHours": 0}, "INVALID_EXPIRY"),
        ({"prospectName": "  "}, "REQUIRED"),
    ]
    product = await make_product()
    for override, code in cases:
        data = await gql(
            client,
            CREATE_LINK,
            {
                "input": {
                    "productId": str(product.id),
                    "prospectEmail": "p@example.com",
                    "prospectName": "P",
                    **override,
                }
            },
            token=admin.token,
        )
        assert [e["code"] for e in data["createPaymentLink"]["userErrors"]] == [code]
    assert await PaymentLink.all().count() == 0


async def test_payment_links_filter_by_state(client):
    valid, _ = await new_link(client)
    used, _ = await new_link(client)
    expired, _ = await new_link(client)
    await PaymentLink.filter(token=token_digest(used)).update(used_at=datetime.now(UTC))
    await PaymentLink.filter(token=token_digest(expired)).update(
        expires_at=datetime.now(UTC) - timedelta(1)
    )
    admin = await make_admin()
    for state, token in (("VALID", valid), ("USED", used), ("EXPIRED", expired)):
        data = await gql(client, LINKS, {"state": state}, token=admin.token)
        link = await PaymentLink.get(token=token_digest(token))
        assert data["paymentLinks"]["nodes"] == [
            {"prospectEmail": link.prospect_email, "state": state}
        ]
    client_token = (await make_client()).token
    body = await gql(client, LINKS, {}, token=client_token, expect_errors=True)
    assert error_codes(body) == ["FORBIDDEN"]


# --- registration -----------------------------------------------------------------------


async def test_registration_creates_profile_order_customer_and_session(sclient, peer, localstripe):
    token, product = await new_link(sclient)
    reg = await register(sclient, token, phone="06 12 34 56 78")
    assert reg["userErrors"] == []
    assert reg["profile"]["status"] == "PENDING"
    assert reg["profile"]["phone"] == "+33612345678"
    assert reg["order"]["status"] == "PENDING"
    assert reg["order"]["amount"] == product.price_amount
    assert reg["order"]["currency"] == "eur"

    order = await Order.get(id=reg["order"]["id"])
    profile = await Profile.get(id=reg["profile"]["id"])
    # the Customer exists at localstripe, with our metadata
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{localstripe.url}/v1/customers/{profile.stripe_customer_id}",
            auth=("sk_test_x", ""),
        )
    customer = response.json()
    assert customer["email"] == reg["profile"]["email"]
    assert customer["metadata"] == {"profile_id": str(profile.id)}
    # the Checkout Session was asked for exactly as SPEC 2.1 says
    call = next(r for r in peer.requests if r["path"] == "/v1/checkout/sessions")
    form = call["form"]
    assert form["mode"] == "payment"
    assert form["customer"] == profile.stripe_customer_id
    assert form["client_reference_id"] == str(order.id)
    assert form["metadata"] == {"order_id": str(order.id)}
    assert form["success_url"].endswith(f"/payment/success?order={order.id}")
    assert form["cancel_url"].endswith(f"/payment/cancelled?order={order.id}")
    assert form["line_items"][0]["price_data"]["unit_amount"] == str(product.price_amount)
    assert call["idempotency_key"] == f"checkout-{order.id}-1"
    assert reg["checkoutUrl"] == peer.sessions[order.stripe_checkout_session_id]["url"]
    # the link is used, by this profile
    link = await PaymentLink.get(token=token_digest(token))
    assert link.used_at is not None
    assert link.used_by_id == profile.id  # type: ignore[attr-defined]
    assert link.stripe_checkout_session_id == order.stripe_checkout_session_id
    # the returned token works
    me = await gql(sclient, "{ me { ... on Profile { id } } }", token=reg["token"])
    assert me["me"]["id"] == str(profile.id)


async def test_a_link_registers_once(sclient):
    token, _ = await new_link(sclient)
    first = await register(sclient, token)
    assert first["userErrors"] == []
    second = await register(sclient, token)
    assert [e["code"] for e in second["userErrors"]] == ["LINK_USED"]
    assert second["token"] is None
    assert await Profile.all().count() == 1
    preview = await gql(sclient, PREVIEW, {"token": token})
    assert preview["paymentLink"]["state"] == "USED"


async def test_two_concurrent_registrations_exactly_one_wins(sclient):
    token, _ = await new_link(sclient)
    results = await asyncio.gather(*(register(sclient, token) for _ in range(2)))
    winners = [r for r in results if not r["userErrors"]]
    losers = [r for r in results if r["userErrors"]]
    assert len(winners) == 1
    assert [e["code"] for e in losers[0]["userErrors"]] == ["LINK_USED"]
    assert await Profile.all().count() == 1
    assert await Order.all().count() == 1


async def test_expired_link_is_refused(sclient):
    token, _ = await new_link(sclient)
    await PaymentLink.filter(token=token_digest(token)).update(
        expires_at=datetime.now(UTC) - timedelta(1)
    )
    reg = await register(sclient, token)
    assert [e["code"] for e in reg["userErrors"]] == ["LINK_EXPIRED"]
    assert await Profile.all().count() == 0
    preview = await gql(sclient, PREVIEW, {"token": token})
    assert preview["paymentLink"]["state"] == "EXPIRED"


@pytest.mark.parametrize(
    ("phone", "password", "code"),
    [("12", "a-good-password", "INVALID_PHONE"), ("+33612345678", "short", "WEAK_PASSWORD")],
)
async def test_registration_validation(sclient, phone, password, code):
    token, _ = await new_link(sclient)
    data = await gql(
        sclient,
        REGISTER,
        {"input": {"token": token, "fullName": "P", "phone": phone, "password": password}},
    )
    assert [e["code"] for e in data["registerWithPaymentLink"]["userErrors"]] == [code]
    assert (await PaymentLink.get(token=token_digest(token))).used_at is None
    assert await Profile.all().count() == 0


async def test_registration_with_an_email_that_has_an_account(sclient):
    existing = await make_client()
    token, _ = await new_link(sclient, email=existing.email.upper())
    reg = await register(sclient, token)
    assert [e["code"] for e in reg["userErrors"]] == ["EMAIL_TAKEN"]
    # rolled back, still usable
    assert (await PaymentLink.get(token=token_digest(token))).used_at is None
    assert await Credential.filter(email=existing.email).count() == 1


async def test_stripe_outage_keeps_the_account_and_checkout_can_resume(sclient, peer):
    token, _ = await new_link(sclient)
    peer.fail_with = 400
    reg = await register(sclient, token)
    assert [e["code"] for e in reg["userErrors"]] == ["CHECKOUT_UNAVAILABLE"]
    assert reg["token"]
    assert reg["checkoutUrl"] is None
    assert reg["order"]["status"] == "PENDING"
    peer.fail_with = None
    data = await gql(
        sclient, RESUME, {"input": {"orderId": reg["order"]["id"]}}, token=reg["token"]
    )
    assert data["resumeCheckout"]["userErrors"] == []
    assert data["resumeCheckout"]["checkoutUrl"].startswith("https://checkout.stripe.test/")


async def test_resume_checkout_reuses_the_open_session_and_renews_a_closed_one(sclient, peer):
    reg, order = await registered_order(sclient)
    first_session = order.stripe_checkout_session_id
    again = await gql(sclient, RESUME, {"input": {"orderId": str(order.id)}}, token=reg["token"])
    # a double click: same attempt, same idempotency key, same session
    assert again["resumeCheckout"]["checkoutUrl"] == reg["checkoutUrl"]
    assert len(peer.sessions) == 1
    # the session expires: the next checkout is a new one
    expired = {**peer.sessions[first_session], "status": "expired"}
    assert (
        await post_event(sclient, ss.event("checkout.session.expired", expired))
    ).status_code == 200
    renewed = await gql(sclient, RESUME, {"input": {"orderId": str(order.id)}}, token=reg["token"])
    assert renewed["resumeCheckout"]["checkoutUrl"] != reg["checkoutUrl"]
    await order.refresh_from_db()
    assert order.stripe_checkout_session_id != first_session
    assert peer.requests[-1]["idempotency_key"] == f"checkout-{order.id}-2"


async def test_resume_checkout_authorisation(sclient):
    _reg, order = await registered_order(sclient)
    other = await make_client()
    body = await gql(
        sclient,
        RESUME,
        {"input": {"orderId": str(order.id)}},
        token=other.token,
        expect_errors=True,
    )
    missing = await gql(
        sclient,
        RESUME,
        {"input": {"orderId": str(uuid.uuid4())}},
        token=other.token,
        expect_errors=True,
    )
    assert (
        body["errors"][0]["extensions"]
        == missing["errors"][0]["extensions"]
        == {"code": "NOT_FOUND"}
    )
    assert body["errors"][0]["message"] == missing["errors"][0]["message"]


# --- the webhook -------------------------------------------------------------------------


async def test_completed_checkout_fulfils_everything_in_one_go(sclient, peer):
    reg, order = await registered_order(sclient)
    session = paid_session(peer, str(order.id))
    response = await post_event(sclient, ss.event("checkout.session.completed", session))
    assert response.status_code == 200
    assert response.json()["outcome"] == "processed"

    await order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert order.paid_at is not None
    assert order.stripe_payment_intent_id == session["payment_intent"]
    profile = await Profile.get(id=reg["profile"]["id"])
    assert profile.status == UserStatus.ACTIVE
    dossier = await Dossier.get(id=order.dossier_id)  # type: ignore[attr-defined]
    assert dossier.user_id == profile.id  # type: ignore[attr-defined]
    assert dossier.status == DossierStatus.IN_PROGRESS
    history = await DossierStatusHistory.filter(dossier_id=dossier.id).order_by("created_at")
    assert [(h.old_status, h.new_status) for h in history] == [
        (None, DossierStatus.CREATED),
        (DossierStatus.CREATED, DossierStatus.IN_PROGRESS),
    ]
    documents = await Document.filter(dossier_id=dossier.id)
    assert documents
    assert all(d.status == DocumentStatus.PENDING for d in documents)
    types = {e.event_type for e in await Event.all()}
    assert {EventType.PAYMENT_SUCCEEDED, EventType.DOSSIER_CREATED, EventType.STEP_STARTED} <= types

    mine = await gql(sclient, MY_DOSSIERS, token=reg["token"])
    assert mine["me"]["status"] == "ACTIVE"
    assert mine["dossiers"]["totalCount"] == 1
    node = mine["dossiers"]["nodes"][0]
    assert node["status"] == "IN_PROGRESS"
    assert node["documents"]
    assert {d["status"] for d in node["documents"]} == {"PENDING"}


async def test_async_payment_completes_unpaid_then_succeeds(sclient, peer):
    _, order = await registered_order(sclient)
    pending = paid_session(peer, str(order.id), payment_status="unpaid", payment_intent=None)
    await post_event(sclient, ss.event("checkout.session.completed", pending))
    await order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    succeeded = paid_session(peer, str(order.id))
    await post_event(sclient, ss.event("checkout.session.async_payment_succeeded", succeeded))
    await order.refresh_from_db()
    assert order.status == OrderStatus.PAID


async def test_the_same_event_50_times_at_once_is_handled_once(sclient, peer):
    _, order = await registered_order(sclient)
    evt = ss.event("checkout.session.completed", paid_session(peer, str(order.id)))
    responses = await asyncio.gather(*(post_event(sclient, evt) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    outcomes = [r.json()["outcome"] for r in responses]
    assert outcomes.count("processed") == 1
    assert outcomes.count("duplicate") == 49
    assert await StripeEvent.filter(stripe_event_id=evt["id"]).count() == 1
    assert await Dossier.all().count() == 1
    assert await Event.filter(event_type=EventType.PAYMENT_SUCCEEDED).count() == 1


async def test_a_second_distinct_paid_event_does_not_open_a_second_dossier(sclient, peer):
    _, order = await registered_order(sclient)
    for _ in range(2):
        evt = ss.event("checkout.session.completed", paid_session(peer, str(order.id)))
        assert (await post_event(sclient, evt)).status_code == 200
    assert await Dossier.all().count() == 1


async def test_completed_after_expired_still_wins(sclient, peer):
    reg, order = await registered_order(sclient)
    expired = {
        **paid_session(peer, str(order.id)),
        "payment_status": "unpaid",
        "status": "expired",
        "payment_intent": None,
    }
    await post_event(sclient, ss.event("checkout.session.expired", expired))
    profile = await Profile.get(id=reg["profile"]["id"])
    assert profile.status == UserStatus.SUSPENDED
    await order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    assert await PaymentReminder.filter(order_id=order.id).count() == 6  # 3 slots x (email, SMS)

    await post_event(
        sclient, ss.event("checkout.session.completed", paid_session(peer, str(order.id)))
    )
    await order.refresh_from_db()
    await profile.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert profile.status == UserStatus.ACTIVE
    assert await PaymentReminder.filter(order_id=order.id, cancelled_at=None).count() == 0


async def test_expired_after_completed_changes_nothing(sclient, peer):
    reg, order = await registered_order(sclient)
    await post_event(
        sclient, ss.event("checkout.session.completed", paid_session(peer, str(order.id)))
    )
    late = {**paid_session(peer, str(order.id)), "status": "expired", "payment_status": "unpaid"}
    response = await post_event(sclient, ss.event("checkout.session.expired", late))
    assert response.status_code == 200
    await order.refresh_from_db()
    profile = await Profile.get(id=reg["profile"]["id"])
    assert order.status == OrderStatus.PAID
    assert profile.status == UserStatus.ACTIVE
    assert await PaymentReminder.all().count() == 0


async def test_payment_intent_failure_suspends_and_schedules_reminders(sclient, peer):
    reg, order = await registered_order(sclient)
    intent = {
        "id": "pi_x",
        "object": "payment_intent",
        "metadata": {"order_id": str(order.id)},
        "last_payment_error": {"code": "card_declined"},
    }
    assert (
        await post_event(sclient, ss.event("payment_intent.payment_failed", intent))
    ).status_code == 200
    assert (await Profile.get(id=reg["profile"]["id"])).status == UserStatus.SUSPENDED
    failed = await Event.get(event_type=EventType.PAYMENT_FAILED)
    assert failed.payload == {"reason": "card_declined"}


async def test_amount_or_currency_mismatch_is_not_fulfilled(sclient, peer):
    _, order = await registered_order(sclient)
    for override in (
        {"amount_total": 1},
        {"currency": "usd"},
        {"client_reference_id": str(uuid.uuid4())},
    ):
        evt = ss.event("checkout.session.completed", paid_session(peer, str(order.id), **override))
        response = await post_event(sclient, evt)
        assert response.status_code == 200
        assert response.json()["outcome"] == "unmatched"
    await order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    assert await Dossier.all().count() == 0


async def test_refund_cancels_the_dossier_with_a_history_row(sclient, peer):
    _, order = await registered_order(sclient)
    session = paid_session(peer, str(order.id))
    await post_event(sclient, ss.event("checkout.session.completed", session))
    partial = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": session["payment_intent"],
        "refunded": False,
        "amount_refunded": 100,
        "metadata": {},
    }
    await post_event(sclient, ss.event("charge.refunded", partial))
    await order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    full = {**partial, "refunded": True, "amount_refunded": order.amount}
    assert (await post_event(sclient, ss.event("charge.refunded", full))).status_code == 200
    await order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    dossier = await Dossier.get(id=order.dossier_id)  # type: ignore[attr-defined]
    assert dossier.status == DossierStatus.CANCELLED
    last = await DossierStatusHistory.filter(dossier_id=dossier.id).order_by("-created_at").first()
    assert (last.old_status, last.new_status) == (
        DossierStatus.IN_PROGRESS,
        DossierStatus.CANCELLED,
    )
    assert last.reason == "Payment refunded"


async def test_unknown_event_types_are_acknowledged_and_ignored(sclient):
    response = await post_event(sclient, ss.event("customer.created", {"id": "cus_1"}))
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert await Order.all().count() == 0


def _signature_cases(body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    return {
        "missing": {},
        "malformed": {"stripe-signature": "garbage"},
        "forged": {"stripe-signature": ss.sign(body, secret="whsec_someone_else")},
        "stale": {"stripe-signature": ss.sign(body, timestamp=now - 301)},
        "future": {"stripe-signature": ss.sign(body, timestamp=now + 301)},
        "other body": {"stripe-signature": ss.sign(body + b" ")},
    }


async def test_signature_failures_are_400_with_no_side_effect(sclient, peer):
    _, order = await registered_order(sclient)
    body = ss.dumps(ss.event("checkout.session.completed", paid_session(peer, str(order.id))))
    for name, headers in _signature_cases(body).items():
        response = await sclient.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 400, name
    assert await StripeEvent.all().count() == 0
    await order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    # and the same body, well signed, goes through
    ok = await sclient.post(
        "/webhooks/stripe", content=body, headers={"stripe-signature": ss.sign(body)}
    )
    assert ok.status_code == 200


async def test_oversized_webhook_body_is_refused(sclient):
    body = b"{" + b" " * (300 * 1024) + b"}"
    response = await sclient.post(
        "/webhooks/stripe", content=body, headers={"stripe-signature": ss.sign(body)}
    )
    assert response.status_code == 413


async def test_webhook_refuses_everything_without_a_configured_secret(client):
    body = ss.dumps(ss.event("customer.created", {"id": "cus_1"}))
    response = await client.post(
        "/webhooks/stripe", content=body, headers={"stripe-signature": ss.sign(body)}
    )
    assert response.status_code == 400


# --- reminders ----------------------------------------------------------------------------


async def test_reminder_schedule_click_and_stop(sclient, peer):
    _reg, order = await registered_order(sclient)
    t0 = datetime.now(UTC)
    expired = {
        **paid_session(peer, str(order.id)),
        "status": "expired",
        "payment_status": "unpaid",
        "payment_intent": None,
    }
    await post_event(sclient, ss.event("checkout.session.expired", expired))
    rows = await PaymentReminder.filter(order_id=order.id).order_by("slot", "sent_via")
    assert [(r.slot, r.sent_via) for r in rows] == [
        (s, c) for s in range(3) for c in (NotificationChannel.EMAIL, NotificationChannel.SMS)
    ]
    offsets = sorted({round((r.scheduled_for - t0).total_seconds() / 3600) for r in rows})
    assert offsets == [1, 24, 72]

    assert await reminders.send_due_reminders(now=t0 + timedelta(minutes=50)) == 0
    assert await reminders.send_due_reminders(now=t0 + timedelta(hours=1, minutes=1)) == 2
    assert await reminders.send_due_reminders(now=t0 + timedelta(hours=2)) == 0  # never twice
    sent = await Event.filter(event_type=EventType.PAYMENT_REMINDER_SENT).order_by("created_at")
    assert sorted(e.payload["channel"] for e in sent) == ["EMAIL", "SMS"]
    email_reminder = await PaymentReminder.get(
        order_id=order.id, slot=0, sent_via=NotificationChannel.EMAIL
    )
    assert sent[0].payload["url"].endswith(f"/pay/{sent[0].payload['reminderId']}")

    # the tracked link: click recorded, 303 to a fresh Checkout Session
    before = len(peer.sessions)
    response = await sclient.get(f"/pay/{email_reminder.id}")
    assert response.status_code == 303
    assert response.headers["location"].startswith("https://checkout.stripe.test/c/pay/cs_test_")
    assert len(peer.sessions) == before + 1
    await email_reminder.refresh_from_db()
    first_click = email_reminder.clicked_at
    assert first_click is not None
    await sclient.get(f"/pay/{email_reminder.id}")
    await email_reminder.refresh_from_db()
    assert email_reminder.clicked_at == first_click
    assert await Event.filter(event_type=EventType.PAYMENT_REMINDER_CLICKED).count() == 1

    # paid: nothing more is sent, the rest is cancelled, the link leads to the app
    await post_event(
        sclient, ss.event("checkout.session.completed", paid_session(peer, str(order.id)))
    )
    assert await reminders.send_due_reminders(now=t0 + timedelta(days=10)) == 0
    assert (
        await PaymentReminder.filter(order_id=order.id, sent_at=None, cancelled_at=None).count()
        == 0
    )
    response = await sclient.get(f"/pay/{email_reminder.id}")
    assert response.status_code == 303
    assert response.headers["location"].endswith("/dossiers")
    assert (await sclient.get(f"/pay/{uuid.uuid4()}")).status_code == 404
    assert (await sclient.get("/pay/not-a-uuid")).status_code == 404


async def test_profile_without_phone_gets_email_reminders_only(sclient, peer):
    _, order = await registered_order(sclient)
    await Profile.filter(id=order.user_id).update(phone=None)  # type: ignore[attr-defined]
    expired = {**paid_session(peer, str(order.id)), "status": "expired", "payment_status": "unpaid"}
    await post_event(sclient, ss.event("checkout.session.expired", expired))
    channels = {r.sent_via for r in await PaymentReminder.filter(order_id=order.id)}
    assert channels == {NotificationChannel.EMAIL}


# --- orders -------------------------------------------------------------------------------


async def test_orders_visibility(sclient, peer):
    reg, order = await registered_order(sclient)
    other = await make_client()
    agent = await make_agent()
    mine = await gql(sclient, ORDERS, token=reg["token"])
    assert [n["id"] for n in mine["orders"]["nodes"]] == [str(order.id)]
    theirs = await gql(sclient, ORDERS, token=other.token)
    assert theirs["orders"]["totalCount"] == 0
    everyone = await gql(sclient, ORDERS, token=agent.token)
    assert everyone["orders"]["totalCount"] == 1
    body = await gql(sclient, ORDER, {"id": str(order.id)}, token=other.token, expect_errors=True)
    assert error_codes(body) == ["NOT_FOUND"]


# --- the dummy provider (the embedded default) ---------------------------------------------


async def test_dummy_checkout_page_pays_through_the_webhook_path(client):
    token, product = await new_link(client)
    reg = await register(client, token)
    assert reg["userErrors"] == []
    url = reg["checkoutUrl"]
    assert "/dummy-checkout/cs_dummy_" in url
    path = httpx.URL(url).path
    page = await client.get(path)
    assert page.status_code == 200
    assert f"{product.price_amount / 100:.2f} EUR" in page.text
    done = await client.post(f"{path}/complete")
    assert done.status_code == 303
    assert "/payment/success" in done.headers["location"]
    landing = await client.get(httpx.URL(done.headers["location"]).path)
    assert "Payment received" in landing.text
    order = await Order.get(id=reg["order"]["id"])
    assert order.status == OrderStatus.PAID
    assert await StripeEvent.all().count() == 1  # recorded like a real Stripe event
    login = await gql(client, LOGIN, {"e": reg["profile"]["email"], "p": "a-good-password"})
    mine = await gql(client, MY_DOSSIERS, token=login["login"]["token"])
    assert mine["dossiers"]["nodes"][0]["status"] == "IN_PROGRESS"


async def test_dummy_checkout_failure_suspends(client):
    token, _ = await new_link(client)
    reg = await register(client, token)
    path = httpx.URL(reg["checkoutUrl"]).path
    failed = await client.post(f"{path}/fail")
    assert failed.status_code == 303
    profile = await Profile.get(id=reg["profile"]["id"])
    assert profile.status == UserStatus.SUSPENDED
    assert (await client.get("/dummy-checkout/cs_dummy_unknown")).status_code == 404


@pytest.mark.postgres
async def test_database_outage_answers_503_and_the_retry_is_processed_once(sclient, peer, backend):
    """Stripe retries on 5xx: during an outage nothing is recorded, after it the retried
    delivery is processed exactly once."""
    import asyncpg
    from tortoise.connection import get_connection

    _, order = await registered_order(sclient)
    evt = ss.event("checkout.session.completed", paid_session(peer, str(order.id)))
    connection = get_connection("default")
    name = connection.database
    admin = await asyncpg.connect(backend.admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        during = await post_event(sclient, evt)
        assert during.status_code == 503
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    # Stripe keeps retrying; pooled connections killed by the outage may cost a retry
    statuses = []
    for _ in range(5):
        after = await post_event(sclient, evt)
        statuses.append(after.status_code)
        if after.status_code == 200:
            break
    assert statuses[-1] == 200, statuses
    assert after.json()["outcome"] == "processed"
    again = await post_event(sclient, evt)
    assert again.json()["outcome"] == "duplicate"
    await order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert await Dossier.all().count() == 1


async def test_an_old_session_expiring_leaves_the_current_checkout_alone(sclient, peer):
    """A declined card closes session 1, the client starts session 2, then Stripe expires
    session 1 a day later: that must neither close session 2 nor fail the order again."""
    reg, order = await registered_order(sclient)
    first = order.stripe_checkout_session_id
    intent = {
        "id": "pi_declined",
        "object": "payment_intent",
        "metadata": {"order_id": str(order.id)},
        "last_payment_error": {"code": "card_declined"},
    }
    await post_event(sclient, ss.event("payment_intent.payment_failed", intent))
    resumed = await gql(sclient, RESUME, {"input": {"orderId": str(order.id)}}, token=reg["token"])
    await order.refresh_from_db()
    second = order.stripe_checkout_session_id
    assert second != first

    late = {**peer.sessions[first], "status": "expired"}
    response = await post_event(sclient, ss.event("checkout.session.expired", late))
    assert response.status_code == 200
    again = await gql(sclient, RESUME, {"input": {"orderId": str(order.id)}}, token=reg["token"])
    assert again["resumeCheckout"]["checkoutUrl"] == resumed["resumeCheckout"]["checkoutUrl"]
    await order.refresh_from_db()
    assert order.stripe_checkout_session_id == second
    assert await Event.filter(event_type=EventType.PAYMENT_FAILED).count() == 1
