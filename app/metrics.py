"""The process's Prometheus metrics (the operator's view, README "Operating it").

Every metric is defined here, once, on prometheus_client's default registry (which also
carries the `process_*` and `python_*` collectors). Each process counts for itself: a web
process its requests, sockets and live updates, the worker its passes and deliveries (the
embedded default runs the worker inside the web process, so one `/metrics` shows both).
prometheus_client's multiprocess mode is not used: its gauges and scrape-time values do
not fit it, and every process is scraped on its own address instead (README).

What is recorded on the hot path is an in-memory increment or an observation, never a
query: the database-wide gauges (outbox lag, delivery backlog) are read when scraped.
This module imports nothing of the app: any layer may count here.
"""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

NAMESPACE = "dossier"

# -- GraphQL operations ----------------------------------------------------------------
OUTCOMES = ("ok", "user_error", "error", "refused")
GRAPHQL_REQUESTS = Counter(
    "graphql_requests",
    "GraphQL operations (queries and mutations, over HTTP and WebSocket) by operation name "
    "and outcome: ok, user_error (a payload's userErrors), refused (UNAUTHENTICATED, "
    "FORBIDDEN, NOT_FOUND, RATE_LIMITED), error (anything else, invalid documents included).",
    ("operation", "outcome"),
    namespace=NAMESPACE,
)
GRAPHQL_DURATION = Histogram(
    "graphql_request_duration_seconds",
    "Time from a GraphQL operation's parse to its result, by operation name and outcome.",
    ("operation", "outcome"),
    namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OPEN_WEBSOCKETS = Gauge(
    "websockets_open", "WebSockets accepted and not yet closed.", namespace=NAMESPACE
)
OPEN_SUBSCRIPTIONS = Gauge(
    "subscriptions_open", "GraphQL subscriptions running.", namespace=NAMESPACE
)

# -- live updates (the broadcast hub) ---------------------------------------------------
LIVE_PUBLISHED = Counter(
    "live_updates_published",
    "Live updates this process published to the broadcast medium, by topic kind.",
    ("topic",),
    namespace=NAMESPACE,
)
LIVE_DELIVERED = Counter(
    "live_updates_delivered",
    "Live updates handed to a subscription of this process (one per subscriber), by topic kind.",
    ("topic",),
    namespace=NAMESPACE,
)
LIVE_DROPPED = Counter(
    "live_updates_dropped_subscribers",
    "Subscribers dropped for falling SUBSCRIPTION_QUEUE_SIZE updates behind, by topic kind.",
    ("topic",),
    namespace=NAMESPACE,
)

# -- the outbox and the deliveries (read at scrape time, database-wide) -----------------
OUTBOX_LAG = Gauge(
    "outbox_lag_seconds",
    "Age of the oldest event not yet dispatched (0: none waiting). Database-wide.",
    namespace=NAMESPACE,
)
DELIVERY_BACKLOG = Gauge(
    "delivery_backlog",
    "Notification deliveries PENDING (due or waiting for a retry), by channel. Database-wide.",
    ("channel",),
    namespace=NAMESPACE,
)
DELIVERIES_SENT = Counter(
    "deliveries_sent",
    "E-mails, SMS and WhatsApp messages this process sent, by channel.",
    ("channel",),
    namespace=NAMESPACE,
)
DELIVERY_FAILURES = Counter(
    "delivery_failures",
    "Failed send attempts of this process, by channel and kind: transient (retried later, "
    "or failed for good once out of attempts) or permanent (failed at once).",
    ("channel", "kind"),
    namespace=NAMESPACE,
)

# -- the worker ---------------------------------------------------------------------------
WORKER_PASS = Histogram(
    "worker_pass_duration_seconds",
    "One pass of a worker job, by job and outcome (ok, failed).",
    ("job", "outcome"),
    namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# -- the database pool (read at scrape time) ---------------------------------------------
DB_POOL = Gauge(
    "db_pool_connections",
    "Database connections of this process: open (in_use + idle), in_use, idle, and max "
    "(the pool's ceiling). The embedded SQLite default has one connection.",
    ("state",),
    namespace=NAMESPACE,
)


# -- bounded labels ------------------------------------------------------------------------

ANONYMOUS = "anonymous"  # an operation without a name
UNKNOWN = "unknown"  # no readable document, or a name that is no operation of it
OTHER = "other"  # past the cap of distinct names
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")


class OperationNames:
    """Operation names as labels, their number bounded: the first `limit` distinct names
    this process sees are kept, any later one counts as `other` (clients choose names)."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def label(self, name: str | None) -> str:
        if name is None:
            return ANONYMOUS
        if name in self._known:
            return name
        if not _NAME.match(name):
            return UNKNOWN
        if len(self._known) >= self.limit:
            return OTHER
        self._known.add(name)
        return name


_children: dict[tuple[str, str], tuple[Any, Any]] = {}


def record_operation(operation: str, outcome: str, seconds: float) -> None:
    """Count one operation and observe its duration (the labelled children are cached:
    `labels()` takes a lock and builds a key on every call)."""
    key = (operation, outcome)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            GRAPHQL_REQUESTS.labels(operation, outcome),
            GRAPHQL_DURATION.labels(operation, outcome),
        )
    children[0].inc()
    children[1].observe(seconds)


def topic_kind(topic: str) -> str:
    """`dossier.<id>.messages` -> `dossier.messages`, `agents.updates` as it is: the kind of
    a topic without its ids (and without the deployment's namespace)."""
    name = topic.rpartition(":")[2]
    parts = name.split(".")
    if len(parts) == 3:
        return f"{parts[0]}.{parts[2]}"
    return name if len(parts) == 2 else "other"
