"""How search text is folded (issue 19), shared by the migration that indexes the existing
clients and the services that keep the embedded index in step (app/services/search.py).

`fold` is what PostgreSQL's `f_unaccent(lower(…))` does: lower case, accents removed
("Hélène" -> "helene"); `digits` keeps a phone number's digits only ("+33 6 12" ->
"33612"). A pure function, at the bottom of the layers."""

from __future__ import annotations

import re
import unicodedata

_NON_DIGIT = re.compile(r"[^0-9]")
# Letters unaccent maps to more than their base letter, or that NFKD does not decompose.
_SPECIAL = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l"})


def fold(text: str | None) -> str:
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_SPECIAL))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def digits(text: str | None) -> str:
    return _NON_DIGIT.sub("", text or "")


def search_row(full_name: str | None, email: str | None, phone: str | None) -> list[str]:
    """The embedded index's (name, email, phone) columns for one client."""
    return [fold(full_name), (email or "").lower(), digits(phone)]
