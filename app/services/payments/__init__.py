"""Payments (SPEC 2.1), in seven parts:

- `links`: payment links (an admin's offer to a prospect) and whether one still works;
- `checkout`: registration with a link, and the Stripe Checkout Session of a pending
  order (started at registration, resumed later);
- `fulfilment`: fulfilment = the paid checkout session opens the dossier; records
  PAYMENT_SUCCEEDED (`fulfil`);
- `failures`: an unpaid checkout suspends the profile and schedules payment reminders;
- `refunds`: an admin's refund (through the provider, or recorded by hand), Stripe's
  `charge.refunded`; a full refund cancels the dossier;
- `deferred`: Stripe events that came before the state they apply to, kept until it
  arrives;
- `orders` and `errors`: the order rows (visible, locked) and the payment errors.

Fulfilment, failures, refunds and deferred run in the Stripe webhook's transaction
(app/http/stripe_webhook.py).
Import from the module that defines a name; the names are also re-exported here.
"""

from app.services.payments.checkout import (
    Registration,
    close_checkout,
    normalise_phone,
    register_with_payment_link,
    resume_checkout,
    start_checkout,
)
from app.services.payments.errors import PaymentErrorCode, UnmatchedEvent
from app.services.payments.failures import payment_failed, schedule_reminders
from app.services.payments.fulfilment import fulfil
from app.services.payments.links import (
    DEFAULT_LINK_HOURS,
    MAX_LINK_HOURS,
    LinkState,
    create_payment_link,
    link_by_token,
    link_state,
    register_url,
)
from app.services.payments.orders import locked_order, visible_orders
from app.services.payments.refunds import charge_refunded, refund_order

__all__ = [
    "DEFAULT_LINK_HOURS",
    "MAX_LINK_HOURS",
    "LinkState",
    "PaymentErrorCode",
    "Registration",
    "UnmatchedEvent",
    "charge_refunded",
    "close_checkout",
    "create_payment_link",
    "fulfil",
    "link_by_token",
    "link_state",
    "locked_order",
    "normalise_phone",
    "payment_failed",
    "refund_order",
    "register_url",
    "register_with_payment_link",
    "resume_checkout",
    "schedule_reminders",
    "start_checkout",
    "visible_orders",
]
