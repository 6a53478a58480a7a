"""Search for agents (issue 19): clients by name, e-mail or phone, dossiers by case number.

One meaning on both backends:
- names are compared folded (lower case, no accents: "Hélène" = "helene") by trigram
  similarity, pg_trgm's: the share of the two texts' trigrams they have in common. A name
  is a hit from `NAME_THRESHOLD` (pg_trgm's default `%` threshold), which tolerates a typo
  or two ("helen dupond" finds "Hélène Dupont") and scores it below the exact name;
- an e-mail is a hit when it contains the query (folded, at least 3 characters), a phone
  when its digits contain the query's digits (at least 4, leading zeros dropped: "06 12 34
  56 78" finds "+33 6 12 34 56 78"), each scored by the share of the field matched (1 for
  the whole of it);
- a dossier is a hit when the query is its case number (any case), scored 1;
- a client hit by several fields scores its best; hits come best first, then by id: the
  keyset of the pages (scores rounded to 4 decimals, so a cursor compares exactly).

PostgreSQL: pg_trgm and unaccent (migration 0022), GIN trigram indexes on the very
expressions below: `f_unaccent(lower(full_name))`, `email` (clients' credentials) and
the phone's digits; the case number through its unique index. SQLite (the embedded
default): the FTS5 trigram table `profile_search` (folded text written by
`index_clients`, which the services that write a name, an e-mail or a phone call) finds
the candidates, whose scores are computed here with pg_trgm's formula.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from tortoise import connections

from app.db import is_postgres
from app.domain.viewer import Viewer
from app.errors import BadUserInput, Forbidden
from app.models.search_text import digits, fold, search_row
from app.services.references import looks_like_reference

NAME_THRESHOLD = 0.3  # pg_trgm.similarity_threshold's default, the `%` operator's
MIN_QUERY, MAX_QUERY = 2, 100
MIN_EMAIL, MIN_DIGITS = 3, 4
EMBEDDED_CANDIDATES = 1000  # FTS5 candidates scored per embedded search
_PLACES = Decimal("0.0001")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Hit:
    kind: Literal["client", "dossier"]
    id: uuid.UUID
    score: Decimal  # 0..1, 4 decimals


@dataclass(frozen=True)
class Terms:
    name: str  # folded
    email: str | None  # folded, when long enough
    digits: str | None  # when the query is a phone number
    reference: str | None  # upper-cased, when it is shaped like one


def terms_of(query: str) -> Terms:
    text = " ".join(query.split())
    if not MIN_QUERY <= len(text) <= MAX_QUERY:
        raise BadUserInput(f"A search needs {MIN_QUERY} to {MAX_QUERY} characters.")
    folded = fold(text)
    phone = digits(text).lstrip("0")
    is_phone = not re.search(r"[^\d\s().+\-/]", text) and len(phone) >= MIN_DIGITS
    return Terms(
        name=folded,
        email=folded.replace(" ", "") if len(folded) >= MIN_EMAIL else None,
        digits=phone if is_phone else None,
        reference=text.upper() if looks_like_reference(text) else None,
    )


def _rounded(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(_PLACES, rounding=ROUND_HALF_UP)


async def search(
    viewer: Viewer, query: str, *, limit: int, after: tuple[Decimal, uuid.UUID] | None = None
) -> list[Hit]:
    """Up to `limit` hits after the `after` keyset (score, id), best first."""
    if not viewer.is_agent:
        raise Forbidden("Only agents can search.")
    terms = terms_of(query)
    if limit <= 0:
        return []
    if is_postgres():
        return await _search_postgres(terms, limit, after)
    return await _search_embedded(terms, limit, after)


# -- PostgreSQL ---------------------------------------------------------------------------

NAME_SQL = "f_unaccent(lower(p.full_name))"
PHONE_SQL = "regexp_replace(p.phone, '[^0-9]', '', 'g')"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def _search_postgres(
    terms: Terms, limit: int, after: tuple[Decimal, uuid.UUID] | None
) -> list[Hit]:
    params: list[object] = [terms.name]
    clients = [
        f"SELECT p.id, similarity({NAME_SQL}, $1) AS score FROM profiles p WHERE {NAME_SQL} % $1"
    ]
    if terms.email:
        params += [_like(terms.email), len(terms.email)]
        a, n = len(params) - 1, len(params)
        clients.append(
            f"SELECT c.profile_id, ${n}::float8 / char_length(c.email) FROM credentials c "
            f"WHERE c.profile_id IS NOT NULL AND c.email LIKE ${a}"
        )
    if terms.digits:
        params += [_like(terms.digits), len(terms.digits)]
        a, n = len(params) - 1, len(params)
        clients.append(
            f"SELECT p.id, ${n}::float8 / char_length({PHONE_SQL}) FROM profiles p "
            f"WHERE {PHONE_SQL} LIKE ${a}"
        )
    hits = [
        "SELECT 'client' AS kind, id, round(max(score)::numeric, 4) AS score FROM ("
        + " UNION ALL ".join(clients)
        + ") m GROUP BY id"
    ]
    if terms.reference:
        params.append(terms.reference)
        hits.append(
            f"SELECT 'dossier', d.id, 1.0000 FROM dossiers d WHERE d.reference = ${len(params)}"
        )
    keyset = ""
    if after is not None:
        params += [after[0], after[1]]
        s, i = len(params) - 1, len(params)
        keyset = f"WHERE h.score < ${s} OR (h.score = ${s} AND h.id > ${i})"
    params.append(limit)
    sql = (
        f"SELECT h.kind, h.id, h.score FROM ({' UNION ALL '.join(hits)}) h {keyset} "
        f"ORDER BY h.score DESC, h.id LIMIT ${len(params)}"
    )
    rows = await connections.get("default").execute_query_dict(sql, params)
    return [Hit(kind=row["kind"], id=row["id"], score=_rounded(row["score"])) for row in rows]


# -- SQLite (the embedded default) ----------------------------------------------------------


def trigrams(text: str) -> set[str]:
    """pg_trgm's trigrams: of each word (letters and digits), padded with two spaces in
    front and one behind."""
    found: set[str] = set()
    for word in _WORD.findall(text):
        padded = f"  {word} "
        found.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return found


def similarity(a: str, b: str) -> float:
    """pg_trgm's similarity(a, b): shared trigrams over all trigrams of the two."""
    ta, tb = trigrams(a), trigrams(b)
    if not ta or not tb:
        return 0.0
    common = len(ta & tb)
    return common / (len(ta) + len(tb) - common)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _match_expression(terms: Terms) -> str | None:
    parts = []
    inner = sorted({w[i : i + 3] for w in _WORD.findall(terms.name) for i in range(len(w) - 2)})
    if inner:
        parts.append("name : (" + " OR ".join(_quoted(t) for t in inner) + ")")
    if terms.email:
        parts.append(f"email : {_quoted(terms.email)}")
    if terms.digits:
        parts.append(f"phone : {_quoted(terms.digits)}")
    return " OR ".join(parts) or None


