"""Live updates: the broadcast hub (broadcaster, supervised), topic names, the outbox
consumer that publishes, and the streams subscriptions read. See hub.py for the hub's
guarantees; swap the medium by changing `Hub._create_backend`."""

from app.subscriptions.hub import Hub, hub_for
from app.subscriptions.queue import BroadcastUnavailable, StreamInterrupted, SubscriberTooSlow

__all__ = ["BroadcastUnavailable", "Hub", "StreamInterrupted", "SubscriberTooSlow", "hub_for"]
