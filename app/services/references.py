"""Case numbers (issue 19): `PV-2026-000123`, the prefix setting, the year the dossier was
created in (app.clock) and the year's sequence, six digits (more past 999,999).

`next_reference` bumps the year's row of `dossier_sequences` with one upsert inside the
transaction that creates the dossier (app.services.workflow.steps.open_dossier): the row
stays locked until that transaction ends, so two dossiers never share a number, and a
creation that rolls back takes its number back with it (none is ever seen twice).

`dossier_key` is the one place where a dossier's id may be given as its reference: every
root field and input taking a dossier id reads it through `app.schema.common
.dossier_id_of`, which calls this. An unknown reference answers exactly like an unknown id
(NotFound); a known one becomes its dossier's id, which then meets the same authorisation
as the id itself, so a reference tells nothing an id would not.
"""

from __future__ import annotations

import re
import uuid

from tortoise import connections

from app import clock
from app.errors import NotFound
from app.models import Dossier
from app.settings import get_settings

REFERENCE_RE = re.compile(r"^[A-Za-z]{1,8}-\d{4}-\d{6,}$")
_UPSERT = (
    "INSERT INTO dossier_sequences (year, last_value) VALUES ({p}, 1) "
    "ON CONFLICT (year) DO UPDATE SET last_value = dossier_sequences.last_value + 1 "
    "RETURNING last_value"
)


def format_reference(prefix: str, year: int, number: int) -> str:
    return f"{prefix}-{year}-{number:06d}"


async def next_reference() -> str:
    """The next case number of the current year; run it in the creating transaction."""
    year = clock.now().year
    connection = connections.get("default")
    placeholder = "$1" if connection.capabilities.dialect == "postgres" else "?"
    rows = await connection.execute_query_dict(_UPSERT.format(p=placeholder), [year])
    number = int(rows[0]["last_value"])
    return format_reference(get_settings().dossier_reference_prefix, year, number)


def looks_like_reference(value: str) -> bool:
    return bool(REFERENCE_RE.match(value.strip()))


async def dossier_key(value: str | None, *, what: str = "dossier") -> uuid.UUID:
    """A dossier's id from an id or a reference (case-insensitive); NotFound otherwise."""
    text = str(value or "").strip()
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    if looks_like_reference(text):
        found = await Dossier.filter(reference=text.upper()).values_list("id", flat=True)
        if found:
            return uuid.UUID(str(found[0]))
    raise NotFound(f"No such {what}.")
