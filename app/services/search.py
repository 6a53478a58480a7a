"""Search for agents (issue 19): clients by name, e-mail or phone, dossiers by case number.

One meaning on both backends:
- names are compared folded (lower case, no accents: "Hélène" = "helene") by pg_trgm's
  trigrams, in two steps. First the names holding every word of the query: each query
  word's `word_similarity` with the name (the best share of trigrams it has in common with
  a stretch of the name) reaches `WORD_THRESHOLD`, which forgives a typo in a word
  ("helen dupond" finds "Hélène Dupont") and finds a surname alone in a long name
  ("dupont" finds "Anne-Marie Dupont"). Only when no name holds them all, the names
  similar as a whole: `similarity` from `NAME_THRESHOLD` (pg_trgm's `%` default), which
  forgives worse typos ("jules fuare" finds "Jules Faure"). Either way a name is scored
  by its `similarity` with the query (1 for the whole name, a typo scores below it);
- an e-mail is a hit when it contains the query (folded, at least 3 characters), a phone
  when its digits contain the query's digits (at least 4, leading zeros dropped: "06 12 34
  56 78" finds "+33 6 12 34 56 78"), each scored by the share of the field matched (1 for
  the whole of it);
- a dossier is a hit when the query is its case number (any case), scored 1;
- a client hit by several fields scores its best; hits come best first, then by id: the
  keyset of the pages (scores rounded to 4 decimals, so a cursor compares exactly).

PostgreSQL: pg_trgm and unaccent (migration 0022); the folded name is a stored generated
column, `profiles.full_name_folded` = `f_unaccent(lower(full_name))`, with a GIN trigram
index (migration 0027), `email` (clients' credentials) and the phone's digits have GIN
trigram indexes on those very expressions, the case number its unique index. The words
step is one `word <% full_name_folded` per word, ANDed, which the GIN index answers
together: only the names holding every word are read (at 200,000 profiles, "jules faur"
reads 88 rows in about 3 ms); the whole-name step runs only when the words step found no
name (an InitPlan's one-time filter). Why so: matching the whole query by `%` (0022's
rule) reads every name sharing one word with the query (all the Jules for "jules faur":
8,000 candidate rows, 45 ms with unaccent run per row, still about 27 ms on the stored
column with the threshold at 0.5); a GiST nearest-neighbour scan measured 17 ms and would
still need the whole set for `totalCount`. `WORD_THRESHOLD` is set for the statement only
(`set_config('pg_trgm.word_similarity_threshold', …, true)` in the statement itself, one
round trip, no transaction to open): 0.5 keeps a typo inside a six-letter word ("dupomt"
finds "Jean Dupont"), pg_trgm's default 0.6 does not. SQLite (the
embedded default): the FTS5 trigram table `profile_search` (folded text written by
`index_clients`, which the services that write a name, an e-mail or a phone call) finds
the candidates, which are matched and scored here with pg_trgm's formulas
(`word_similarity`, `similarity`).
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
WORD_THRESHOLD = 0.5  # pg_trgm.word_similarity_threshold for the `<%` operator, per statement
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
    words: tuple[str, ...]  # the folded name's words (pg_trgm's: letters and digits)
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
        words=tuple(dict.fromkeys(_WORD.findall(folded))),
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

PHONE_SQL = "regexp_replace(p.phone, '[^0-9]', '', 'g')"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _names_sql(terms: Terms, params: list[object]) -> str | None:
    """The name hits (id, score): the words step, else the whole-name step."""
    if not terms.words:
        return None
    params += [terms.name, str(WORD_THRESHOLD)]
    q, threshold = len(params) - 1, len(params)
    # The words step's threshold, for this statement only (set_config's is_local: until
    # the end of the statement's transaction), set by an InitPlan that gates the scan: the
    # planner puts it in a one-time filter, which runs before the index is read.
    words = [f"(SELECT set_config('pg_trgm.word_similarity_threshold', ${threshold}, true)) "
             "IS NOT NULL"]  # fmt: skip
    for word in terms.words:
        params.append(word)
        words.append(f"${len(params)} <% p.full_name_folded")
    return (
        f"WITH worded AS MATERIALIZED (SELECT p.id, similarity(p.full_name_folded, ${q}) AS "
        f"score FROM profiles p WHERE {' AND '.join(words)}) "
        "SELECT id, score FROM worded UNION ALL "
        f"SELECT p.id, similarity(p.full_name_folded, ${q}) FROM profiles p "
        f"WHERE NOT EXISTS (SELECT 1 FROM worded) AND p.full_name_folded % ${q}"
    )


async def _search_postgres(
    terms: Terms, limit: int, after: tuple[Decimal, uuid.UUID] | None
) -> list[Hit]:
    params: list[object] = []
    clients = []
    names = _names_sql(terms, params)
    if names is not None:
        clients.append(f"SELECT * FROM ({names}) n")
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
    hits = []
    if clients:
        hits.append(
            "SELECT 'client' AS kind, id, round(max(score)::numeric, 4) AS score FROM ("
            + " UNION ALL ".join(clients)
            + ") m GROUP BY id"
        )
    if terms.reference:
        params.append(terms.reference)
        hits.append(
            f"SELECT 'dossier', d.id, 1.0000 FROM dossiers d WHERE d.reference = ${len(params)}"
        )
    if not hits:
        return []
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


def _trigram_list(text: str) -> list[str]:
    """pg_trgm's trigrams in their order: of each word (letters and digits), padded with
    two spaces in front and one behind."""
    found: list[str] = []
    for word in _WORD.findall(text):
        padded = f"  {word} "
        found += [padded[i : i + 3] for i in range(len(padded) - 2)]
    return found


def trigrams(text: str) -> set[str]:
    return set(_trigram_list(text))


def similarity(a: str, b: str) -> float:
    """pg_trgm's similarity(a, b): shared trigrams over all trigrams of the two."""
    ta, tb = trigrams(a), trigrams(b)
    if not ta or not tb:
        return 0.0
    common = len(ta & tb)
    return common / (len(ta) + len(tb) - common)


