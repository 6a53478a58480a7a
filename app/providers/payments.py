"""Payment providers behind one interface: `stripe` (real) and `dummy` (local, default).

Both return Stripe-shaped objects; the dummy's checkout page drives exactly the webhook's
event handling (see app/http/stripe_webhook.py), so local work exercises the real code path.
"""

from __future__ import annotations

import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.settings import Settings

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams, RefundCreateParams
    from stripe.params.checkout import SessionCreateParams


class PaymentProviderError(Exception):
    """The provider could not be reached or refused the call; safe to retry later."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


@dataclass(frozen=True)
class CheckoutRequest:
    order_id: uuid.UUID
    customer_id: str
    product_name: str
    amount: int
    currency: str
    success_url: str
    cancel_url: str
    idempotency_key: str
    customer_email: str | None = None
    allow_promotion_codes: bool = False


@dataclass(frozen=True)
class RefundRequest:
    order_id: uuid.UUID
    payment_intent_id: str
    amount: int
    currency: str
    # Stripe's reason ("requested_by_customer", "duplicate", "fraudulent"), or None
    reason: str | None
    idempotency_key: str


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    amount: int
    currency: str
    status: str  # Stripe's: "succeeded", or "pending" for the methods that take time


class PaymentProvider(Protocol):
    name: str

    async def create_customer(
        self, *, profile_id: uuid.UUID, email: str, name: str, phone: str | None
    ) -> str: ...

    async def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession: ...

    async def refund(self, request: RefundRequest) -> ProviderRefund: ...


class StripeProvider:
    """stripe-python's async client; deterministic idempotency keys, so a retry or a double
    click never makes a second Customer or Checkout Session."""

    name = "stripe"

    def __init__(self, secret_key: str, api_base: str = "") -> None:
        import stripe

        options: dict[str, Any] = {"max_network_retries": 2}
        if api_base:
            options["base_addresses"] = {"api": api_base}
        self._stripe = stripe
        self._client = stripe.StripeClient(
            secret_key, http_client=stripe.HTTPXClient(allow_sync_methods=False), **options
        )

    async def create_customer(
        self, *, profile_id: uuid.UUID, email: str, name: str, phone: str | None
    ) -> str:
        params: CustomerCreateParams = {
            "email": email,
            "name": name,
            "metadata": {"profile_id": str(profile_id)},
        }
        if phone:
            params["phone"] = phone
        try:
            customer = await self._client.v1.customers.create_async(
                params,
                options={"idempotency_key": f"customer-{profile_id}"},
            )
        except self._stripe.StripeError as exc:
            raise PaymentProviderError(str(exc)) from exc
        return customer.id

    async def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        params: SessionCreateParams = {
            "mode": "payment",
            "customer": request.customer_id,
            "client_reference_id": str(request.order_id),
            "metadata": {"order_id": str(request.order_id)},
            "payment_intent_data": {"metadata": {"order_id": str(request.order_id)}},
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency,
                        "unit_amount": request.amount,
                        "product_data": {"name": request.product_name},
                    },
                }
            ],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }
        if request.allow_promotion_codes:
            params["allow_promotion_codes"] = True
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params,
                options={"idempotency_key": request.idempotency_key},
            )
        except self._stripe.StripeError as exc:
            raise PaymentProviderError(str(exc)) from exc
        if not session.url:
            raise PaymentProviderError("Stripe returned a Checkout Session without a URL")
        return CheckoutSession(id=session.id, url=session.url)

    async def refund(self, request: RefundRequest) -> ProviderRefund:
        """A Refund of the payment intent (Stripe refunds its charge). The idempotency key
        makes a double click or a retry get the same refund back, never a second one."""
        params: RefundCreateParams = {
            "payment_intent": request.payment_intent_id,
            "amount": request.amount,
            "metadata": {"order_id": str(request.order_id)},
        }
        if request.reason:
            params["reason"] = request.reason
        try:
            refund = await self._client.v1.refunds.create_async(
                params, options={"idempotency_key": request.idempotency_key}
            )
        except self._stripe.StripeError as exc:
            raise PaymentProviderError(str(exc)) from exc
        if refund.status in ("failed", "canceled"):
            raise PaymentProviderError(f"Stripe refused the refund ({refund.status})")
        return ProviderRefund(
            id=refund.id,
            amount=refund.amount,
            currency=refund.currency,
            status=refund.status or "succeeded",
        )


class DummyProvider:
    """No network: the checkout URL is a page of this service.

    Its session id is the only thing that lets a visitor pay (or fail) an order on that page,
    so it is random, never derived from the order. Like Stripe, the same idempotency key
    (`checkout-<order>-<attempt>`: a retry or a double click) gets the same session back:
    this process remembers the newest `SESSIONS_REMEMBERED` keys. A retry that reaches
    another process or outlives that memory gets a new session, which becomes the order's
    current one (the superseded page then answers 404), as with any new attempt.
    """

    name = "dummy"
    SESSIONS_REMEMBERED = 10_000

    def __init__(self, public_api_url: str) -> None:
        self._base = public_api_url.rstrip("/")
        self._sessions: OrderedDict[str, str] = OrderedDict()  # idempotency key -> id
        self._refunds: OrderedDict[str, str] = OrderedDict()  # idempotency key -> id

    async def create_customer(
        self,
        *,
        profile_id: uuid.UUID,
        email: str,  # noqa: ARG002 - the real provider's signature
        name: str,  # noqa: ARG002
        phone: str | None,  # noqa: ARG002
    ) -> str:
        return f"cus_dummy_{profile_id.hex}"

    async def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        session_id = _remembered(
            self._sessions, request.idempotency_key, "cs_dummy_", self.SESSIONS_REMEMBERED
        )
        return CheckoutSession(id=session_id, url=f"{self._base}/dummy-checkout/{session_id}")

    async def refund(self, request: RefundRequest) -> ProviderRefund:
        """Always succeeds, with a random id; like Stripe, the same idempotency key gets
        the same refund back (in this process, for the newest keys)."""
        refund_id = _remembered(
            self._refunds, request.idempotency_key, "re_dummy_", self.SESSIONS_REMEMBERED
        )
        return ProviderRefund(
            id=refund_id, amount=request.amount, currency=request.currency, status="succeeded"
        )


def _remembered(memory: OrderedDict[str, str], key: str, prefix: str, size: int) -> str:
    """The id remembered for `key`, or a new random one (the oldest keys forgotten)."""
    found = memory.get(key)
    if found is not None:
        memory.move_to_end(key)
        return found
    made = prefix + secrets.token_urlsafe(32)
    memory[key] = made
    while len(memory) > size:
        memory.popitem(last=False)
    return made


def build_payment_provider(settings: Settings) -> PaymentProvider:
    if settings.payment_provider == "stripe":
        return StripeProvider(settings.stripe_secret_key, settings.stripe_api_base)
    return DummyProvider(settings.public_api_url)
