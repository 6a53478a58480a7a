"""Refunds and Stripe events in any order (issue 17, items 3 and 4), against the real
protocol peers of tests/test_payments.py: webhook bodies shaped like Stripe's events and
signed as Stripe signs, refunds made through stripe-python → the Stripe stand-in."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from itertools import combinations_with_replacement, permutations
from typing import Any

import httpx
import pytest

from app.models import (
    DeferredStripeEvent,
    Dossier,
    DossierStatusHistory,
    Event,
    Notification,
    Order,
    Profile,
    Refund,
)
from app.models.enums import (
    ActorType,
    DossierStatus,
    EventType,
    OrderStatus,
    PaymentMethod,
    UserStatus,
)
from tests import stripe_support as ss
from tests.factories import make_admin, make_agent, make_client, make_dossier
from tests.helpers import error_codes, gql
from tests.test_payments import new_link, paid_session, post_event, register, registered_order

REFUND = """
mutation($input: RefundOrderInput!) {
  refundOrder(input: $input) {
    order { id status amount refundedAmount }
    refund { id amount currency reason note manual requestedBy { id } }
    userErrors { field message code }
  }
}
"""
ORDER = "query($id: ID!) { order(id: $id) { status refundedAmount } }"
TIMELINE = """
query($id: ID!) {
  dossier(id: $id) {
    status
    timeline(last: 50) {
      kind actorType
      ... on RefundEntry { amount refundedAmount currency refundReason note }
      ... on StatusChangeEntry { newStatus reason }
    }
  }
}
"""

# --- the ordering matrix -----------------------------------------------------------------

PAID_KINDS = {"completed_paid", "async_succeeded"}
FAILED_KINDS = {"expired", "async_failed", "intent_failed"}
KINDS = [
    "completed_paid",  # checkout.session.completed, paid
    "completed_unpaid",  # checkout.session.completed, unpaid (a delayed method)
    "async_succeeded",  # checkout.session.async_payment_succeeded
    "expired",  # checkout.session.expired
    "async_failed",  # checkout.session.async_payment_failed
    "intent_failed",  # payment_intent.payment_failed
    "refund_partial",  # charge.refunded: 30 of 100 refunded
    "refund_full",  # charge.refunded: then the other 70 (the charge is refunded)
]
PARTIAL, SECOND_PARTIAL = 3_000, 5_000  # cumulative: the second partial refund adds 2_000


@dataclass
class World:
    reg: dict
    order: Order
    profile: Profile
    intent: str  # the payment intent the checkout is paid with (the stand-in's)
    refunds: dict[str, dict[str, Any]]


async def make_world(sclient, peer) -> World:
    reg, order = await registered_order(sclient)
    profile = await Profile.get(id=order.user_id)  # type: ignore[attr-defined]
    intent = peer.pay(order.amount, order.currency, customer=profile.stripe_customer_id)
    charge = peer.intents[intent]["charge"]

    def made(amount: int) -> dict[str, Any]:
        return ss.refund_object(intent, amount, charge_id=charge, reason="requested_by_customer")

    refunds = {
        "first": made(PARTIAL),
        "rest": made(order.amount - PARTIAL),
        "more": made(SECOND_PARTIAL - PARTIAL),
    }
    return World(reg, order, profile, intent, refunds)


def stripe_event(world: World, peer, kind: str, *, again: bool = False) -> dict:
    """The event of `kind` for the world's order, as Stripe sends it. `again`: the second
    event of the same kind in a pair (for a partial refund: the next partial refund)."""
    order_id = str(world.order.id)
    session = paid_session(peer, order_id, payment_intent=world.intent)
    unpaid = {**session, "payment_status": "unpaid"}
    if kind == "completed_paid":
        return ss.event("checkout.session.completed", session)
    if kind == "completed_unpaid":
        return ss.event("checkout.session.completed", unpaid)
    if kind == "async_succeeded":
        return ss.event("checkout.session.async_payment_succeeded", session)
    if kind == "expired":
        expired = {**unpaid, "status": "expired", "payment_intent": None}
        return ss.event("checkout.session.expired", expired)
    if kind == "async_failed":
        return ss.event("checkout.session.async_payment_failed", unpaid)
    if kind == "intent_failed":
        intent = {
            "id": world.intent,
            "object": "payment_intent",
            "amount": world.order.amount,
            "currency": world.order.currency,
            "customer": world.profile.stripe_customer_id,
            "metadata": {"order_id": order_id},
            "last_payment_error": {"code": "card_declined", "type": "card_error"},
            "status": "requires_payment_method",
        }
        return ss.event("payment_intent.payment_failed", intent)
    first, rest, more = (world.refunds[k] for k in ("first", "rest", "more"))
    listed = [rest, first]  # refund_full: the rest, after the first part
    if kind == "refund_partial":
        listed = [more, first] if again else [first]
    charge = ss.charge_object(
        world.intent,
        amount=world.order.amount,
        amount_refunded=sum(r["amount"] for r in listed),
        refunds=listed,
        customer=world.profile.stripe_customer_id,
        charge_id=first["charge"],
    )
    return ss.event("charge.refunded", charge)


async def end_state(world: World) -> dict[str, Any]:
    order = await Order.get(id=world.order.id)
    profile = await Profile.get(id=world.profile.id)
    return {
        "order": OrderStatus(order.status),
        "refunded": order.refunded_amount,
        "dossiers": [DossierStatus(d.status) for d in await Dossier.filter(user_id=profile.id)],
        "profile": UserStatus(profile.status),
        "refunds": sorted(r.amount for r in await Refund.filter(order_id=order.id)),
    }


def expected_state(kinds: tuple[str, ...], amount: int) -> dict[str, Any]:
    """What the pair calls for: paid (by either event), then refunded as far as its
    refunds go; not paid, the refunds wait and nothing is refunded."""
    paid = bool(PAID_KINDS & set(kinds))
    full = "refund_full" in kinds
    if full:
        made = [PARTIAL, amount - PARTIAL]
    elif kinds.count("refund_partial") == 2:
        made = [PARTIAL, SECOND_PARTIAL - PARTIAL]
    elif "refund_partial" in kinds:
        made = [PARTIAL]
    else:
        made = []
    made = sorted(made) if paid else []
    if paid:
        profile = UserStatus.ACTIVE
    elif FAILED_KINDS & set(kinds):
        profile = UserStatus.SUSPENDED
    else:
        profile = UserStatus.PENDING
    order = OrderStatus.REFUNDED if full else OrderStatus.PAID
    dossier = DossierStatus.CANCELLED if full else DossierStatus.IN_PROGRESS
    return {
        "order": order if paid else OrderStatus.PENDING,
        "refunded": sum(made),
        "dossiers": [dossier] if paid else [],
        "profile": profile,
        "refunds": made,
    }


PAIRS = list(combinations_with_replacement(KINDS, 2))


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
async def test_both_delivery_orders_end_in_the_same_state(sclient, peer, a, b):
    """Each pair of handled events, delivered through the webhook one way round in one
    world and the other way round in another: the same order, refund, dossier and profile
    at the end, and the state each event calls for."""
    states, worlds = [], []
    for first, second in ((a, b), (b, a)):
        world = await make_world(sclient, peer)
        events = [
            stripe_event(world, peer, first),
            stripe_event(world, peer, second, again=first == second),
        ]
        for evt in events:
            response = await post_event(sclient, evt)
            assert response.status_code == 200, response.text
            assert response.json()["outcome"] in ("processed", "deferred"), response.json()
        states.append(await end_state(world))
        worlds.append(world)
    assert states[0] == states[1], f"{a} then {b}: {states[0]}; {b} then {a}: {states[1]}"
    assert states[0] == expected_state((a, b), worlds[0].order.amount), states[0]

    paid = bool(PAID_KINDS & {a, b})
    for world in worlds:
        waiting = await DeferredStripeEvent.filter(
            payment_intent_id=world.intent, applied_at=None
        ).count()
        refunds = sum(kind.startswith("refund") for kind in (a, b))
        assert waiting == (0 if paid else refunds)  # kept until the payment, then applied
        if paid and "refund_full" in (a, b):
            # the dossier is cancelled with its history row, whichever came first
            dossier = await Dossier.get(user_id=world.profile.id)
            last = (
                await DossierStatusHistory.filter(dossier_id=dossier.id)
                .order_by("-created_at")
                .first()
            )
            assert last is not None
            assert last.new_status == DossierStatus.CANCELLED
            assert last.reason == "Payment refunded"


REFUND_PAIRS = [("refund_partial", "refund_full"), ("refund_partial", "refund_partial")]


@pytest.mark.parametrize(("r1", "r2"), REFUND_PAIRS, ids=["partial+full", "partial+partial"])
async def test_a_payment_and_two_refunds_in_any_order(sclient, peer, r1, r2):
    """Two refunds of a paid order (the second's charge says more is refunded): in each of
    the six orders of the three events, the same end, and never less than the newest
    refund says (an older charge.refunded arriving late lowers nothing)."""
    states = []
    for order in permutations(range(3)):
        world = await make_world(sclient, peer)
        events = [
            stripe_event(world, peer, "completed_paid"),
            stripe_event(world, peer, r1),
            stripe_event(world, peer, r2, again=r1 == r2),
        ]
        for index in order:
            response = await post_event(sclient, events[index])
            assert response.status_code == 200, response.text
        states.append(await end_state(world))
    expected = expected_state(("completed_paid", r1, r2), world.order.amount)
    assert states == [expected] * 6, states


async def test_a_refund_before_the_payment_is_kept_and_answered_deferred(sclient, peer):
    world = await make_world(sclient, peer)
    refund = stripe_event(world, peer, "refund_full")
    early = await post_event(sclient, refund)
    assert early.json()["outcome"] == "deferred"
    order = await Order.get(id=world.order.id)
    assert (order.status, order.refunded_amount) == (OrderStatus.PENDING, 0)
    # Stripe's retry of that delivery is the same event: kept once
    assert (await post_event(sclient, refund)).json()["outcome"] == "duplicate"
    assert await DeferredStripeEvent.filter(applied_at=None).count() == 1
    await post_event(sclient, stripe_event(world, peer, "completed_paid"))
    order = await Order.get(id=world.order.id)
    assert (order.status, order.refunded_amount) == (OrderStatus.REFUNDED, order.amount)
    data = await gql(sclient, TIMELINE, {"id": str(order.dossier_id)}, token=world.reg["token"])
    kinds = [entry["kind"] for entry in data["dossier"]["timeline"]]
    assert data["dossier"]["status"] == "CANCELLED"
    assert "ORDER_REFUNDED" in kinds
    assert kinds.index("ORDER_REFUNDED") < len(kinds) - 1  # then the cancellation
    assert kinds[-1] == "STATUS_CHANGED"


async def test_an_older_refund_event_arriving_late_lowers_nothing(sclient, peer):
    world = await make_world(sclient, peer)
    await post_event(sclient, stripe_event(world, peer, "completed_paid"))
    newer = stripe_event(world, peer, "refund_partial", again=True)  # 50 refunded
    older = stripe_event(world, peer, "refund_partial")  # 30 refunded
    await post_event(sclient, newer)
    await post_event(sclient, older)
    order = await Order.get(id=world.order.id)
    assert (order.status, order.refunded_amount) == (OrderStatus.PAID, SECOND_PARTIAL)
    assert await Refund.filter(order_id=order.id).count() == 2


# --- refundOrder -------------------------------------------------------------------------


async def paid_world(sclient, peer) -> World:
    world = await make_world(sclient, peer)
    response = await post_event(sclient, stripe_event(world, peer, "completed_paid"))
    assert response.json()["outcome"] == "processed"
    world.order = await Order.get(id=world.order.id)
    assert world.order.status == OrderStatus.PAID
    return world


def refund_input(order: Order, **extra) -> dict:
    return {"input": {"orderId": str(order.id), "reason": "REQUESTED_BY_CUSTOMER", **extra}}


async def test_a_partial_refund_goes_through_stripe_and_the_webhook_does_not_count_it_again(
    sclient, peer
):
    world = await paid_world(sclient, peer)
    admin = await make_admin()
    data = await gql(
        sclient,
        REFUND,
        refund_input(world.order, amount=PARTIAL, note="Step 3 not needed"),
        token=admin.token,
    )
    payload = data["refundOrder"]
    assert payload["userErrors"] == []
    assert payload["order"] == {
        "id": str(world.order.id),
        "status": "PAID",
        "amount": world.order.amount,
        "refundedAmount": PARTIAL,
    }
    assert payload["refund"]["amount"] == PARTIAL
    assert payload["refund"]["manual"] is False
    assert payload["refund"]["requestedBy"] == {"id": admin.id}
    # Stripe was asked exactly so, once
    calls = [r for r in peer.requests if r["path"] == "/v1/refunds"]
    assert len(calls) == 1
    assert calls[0]["form"] == {
        "payment_intent": world.intent,
        "amount": str(PARTIAL),
        "reason": "requested_by_customer",
        "metadata": {"order_id": str(world.order.id)},
    }
    assert calls[0]["idempotency_key"] == f"refund-{world.order.id}-0-{PARTIAL}"
    assert [r["amount"] for r in peer.intents[world.intent]["refunds"]] == [PARTIAL]
    refund = await Refund.get(order_id=world.order.id)
    assert refund.provider_refund_id == peer.intents[world.intent]["refunds"][0]["id"]
    assert refund.requested_by_id == admin.obj.id

    # the client is told, and sees it in the dossier's timeline (without the admin's note)
    notified = await Notification.filter(
        user_id=world.profile.id, template_code="order_partially_refunded"
    )
    assert len(notified) == 1
    assert "30,00" in notified[0].message  # in French, the client's language
    timeline = await gql(
        sclient, TIMELINE, {"id": str(world.order.dossier_id)}, token=world.reg["token"]
    )
    entries = [e for e in timeline["dossier"]["timeline"] if e["kind"].startswith("ORDER_")]
    assert entries == [
        {
            "kind": "ORDER_PARTIALLY_REFUNDED",
            "actorType": "AGENT",
            "amount": PARTIAL,
            "refundedAmount": PARTIAL,
            "currency": "eur",
            "refundReason": "REQUESTED_BY_CUSTOMER",
            "note": None,
        }
    ]
    as_agent = await gql(
        sclient, TIMELINE, {"id": str(world.order.dossier_id)}, token=(await make_agent()).token
    )
    notes = [e.get("note") for e in as_agent["dossier"]["timeline"] if "note" in e]
    assert notes == ["Step 3 not needed"]

    # then Stripe's charge.refunded for that same refund: nothing new
    response = await post_event(sclient, ss.event("charge.refunded", peer.charge(world.intent)))
    assert response.json()["outcome"] == "processed"
    order = await Order.get(id=world.order.id)
    assert (order.status, order.refunded_amount) == (OrderStatus.PAID, PARTIAL)
    assert await Refund.filter(order_id=order.id).count() == 1
    assert await Event.filter(event_type=EventType.ORDER_PARTIALLY_REFUNDED).count() == 1


async def test_the_rest_refunded_cancels_the_dossier_and_tells_the_client(sclient, peer):
    world = await paid_world(sclient, peer)
    admin = await make_admin()
    await gql(sclient, REFUND, refund_input(world.order, amount=PARTIAL), token=admin.token)
    data = await gql(sclient, REFUND, refund_input(world.order), token=admin.token)  # the rest
    payload = data["refundOrder"]
    assert payload["userErrors"] == []
    assert payload["order"]["status"] == "REFUNDED"
    assert payload["order"]["refundedAmount"] == world.order.amount
    assert payload["refund"]["amount"] == world.order.amount - PARTIAL
    assert [r["idempotency_key"] for r in peer.requests if r["path"] == "/v1/refunds"] == [
        f"refund-{world.order.id}-0-{PARTIAL}",
        f"refund-{world.order.id}-1-{world.order.amount - PARTIAL}",
    ]
    dossier = await Dossier.get(id=world.order.dossier_id)
    assert dossier.status == DossierStatus.CANCELLED
    last = await DossierStatusHistory.filter(dossier_id=dossier.id).order_by("-created_at").first()
    assert last is not None
    assert (last.new_status, last.reason) == (DossierStatus.CANCELLED, "Payment refunded")
    assert (last.changed_by_type, last.changed_by_id) == (ActorType.AGENT, admin.obj.id)
    templates = sorted(n.template_code for n in await Notification.filter(user_id=world.profile.id))
    assert {"order_partially_refunded", "order_refunded", "dossier_cancelled"} <= set(templates)
    # nothing is left: a third refund is refused
    again = await gql(sclient, REFUND, refund_input(world.order), token=admin.token)
    assert [e["code"] for e in again["refundOrder"]["userErrors"]] == ["ORDER_NOT_REFUNDABLE"]
    # Stripe's report of both refunds adds nothing
    await post_event(sclient, ss.event("charge.refunded", peer.charge(world.intent)))
    assert await Refund.filter(order_id=world.order.id).count() == 2
    assert await Event.filter(event_type=EventType.ORDER_REFUNDED).count() == 1


@pytest.mark.parametrize("clicks", ["together", "one after the other"])
async def test_a_double_click_refunds_once(sclient, peer, clicks):
    world = await paid_world(sclient, peer)
    admin = await make_admin()

    async def click() -> dict:
        return await gql(
            sclient, REFUND, refund_input(world.order, amount=PARTIAL), token=admin.token
        )

    if clicks == "together":
        results = await asyncio.gather(click(), click())
    else:
        results = [await click(), await click()]
    assert all(r["refundOrder"]["userErrors"] == [] for r in results), results
    assert len({r["refundOrder"]["refund"]["id"] for r in results}) == 1
    assert len(peer.intents[world.intent]["refunds"]) == 1
    order = await Order.get(id=world.order.id)
    assert order.refunded_amount == PARTIAL
    assert await Refund.filter(order_id=order.id).count() == 1


async def test_a_retry_after_a_lost_answer_refunds_once(sclient, peer):
    """Stripe made the refund but its answer never came back (stripe-python's own retries
    lost too): the admin is told nothing was refunded, Stripe's webhook reports the
    refund, and the admin's retry gets that same refund back: one refund, theirs."""
    world = await paid_world(sclient, peer)
    admin = await make_admin()
    peer.lose_refund_answers = 3  # the call and stripe-python's two retries
    lost = await gql(sclient, REFUND, refund_input(world.order, amount=PARTIAL), token=admin.token)
    assert [e["code"] for e in lost["refundOrder"]["userErrors"]] == ["REFUND_UNAVAILABLE"]
    assert (await Order.get(id=world.order.id)).refunded_amount == 0
    # Stripe's charge.refunded for that refund comes before the admin tries again
    await post_event(sclient, ss.event("charge.refunded", peer.charge(world.intent)))
    assert (await Order.get(id=world.order.id)).refunded_amount == PARTIAL
    retried = await gql(
        sclient, REFUND, refund_input(world.order, amount=PARTIAL), token=admin.token
    )
    assert retried["refundOrder"]["userErrors"] == []
    assert retried["refundOrder"]["refund"]["requestedBy"] == {"id": admin.id}
    assert len(peer.intents[world.intent]["refunds"]) == 1  # one refund at Stripe
    assert (await Order.get(id=world.order.id)).refunded_amount == PARTIAL
    assert await Refund.filter(order_id=world.order.id).count() == 1
    assert await Event.filter(event_type=EventType.ORDER_PARTIALLY_REFUNDED).count() == 1


async def test_the_webhook_before_the_answer_counts_once(sclient, peer):
    """Stripe sends charge.refunded as soon as it refunds: it can be handled while
    refundOrder still waits for Stripe's answer, before it records the refund."""
    world = await paid_world(sclient, peer)
    admin = await make_admin()
    outcomes = []

    async def webhook_first() -> None:
        response = await post_event(sclient, ss.event("charge.refunded", peer.charge(world.intent)))
        outcomes.append(response.json()["outcome"])

    peer.before_refund_answer = webhook_first
    data = await gql(sclient, REFUND, refund_input(world.order, amount=PARTIAL), token=admin.token)
    assert outcomes == ["processed"]
    assert data["refundOrder"]["userErrors"] == []
    assert data["refundOrder"]["order"]["refundedAmount"] == PARTIAL
    assert data["refundOrder"]["refund"]["requestedBy"] == {"id": admin.id}
    order = await Order.get(id=world.order.id)
    assert order.refunded_amount == PARTIAL
    assert await Refund.filter(order_id=order.id).count() == 1
    assert await Event.filter(event_type=EventType.ORDER_PARTIALLY_REFUNDED).count() == 1


async def test_bad_refunds_are_refused_and_change_nothing(sclient, peer):
    world = await paid_world(sclient, peer)
    admin = await make_admin()
    _, pending = await registered_order(sclient)
    waived = await Order.get(dossier_id=(await make_dossier(await make_client())).id)
    waived.payment_method = PaymentMethod.WAIVED
    await waived.save(update_fields=["payment_method"])
    cases = [
        (refund_input(world.order, amount=0), "INVALID_AMOUNT", ["amount"]),
        (refund_input(world.order, amount=-5), "INVALID_AMOUNT", ["amount"]),
        (
            refund_input(world.order, amount=world.order.amount + 1),
            "AMOUNT_TOO_LARGE",
            ["amount"],
        ),
        (refund_input(pending), "ORDER_NOT_REFUNDABLE", ["orderId"]),
        (refund_input(waived), "NOTHING_TO_REFUND", ["orderId"]),
        (refund_input(world.order, note="x" * 1001), "TOO_LONG", ["note"]),
    ]
    for variables, code, field in cases:
        data = await gql(sclient, REFUND, variables, token=admin.token)
        errors = data["refundOrder"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [(code, field)], (variables, errors)
        assert errors[0]["message"]
        assert data["refundOrder"]["order"] is None
    assert not [r for r in peer.requests if r["path"] == "/v1/refunds"]
    assert await Refund.all().count() == 0
    assert (await Order.get(id=world.order.id)).refunded_amount == 0


async def test_a_provider_failure_changes_nothing_and_says_so(sclient, peer):
    world = await paid_world(sclient, peer)
    admin = await make_admin()
    peer.fail_with = 400
    data = await gql(sclient, REFUND, refund_input(world.order), token=admin.token)
    errors = data["refundOrder"]["userErrors"]
    assert [e["code"] for e in errors] == ["REFUND_UNAVAILABLE"]
    assert "nothing was refunded" in errors[0]["message"]
    order = await Order.get(id=world.order.id)
    assert (order.status, order.refunded_amount) == (OrderStatus.PAID, 0)
    assert (await Dossier.get(id=order.dossier_id)).status == DossierStatus.IN_PROGRESS
    assert await Refund.all().count() == 0


async def test_an_order_paid_offline_is_refunded_by_hand(sclient, peer):
    client = await make_client()
    dossier = await make_dossier(client)
    order = await Order.get(dossier_id=dossier.id)
    order.payment_method = PaymentMethod.BANK_TRANSFER
    await order.save(update_fields=["payment_method"])
    admin = await make_admin()
    data = await gql(sclient, REFUND, refund_input(order, amount=PARTIAL), token=admin.token)
    payload = data["refundOrder"]
    assert payload["userErrors"] == []
    assert payload["refund"]["manual"] is True
    assert payload["refund"]["requestedBy"] == {"id": admin.id}
    assert payload["order"]["refundedAmount"] == PARTIAL
    assert not [r for r in peer.requests if r["path"] == "/v1/refunds"]  # no provider call
    refund = await Refund.get(order_id=order.id)
    assert (refund.provider_refund_id, refund.requested_by_id) == (None, admin.obj.id)
    # a double click records it once
    again = await gql(sclient, REFUND, refund_input(order, amount=PARTIAL), token=admin.token)
    assert again["refundOrder"]["refund"]["id"] == payload["refund"]["id"]
    assert again["refundOrder"]["order"]["refundedAmount"] == PARTIAL
    assert await Refund.filter(order_id=order.id).count() == 1


async def test_the_dummy_provider_refunds_too(client):
    """The embedded default: paid on the dummy checkout page, refunded by the dummy."""
    reg = await _dummy_paid(client)
    admin = await make_admin()
    order = await Order.get(id=reg["order"]["id"])
    data = await gql(client, REFUND, refund_input(order), token=admin.token)
    payload = data["refundOrder"]
    assert payload["userErrors"] == []
    assert payload["order"]["status"] == "REFUNDED"
    refund = await Refund.get(order_id=order.id)
    assert refund.provider_refund_id is not None
    assert refund.provider_refund_id.startswith("re_dummy_")


async def _dummy_paid(client) -> dict:
    link, _ = await new_link(client)
    reg = await register(client, link)
    path = httpx.URL(reg["checkoutUrl"]).path
    assert (await client.post(f"{path}/complete")).status_code == 303
    return reg


@pytest.mark.parametrize("who", ["agent", "client", "anonymous"])
async def test_only_admins_refund(sclient, peer, who):
    world = await paid_world(sclient, peer)
    token = {
        "agent": (await make_agent()).token if who == "agent" else None,
        "client": world.reg["token"],
        "anonymous": None,
    }[who]
    body = await gql(sclient, REFUND, refund_input(world.order), token=token, expect_errors=True)
    assert error_codes(body) == ["UNAUTHENTICATED" if who == "anonymous" else "FORBIDDEN"]
    assert not [r for r in peer.requests if r["path"] == "/v1/refunds"]
    assert (await Order.get(id=world.order.id)).refunded_amount == 0