def word_similarity(word: str, text: str) -> float:
    """pg_trgm's word_similarity(word, text): the best similarity between the trigrams of
    `word` and a stretch of the trigrams of `text` (one that begins and ends with a trigram
    of `word`). The same walk as pg_trgm's: at each trigram of `word` met in `text`, the
    stretch ends there and starts where the similarity is best; the share counts each
    trigram once, `common / (word's + stretch's - common)`."""
    wanted = trigrams(word)
    sequence = _trigram_list(text)
    if not wanted or not sequence:
        return 0.0
    size = len(wanted)
    last: dict[str, int] = {}  # trigram -> its last position in the stretch, -1: none
    lower, count, unique, best = -1, 0, 0, 0.0
    for i, trigram in enumerate(sequence):
        found = trigram in wanted
        if lower >= 0 or found:
            if last.get(trigram, -1) < 0:
                unique += 1
                count += found
            last[trigram] = i
        if not found:
            continue
        if lower == -1:
            lower, unique = i, 1
        current = count / (size + unique - count)
        tmp_count, tmp_unique, previous = count, unique, lower
        for start in range(lower, i + 1):
            score = tmp_count / (size + tmp_unique - tmp_count)
            if score > current:
                current, unique, lower, count = score, tmp_unique, start, tmp_count
            first = sequence[start]
            if last.get(first, -1) == start:
                tmp_unique -= 1
                tmp_count -= first in wanted
        best = max(best, current)
        for start in range(previous, lower):
            first = sequence[start]
            if last.get(first, -1) == start:
                last[first] = -1
    return best


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


def _has_every_word(terms: Terms, name: str) -> bool:
    return bool(terms.words) and all(
        word_similarity(word, name) >= WORD_THRESHOLD for word in terms.words
    )


def _embedded_score(terms: Terms, name: str, email: str, phone: str, *, worded: bool) -> float:
    """`worded`: whether some candidate holds every word of the query (the words step),
    else the whole-name step."""
    scores = [similarity(name, terms.name)]
    if not (_has_every_word(terms, name) if worded else scores[0] >= NAME_THRESHOLD):
        scores[0] = 0.0
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
        worded = any(_has_every_word(terms, row["name"]) for row in rows)
        for row in rows:
            score = _embedded_score(terms, row["name"], row["email"], row["phone"], worded=worded)
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
