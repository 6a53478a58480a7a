"""Live updates: the broadcast hub (broadcaster, supervised), channel names, the outbox
consumer that publishes, and the streams subscriptions read. See hub.py for the hub's
guarantees; swap the medium by changing `Hub._create_backend`."""

from app.subscriptions.hub import (
    BroadcastUnavailable,
    Hub,
    StreamInterrupted,
    SubscriberTooSlow,
    hub_for,
)

__all__ = ["BroadcastUnavailable", "Hub", "StreamInterrupted", "SubscriberTooSlow", "hub_for"]
