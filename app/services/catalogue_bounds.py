"""How many rows the catalogue lets a plain list hold: the real bounds the node budget
counts plain lists by (app/schema/limits.py).

A dossier's steps are its product's steps, copied when it opens; its documents are the
document types of those steps (step_document_types). Nothing else limits them, so the
bound is the live catalogue's largest product and step (archived steps and document types
counted too: a running dossier may still have them), read in one statement and kept for
`CATALOGUE_BOUNDS_TTL` seconds per process (the catalogue is a few hundred rows and changes
rarely; a change made in this process is seen at once, one made elsewhere within the TTL).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.db import fetch_row

CATALOGUE_BOUNDS_TTL = 30.0
# Marks the statement as a cache refresh (once a TTL per process, not once an operation):
# the suite's per-request statement counts leave it out.
CACHE_REFRESH = "/* cache refresh */"

_SQL = f"""{CACHE_REFRESH}
SELECT
  (SELECT COALESCE(MAX(n), 0) FROM
     (SELECT COUNT(*) AS n FROM "product_steps" GROUP BY "product_id") AS s),
  (SELECT COALESCE(MAX(n), 0) FROM
     (SELECT COUNT(*) AS n FROM "step_document_types" GROUP BY "step_id") AS t),
  (SELECT COALESCE(MAX(n), 0) FROM
     (SELECT COUNT(*) AS n FROM "product_steps" ps
      JOIN "step_document_types" sdt ON sdt."step_id" = ps."step_id"
      GROUP BY ps."product_id") AS p)
"""


@dataclass(frozen=True)
class CatalogueBounds:
    steps_per_product: int = 1
    document_types_per_step: int = 1
    document_types_per_product: int = 1


_cached: tuple[float, CatalogueBounds] | None = None


async def catalogue_bounds() -> CatalogueBounds:
    """The catalogue's largest product (steps, document types) and step (document types),
    each at least 1."""
    global _cached
    cached = _cached
    if cached is not None and time.monotonic() - cached[0] < CATALOGUE_BOUNDS_TTL:
        return cached[1]
    # No lock: two operations refreshing at once read the same small statement twice.
    row = await fetch_row(_SQL) or (0, 0, 0)
    bounds = CatalogueBounds(*(max(1, int(n or 0)) for n in row))
    _cached = (time.monotonic(), bounds)
    return bounds


def forget_catalogue_bounds() -> None:
    """Called after every catalogue change: the next operation reads the bounds again."""
    global _cached
    _cached = None