def _embedded_score(terms: Terms, name: str, email: str, phone: str) -> float:
    scores = [similarity(name, terms.name)]
    scores[0] = scores[0] if scores[0] >= NAME_THRESHOLD else 0.0
    if terms.email and email and terms.email in email:
        scores.append(len(terms.email) / len(email))
    if terms.digits and phone and terms.digits in phone:
        scores.append(len(terms.digits) / len(phone))
    return max(scores)


async def _search_embedded(
    terms: Terms, limit: int, after: tuple[Decimal, uuid.UUID] | None
) -> list[Hit]:
    connection = connections.get("default")
    hits: list[Hit] = []
    match = _match_expression(terms)
    if match is not None:
        rows = await connection.execute_query_dict(
            "SELECT s.profile_id, s.name, s.email, s.phone FROM profile_search s "
            "JOIN profiles p ON p.id = s.profile_id WHERE profile_search MATCH ? "
            "ORDER BY s.rank LIMIT ?",
            [match, EMBEDDED_CANDIDATES],
        )
        for row in rows:
            score = _embedded_score(terms, row["name"], row["email"], row["phone"])
            if score > 0:
                hits.append(Hit("client", uuid.UUID(str(row["profile_id"])), _rounded(score)))
    if terms.reference:
        rows = await connection.execute_query_dict(
            "SELECT id FROM dossiers WHERE reference = ?", [terms.reference]
        )
        hits += [Hit("dossier", uuid.UUID(str(row["id"])), _rounded(1)) for row in rows]
    hits.sort(key=lambda hit: (-hit.score, str(hit.id)))
    if after is not None:
        at, last = after
        hits = [h for h in hits if h.score < at or (h.score == at and str(h.id) > str(last))]
    return hits[:limit]


async def index_clients(profile_ids: Iterable[uuid.UUID]) -> None:
    """Rewrite the embedded index's rows of these clients from their current name, e-mail
    and phone (no-op on PostgreSQL, whose indexes are on the columns themselves). Call it
    in the transaction that changed them."""
    ids: Sequence[str] = [str(i) for i in profile_ids]
    if not ids or is_postgres():
        return
    connection = connections.get("default")
    marks = ", ".join("?" for _ in ids)
    rows = await connection.execute_query_dict(
        "SELECT p.id, p.full_name, p.phone, c.email FROM profiles p "
        f"LEFT JOIN credentials c ON c.profile_id = p.id WHERE p.id IN ({marks})",
        list(ids),
    )
    await connection.execute_query(
        f"DELETE FROM profile_search WHERE profile_id IN ({marks})", list(ids)
    )
    for row in rows:
        await connection.execute_query(
            "INSERT INTO profile_search (profile_id, name, email, phone) VALUES (?, ?, ?, ?)",
            [str(row["id"]), *search_row(row["full_name"], row["email"], row["phone"])],
        )
