"""Process-level tuning of the garbage collector, for the server process.

Python's cyclic collector walks every tracked object on a full collection. A server holds
a large, mostly permanent heap (modules, the schema, ~800 types and their resolvers) and,
with many open subscriptions, a large and long-lived set of per-connection objects: the
bench's soak saw full collections of ~775,000 objects pause the process 0.5 to 0.6 s, several
times a minute. After startup, the heap built so far is frozen (moved out of the
collector's reach: it lives as long as the process anyway, and reference counting still
frees what becomes unreachable) and the young generation is collected less often; memory
is still reclaimed, cycles included (the soak's RSS budget checks it).
"""

from __future__ import annotations

import gc

# Allocations between young collections: 700 by default, tuned for small scripts; a
# server allocates thousands of objects per request, so most young collections found
# nothing to free.
YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Freeze what startup built and space out collections. Call once, after the app is
    built, in the process that serves it (app/asgi.py)."""
    gc.collect()
    gc.freeze()
    # The older generations keep their default pace: a rarer full collection let cyclic
    # garbage pile up (1.2 million tracked objects and +110 MB after the bench's fan-out
    # scenarios) and would then pause the process for longer when it did run.
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
