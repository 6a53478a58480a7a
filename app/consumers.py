"""The outbox's consumers, registered once per process (web app and worker).

Wiring, above the services and the live-update publisher it registers.

Order matters: consumers run in registration order inside one dispatch transaction, so the
notifications consumer goes first and anything that publishes the notifications of a
batch (e.g. `notificationAdded`) registers after it.
"""

from __future__ import annotations

from app.services import outbox
from app.services.notifications import consumer as notifications_consumer
from app.services.phone import relay as phone_relay
from app.subscriptions import publisher


def install_consumers() -> None:
    """Idempotent: a consumer name is registered at most once."""
    outbox.register_consumer("notifications", notifications_consumer.consume)
    # An agent's answer back by SMS / WhatsApp to a client who wrote from there (issue 20).
    outbox.register_consumer("phone-relay", phone_relay.consume)
    # After notifications: it publishes the batch's notifications (notificationAdded).
    outbox.register_consumer("live-updates", publisher.consume)
