"""From events to notifications: who is told, on which channels, with which words.

- `rules`: which events notify whom (an audience), with which template, on which channels.
- `facts`: what a batch of events refers to, loaded once, and the context a template reads.
- `rendering`: the templates rendered in the recipient's language (title, message, SMS,
  e-mail text and HTML).
- `consumer`: the outbox consumer that writes notifications and their deliveries.
- `queries`: the viewer's notifications, marking them read, the audit log (the API's side).

The delivery worker (`app.services.delivery`) sends what the consumer left PENDING.
"""

from __future__ import annotations

from app.services.notifications.consumer import consume
from app.services.notifications.queries import (
    MAX_MARK_IDS,
    event_log,
    mark_read,
    unread_count,
    visible_notifications,
)
from app.services.notifications.rendering import Rendered, normal_locale, render
from app.services.notifications.rules import RULES, TEMPLATE_CODES

__all__ = [
    "MAX_MARK_IDS",
    "RULES",
    "TEMPLATE_CODES",
    "Rendered",
    "consume",
    "event_log",
    "mark_read",
    "normal_locale",
    "render",
    "unread_count",
    "visible_notifications",
]
