"""The outbox's consumers, registered once per process (web app and worker).

Order matters: consumers run in registration order inside one dispatch transaction, so the
notifications consumer goes first and anything that publishes the notifications of a
batch (e.g. `notificationAdded`) registers after it.
"""

from __future__ import annotations

from app.services import outbox


def install_consumers() -> None:
    """Idempotent: a consumer name is registered at most once."""
    from app.services import notifications

    outbox.register_consumer("notifications", notifications.consume)
    # After notifications: it publishes the batch's notifications (notificationAdded).
    from app.subscriptions import publisher

    outbox.register_consumer("live-updates", publisher.consume)
