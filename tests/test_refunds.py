"""Stripe events in any order (issue 17, item 3), against the real protocol peers of
tests/test_payments.py: webhook bodies shaped like Stripe's events and signed as Stripe
signs."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement, permutations
from typing import Any

import pytest

from app.models import (
    DeferredStripeEvent,
    Dossier,
    DossierStatusHistory,
    Order,
    Profile,
    Refund,
)
from app.models.enums import (
    DossierStatus,
    OrderStatus,
    UserStatus,
)
from tests import stripe_support as ss
from tests.test_payments import paid_session, post_event, registered_order

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
    assert (await Dossier.get(id=order.dossier_id)).status == DossierStatus.CANCELLED
    assert await DeferredStripeEvent.filter(applied_at=None).count() == 0


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
