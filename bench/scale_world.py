"""A deterministic multi-year world, generated inside PostgreSQL (`make bench-scale`).

`generate(conn, scale)` fills a freshly migrated, empty database with about five years of a
firm's life, in server-side SQL only (`INSERT … SELECT … FROM generate_series(…)`): no row
goes through Python. At scale 1.0: 200,000 profiles (each with a credential), 50 agents,
a handful of products, 100,000 dossiers (most of them old and COMPLETED, about a fifth
running), their step instances, ~500,000 documents with their versions and reviews,
~27,000 versions waiting for review, 1,500,000 messages, ~5,000,000 events (every event
type; all published and processed), ~1,450,000 notifications (most read), 150,000
payment reminders (125,000 sent), orders, payment links, step reminders, status history,
and the heavy cases: one client with 50,000 notifications and ten dossiers, one of which
has 20,000 messages. Every count is multiplied by `scale`, with floors that keep every
handle list long enough.

Determinism: ids are `md5('<kind>-' || key)::uuid`, spreads are hashes of the row's key
(`hashtext`), never random(). Times are relative to one `now`, taken once when the
generation starts, so due dates, overdue steps and "recent" behave as in a live system.

Rows are consistent with the application's rules (app/services): a dossier's status is
the one its current step's documents call for, a document's current version is its last
one, a version waits for review (`awaiting_review_since`) exactly when its document is
UPLOADED, step reminders are the slots `app.services.deadlines` plans (the default
schedule), processed when their time has passed, payment reminders are the slots
`schedule_reminders` makes, and events and notifications are derived from the rows they
describe (same times, same ids in their payloads).

Loading: one transaction (the two cyclic foreign keys are deferred to the commit), the
plain secondary indexes of the big tables dropped first and rebuilt, with their exact
definitions, at the end. The caller runs VACUUM ANALYZE.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.domain.schedule import parse_schedule
from app.settings import Settings, get_settings
from bench.world import PASSWORD_HASH

ACTIVE_SQL = "('CREATED','IN_PROGRESS','UNDER_REVIEW','CHANGES_REQUESTED')"
HEAVY_DOSSIERS = 10  # dossiers 1..9 running (company formation), dossier 10 completed
HANDLE_AGENT = 3  # agents 1 and 2 are administrators, the last one is deactivated
FIRST_ASSIGNABLE = 3
APP_URL = "http://127.0.0.1:8000"

# code, name, kind, price (cents), steps: (estimated hours, document types, required).
# Dossier mix (per 100): 35 / 25 / 15 / 15 / 9 / 1; the last product sells no more.
PRODUCTS: list[tuple[str, str, str, int, list[tuple[int, int, bool]]]] = [
    ("IMM_VISA", "Work visa application", "IMMIGRATION", 150_000,
     [(72, 3, True), (120, 1, True), (168, 2, True), (72, 1, True)]),
    ("TAX_RETURN", "Expat tax return", "TAX", 45_000,
     [(48, 3, True), (96, 1, True), (72, 1, True)]),
    ("COMPANY_SAS", "SAS company formation", "COMPANY_FORMATION", 250_000,
     [(72, 2, True), (96, 1, True), (48, 1, False), (168, 2, True), (72, 1, True)]),
    ("LEGAL_CONSULT", "Legal consultation file", "LEGAL", 80_000,
     [(48, 2, True), (72, 1, True), (48, 1, True)]),
    ("TRANSLATION", "Certified translations", "OTHER", 30_000,
     [(24, 2, True), (48, 2, True)]),
    ("COMPANY_FULL", "Company formation with full due diligence", "COMPANY_FORMATION", 490_000,
     [(336, 30, True), (168, 2, True)]),
    ("LEGACY_PACK", "Relocation pack (retired)", "IMMIGRATION", 99_000, [(72, 1, True)]),
]  # fmt: skip
# Clients' names (the search bench): a first and a last name drawn by hash, accents and
# hyphens included, so that names repeat (about 200,000 / (40 x 60) = 83 people per name)
# and a search meets the near misses a real firm's files hold.
FIRST_NAMES = (
    "Hélène",
    "Jean",
    "Marie",
    "Pierre",
    "Sophie",
    "Louis",
    "Camille",
    "Léa",
    "Hugo",
    "Chloé",
    "Lucas",
    "Inès",
    "Gabriel",
    "Zoé",
    "Arthur",
    "Manon",
    "Jules",
    "Élodie",
    "Raphaël",
    "Anaïs",
    "Noé",
    "Emma",
    "Théo",
    "Jade",
    "Maël",
    "Lina",
    "Adam",
    "Rose",
    "Paul",
    "Clémence",
    "François",
    "Agnès",
    "Joël",
    "Béatrice",
    "Rémi",
    "Cécile",
    "Jérôme",
    "Mathilde",
    "Anne-Marie",
    "Jean-Luc",
)
LAST_NAMES = (
    "Dupont",
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Lefebvre",
    "Mercier",
    "Dupond",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guérin",
    "Muller",
    "Henry",
    "Roussel",
    "Nicolas",
    "Perrin",
    "Morin",
    "Mathieu",
    "Clément",
    "Gauthier",
    "Dumont",
    "Lopez",
    "Fontaine",
    "Chevalier",
    "Robin",
    "Masson",
    "Sanchez",
    "Gérard",
    "Nguyen",
    "Boyer",
    "Denis",
    "Lemaire",
    "Duval",
    "Joly",
)
_FIRST_SQL = "ARRAY[" + ", ".join("'" + n + "'" for n in FIRST_NAMES) + "]"
_LAST_SQL = "ARRAY[" + ", ".join("'" + n + "'" for n in LAST_NAMES) + "]"
FULL_NAME_SQL = (
    f"({_FIRST_SQL})[1 + pg_temp.h('fn' || {{key}}) % {len(FIRST_NAMES)}] || ' ' || "
    f"({_LAST_SQL})[1 + pg_temp.h('ln' || {{key}}) % {len(LAST_NAMES)}]"
)
PRODUCT_OF_BUCKET = (
    "(CASE WHEN {b} < 35 THEN 1 WHEN {b} < 60 THEN 2 WHEN {b} < 75 THEN 3 "
    "WHEN {b} < 90 THEN 4 WHEN {b} < 99 THEN 5 ELSE 6 END)"
)

BIG_TABLES = (
    "profiles",
    "credentials",
    "payment_links",
    "dossiers",
    "orders",
    "step_instances",
    "documents",
    "document_versions",
    "document_reviews",
    "dossier_status_history",
    "messages",
    "payment_reminders",
    "step_reminders",
    "events",
    "notifications",
    "notification_deliveries",
    "stripe_events",
)

FUNCTIONS = """
CREATE FUNCTION pg_temp.h(t text) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT hashtext(t) & 2147483647 $$;
CREATE FUNCTION pg_temp.f(t text) RETURNS double precision LANGUAGE sql IMMUTABLE
  PARALLEL SAFE AS $$ SELECT (hashtext(t) & 2147483647)::double precision / 2147483648.0 $$;
CREATE FUNCTION pg_temp.u(t text) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT md5(t)::uuid $$;
"""


def _typo(name: str) -> str:
    """The name as an agent may type it: lower case, no accents, its last letter missing
    ("Hélène Dupont" -> "helene dupon")."""
    from app.models.search_text import fold

    return fold(name)[:-1]


def _uid(text: str) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


def _stamp_sql(expr: str) -> str:
    """`app.services.deadlines._stamp` in SQL: UTC, to the second, with a Z."""
    return f"to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


def _iso_sql(expr: str) -> str:
    return f"to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


class _Sizes:
    def __init__(self, scale: float) -> None:
        def n(base: int, floor: int) -> int:
            return max(floor, round(base * scale))

        self.profiles = n(200_000, 2_000)
        self.agents = n(50, 10)
        self.dossiers = n(100_000, 1_000)
        self.messages = n(1_500_000, 15_000)
        self.heavy_messages = n(20_000, 1_000)
        self.notifications = n(1_450_000, 14_500)
        self.heavy_notifications = n(50_000, 1_000)
        self.heavy_unread = n(300, 30)
        self.queue = n(27_000, 300)  # versions waiting for review, all dossiers
        self.lost = n(18_750, 60)  # prospects whose payment failed, every reminder sent
        self.recent = n(1_250, 10)  # payment failed in the last hours: reminders to come
        self.unused_links = n(3_000, 30)
        self.delivery_days = 30  # notifications that recent have their deliveries
        prospects = self.profiles - (self.dossiers - HEAVY_DOSSIERS + 1)
        if prospects - self.lost - self.recent < 250:
            raise ValueError("scale too small: not enough pending prospects")
        self.first_prospect = self.dossiers - HEAVY_DOSSIERS + 2  # profile index


async def generate(
    conn: asyncpg.Connection, scale: float = 1.0, *, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Fill the freshly migrated, empty database behind `conn`; returns the handles."""
    sizes = _Sizes(scale)
    now: datetime = await conn.fetchval("SELECT now()")
    counts: dict[str, int] = {}
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute(
            "SET CONSTRAINTS ALL DEFERRED; SET LOCAL work_mem = '256MB'; "
            "SET LOCAL maintenance_work_mem = '512MB'; SET LOCAL synchronous_commit = off"
        )
        await conn.execute(FUNCTIONS)
        indexes = await _drop_indexes(conn)
        gen = _Generator(conn, sizes, now, counts, log)
        await gen.run()
        t0 = time.perf_counter()
        # what app.services.waiting keeps: the open steps of dossiers that stopped running
        stopped = await conn.execute(
            "UPDATE step_instances s SET stopped_at = $1 FROM dossiers d "
            "WHERE d.id = s.dossier_id AND s.completed_at IS NULL AND d.status IN "
            "('ON_HOLD', 'CANCELLED', 'COMPLETED')",
            now,
        )
        log(f"step_instances: {stopped.split()[-1]} open steps of stopped dossiers marked "
            f"in {time.perf_counter() - t0:.1f}s")  # fmt: skip
        t0 = time.perf_counter()
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred checks, now
        log(f"deferred foreign keys checked in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        for definition in indexes:
            await conn.execute(definition)
        log(f"indexes: {len(indexes)} rebuilt in {time.perf_counter() - t0:.1f}s")
        handles = await gen.handles()
    total = sum(counts.values())
    log(f"world at scale {scale}: {total:,} rows in {time.perf_counter() - started:.1f}s")
    return {**handles, "counts": counts}


async def _drop_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop the plain (non-unique, not a constraint's) indexes of the big tables; returns
    their definitions, to rebuild them as they were once the rows are in."""
    rows = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "WHERE c.relname = ANY($1::text[]) AND c.relnamespace = current_schema()::regnamespace "
        "AND NOT i.indisunique AND NOT i.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY 1",
        list(BIG_TABLES),
    )
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [row["def"] for row in rows]


class _Generator:
    def __init__(
        self,
        conn: asyncpg.Connection,
        sizes: _Sizes,
        now: datetime,
        counts: dict[str, int],
        log: Callable[[str], None],
    ) -> None:
        self.conn = conn
        self.s = sizes
        self.now = now
        self.counts = counts
        self.log = log
        self.NOW = f"'{now.isoformat()}'::timestamptz"
        self.AGN = sizes.agents - FIRST_ASSIGNABLE  # agents 3 .. agents-1 take steps
        self.heavy_profile = _uid("profile-1")

    # --- helpers -----------------------------------------------------------------------

    def agent(self, key: str) -> str:
        """An assignable agent's id, spread by the hash of the SQL text expression `key`."""
        return f"pg_temp.u('agent-' || ({FIRST_ASSIGNABLE} + pg_temp.h({key}) % {self.AGN}))"

    async def exec(self, table: str, sql: str, label: str = "") -> int:
        t0 = time.perf_counter()
        status = await self.conn.execute(sql)
        rows = int(status.split()[-1]) if status.startswith(("INSERT", "SELECT")) else 0
        if table:
            self.counts[table] = self.counts.get(table, 0) + rows
        name = f"{table} ({label})" if label else table
        self.log(f"{name}: {rows:,} rows in {time.perf_counter() - t0:.1f}s")
        return rows

    async def temp(self, name: str, sql: str) -> None:
        await self.exec("", f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {sql}", name)
        await self.conn.execute(f"ANALYZE {name}")

    async def events(self, label: str, select: str) -> None:
        """Insert events from `select` (id, created_at, entity_type, entity_id,
        event_type, actor_type, actor_id, payload): all published and processed."""
        await self.exec(
            "events",
            "INSERT INTO events (id, created_at, entity_type, entity_id, event_type, "
            "actor_type, actor_id, payload, published_at, processed_at) "
            "SELECT id, created_at, entity_type, entity_id, event_type, actor_type, actor_id, "
            f"payload, LEAST(created_at + interval '150 milliseconds', {self.NOW}), "
            f"LEAST(created_at + interval '250 milliseconds', {self.NOW}) FROM ({select}) "
            "AS e(id, created_at, entity_type, entity_id, event_type, actor_type, actor_id, "
            "payload)",
            label,
        )

    async def notifications(self, label: str, select: str, *, limit: int | None = None) -> None:
        """Insert notifications from `select` (id, created_at, user_id, agent_id,
        dossier_id, event_id, template, event_type, path, group_key, unread): the row
        the outbox consumer writes, most of them read."""
        NOW = self.NOW
        heavy = f"'{self.heavy_profile}'::uuid"
        tail = f" ORDER BY id LIMIT {max(limit, 0)}" if limit is not None else ""
        recipient = (
            "CASE WHEN n.user_id IS NOT NULL THEN 'user:' || n.user_id "
            "ELSE 'agent:' || n.agent_id END"
        )
        await self.exec(
            "notifications",
            "INSERT INTO notifications (id, created_at, user_id, agent_id, dossier_id, "
            "event_id, title, message, template_code, payload, action_url, read_at, "
            "group_key) SELECT n.id, n.created_at, n.user_id, n.agent_id, n.dossier_id, "
            "n.event_id, initcap(replace(n.template, '_', ' ')), "
            "'About your file: ' || replace(n.template, '_', ' ') || '.', n.template, "
            f"jsonb_build_object('eventType', n.event_type, 'recipientKey', {recipient}, "
            "'locale', 'fr', 'context', '{}'::jsonb, 'eventIds', "
            "CASE WHEN n.event_id IS NULL THEN '[]'::jsonb "
            "ELSE jsonb_build_array(n.event_id::text) END, "
            f"'lastEventAt', {_iso_sql('n.created_at')}, 'channelUrls', '{{}}'::jsonb), "
            f"'{APP_URL}' || n.path, "
            "CASE WHEN n.unread IS NOT NULL THEN "
            "  CASE WHEN n.unread THEN NULL ELSE "
            f"LEAST(n.created_at + interval '3 hours', {NOW}) END "
            f"WHEN n.user_id = {heavy} THEN LEAST(n.created_at + interval '1 hour', {NOW}) "
            f"WHEN (n.created_at > {NOW} - interval '14 days' AND pg_temp.h('nr' || n.id) % 2 = 0) "
            "  OR pg_temp.h('nr' || n.id) % 400 = 0 THEN NULL "
            "ELSE LEAST(n.created_at + (1 + 47 * pg_temp.f('nt' || n.id)) * interval '1 hour', "
            f"{NOW}) END, n.group_key "
            f"FROM (SELECT * FROM ({select}) AS x(id, created_at, user_id, agent_id, dossier_id, "
            f"event_id, template, event_type, path, group_key, unread){tail}) AS n",
            label,
        )

    async def insert_json(self, table: str, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        names = ", ".join(f'"{c}"' for c in columns)
        t0 = time.perf_counter()
        status = await self.conn.execute(
            f'INSERT INTO "{table}" ({names}) SELECT {names} '
            f'FROM jsonb_populate_recordset(NULL::"{table}", $1::jsonb)',
            json.dumps(rows, default=str),
        )
        rows_in = int(status.split()[-1])
        self.counts[table] = self.counts.get(table, 0) + rows_in
        self.log(f"{table}: {rows_in:,} rows in {time.perf_counter() - t0:.1f}s")

    # --- the world ----------------------------------------------------------------------

    async def run(self) -> None:
        await self.catalogue()
        await self.plan_dossiers()
        await self.people_and_orders()
        await self.workflow()
        await self.chat()
        await self.reminders()
        await self.all_events()
        await self.all_notifications()
        await self.deliveries()

    async def catalogue(self) -> None:
        s = self.s
        cat_born = (self.now - timedelta(days=1950)).isoformat()
        cat_edit = (self.now - timedelta(days=1910)).isoformat()
        agents, credentials = [], []
        for a in range(1, s.agents + 1):
            born = (self.now - timedelta(days=1900 - 9 * a)).isoformat()
            agents.append(
                {
                    "id": str(_uid(f"agent-{a}")),
                    "email": f"agent{a}@scale.test",
                    "name": f"Agent {a}",
                    "active": a != s.agents,
                    "role": "ADMIN" if a < FIRST_ASSIGNABLE else "AGENT",
                    "locale": "en" if a % 3 == 0 else "fr",
                    "created_at": born,
                    "updated_at": (self.now - timedelta(days=1870 - 9 * a)).isoformat(),
                }
            )
            credentials.append(
                {
                    "id": str(_uid(f"cred-a-{a}")),
                    "email": f"agent{a}@scale.test",
                    "password_hash": PASSWORD_HASH,
                    "password_changed_at": born,
                    "profile_id": None,
                    "agent_id": str(_uid(f"agent-{a}")),
                    "created_at": born,
                    "updated_at": born,
                }
            )
        await self.insert_json("agents", agents)
        await self.insert_json("credentials", credentials)
        products, steps, product_steps, types = [], [], [], []
        for code, name, kind, price, plan in PRODUCTS:
            pid = _uid(f"product-{code}")
            products.append(
                {
                    "id": str(pid),
                    "code": code,
                    "name": name,
                    "description": f"{name}: every step, document and deadline handled.",
                    "dossier_type": kind,
                    "stripe_product_id": f"prod_scale_{code.lower()}",
                    "stripe_price_id": f"price_scale_{code.lower()}",
                    "price_amount": price,
                    "currency": "eur",
                    "initial_status": "CREATED",
                    "active": code != "LEGACY_PACK",
                    "created_at": cat_born,
                    "updated_at": cat_edit,
                }
            )
            for pos, (hours, ndocs, required) in enumerate(plan, start=1):
                sid = _uid(f"step-{code}-{pos}")
                steps.append(
                    {
                        "id": str(sid),
                        "code": f"{code}_S{pos}",
                        "label": f"{name}: step {pos}",
                        "description": None,
                        "position": pos,
                        "created_at": cat_born,
                    }
                )
                product_steps.append(
                    {
                        "id": str(_uid(f"product-step-{code}-{pos}")),
                        "product_id": str(pid),
                        "step_id": str(sid),
                        "position": pos,
                        "is_required": required,
                        "estimated_duration_hours": hours,
                        "created_at": cat_born,
                    }
                )
                for k in range(1, ndocs + 1):
                    types.append(
                        {
                            "id": str(_uid(f"doctype-{code}-{pos}-{k}")),
                            "code": f"{code}_S{pos}_D{k:02d}",
                            "label": f"Document {pos}.{k} ({name})",
                            "description": None,
                            "required_step_id": str(sid),
                            "max_file_size_mb": 10,
                            "allowed_extensions": ["pdf", "jpg", "png"],
                            "created_at": cat_born,
                            "updated_at": cat_edit,
                        }
                    )
        await self.insert_json("products", products)
        await self.insert_json("steps", steps)
        await self.insert_json("product_steps", product_steps)
        await self.insert_json("document_types", types)
        # what each step asks for (a type's `required_step_id` names its first such step)
        await self.insert_json(
            "step_document_types",
            [
                {
                    "id": t["id"],
                    "step_id": t["required_step_id"],
                    "document_type_id": t["id"],
                    "position": 0,
                    "created_at": t["created_at"],
                }
                for t in types
            ],
        )
        codes = ", ".join(f"('{code}', {pi})" for pi, (code, *_) in enumerate(PRODUCTS, start=1))
        await self.temp(
            "w_ps",
            "SELECT m.pi, p.id AS product_id, p.code, p.price_amount AS price, p.dossier_type "
            "AS kind, ps.position AS pos, ps.step_id, ps.estimated_duration_hours AS est, "
            "ps.is_required AS required, count(*) OVER (PARTITION BY p.id) AS nsteps "
            f"FROM (VALUES {codes}) AS m(code, pi) JOIN products p ON p.code = m.code "
            "JOIN product_steps ps ON ps.product_id = p.id",
        )
        await self.temp(
            "w_dt",
            "SELECT dt.id, sdt.step_id, "
            "row_number() OVER (PARTITION BY sdt.step_id ORDER BY sdt.position, dt.code) AS k "
            "FROM step_document_types sdt JOIN document_types dt ON dt.id = sdt.document_type_id",
        )

    async def plan_dossiers(self) -> None:
        """Dossiers, their steps' times and the current step's documents, in temp tables."""
        NOW, s = self.NOW, self.s
        bucket = PRODUCT_OF_BUCKET.format(b="pg_temp.h('prod' || d) % 100")
        await self.temp(
            "w_d0",
            "SELECT d, pg_temp.u('dossier-' || d) AS id, "
            f"CASE WHEN d <= {HEAVY_DOSSIERS} THEN 1 ELSE d - {HEAVY_DOSSIERS - 1} END AS p, "
            f"CASE WHEN d < {HEAVY_DOSSIERS} THEN 6 WHEN d = {HEAVY_DOSSIERS} THEN 1 "
            f"ELSE {bucket} END AS pi, "
            f"CASE WHEN d < {HEAVY_DOSSIERS} THEN 'ACTIVE' WHEN d = {HEAVY_DOSSIERS} "
            "THEN 'COMPLETED' WHEN sb < 700 THEN 'COMPLETED' WHEN sb < 740 THEN 'CANCELLED' "
            "WHEN sb < 760 THEN 'ON_HOLD' ELSE 'ACTIVE' END AS g, "
            "pg_temp.f('x' || d) AS fx, "
            f"CASE WHEN d = {HEAVY_DOSSIERS} THEN 730 WHEN sb >= 740 AND sb < 760 "
            "THEN 20 + 300 * pg_temp.f('age' || d) ELSE 90 + 1730 * pg_temp.f('age' || d) "
            "END AS age_d, "
            f"(d > {HEAVY_DOSSIERS} AND pg_temp.h('fp' || d) % 20 = 0) AS failed_first, "
            "(pg_temp.h('rf' || d) % 2 = 0) AS refund_flag "
            "FROM (SELECT d, pg_temp.h('st' || d) % 1000 AS sb "
            f"FROM generate_series(1, {s.dossiers}) d) t",
        )
        await self.temp(
            "w_d1",
            "SELECT d.*, ps.product_id, ps.price, ps.kind, ps.nsteps, "
            f"CASE WHEN d.g = 'COMPLETED' THEN NULL WHEN d.d < {HEAVY_DOSSIERS} THEN 1 "
            "ELSE 1 + pg_temp.h('cur' || d.d) % ps.nsteps END AS cur, "
            "pg_temp.u('profile-' || d.p) AS user_id "
            "FROM w_d0 d JOIN (SELECT DISTINCT pi, product_id, price, kind, nsteps FROM w_ps) ps "
            "USING (pi)",
        )
        agent = self.agent("'as' || id")
        await self.temp(
            "w_s0",
            "WITH s AS (SELECT d.d, d.id AS dossier_id, d.user_id, d.g, d.cur, d.pi, d.fx, "
            "d.age_d, ps.pos, ps.step_id, ps.est, ps.required, ps.nsteps, "
            "pg_temp.u('si-' || d.d || '-' || ps.pos) AS id, "
            "(d.g = 'COMPLETED' AND NOT ps.required AND pg_temp.h('skip' || d.d) % 3 = 0) "
            "AS skipped FROM w_d1 d JOIN w_ps ps USING (pi)), "
            "s2 AS (SELECT s.*, CASE WHEN skipped THEN 0 ELSE est * (0.3 + 1.2 * "
            "pg_temp.f('dur' || id)) END AS dur_h FROM s), "
            "s3 AS (SELECT s2.*, sum(dur_h) OVER (PARTITION BY d ORDER BY pos) - dur_h AS cb "
            "FROM s2), "
            "b AS (SELECT d, max(cb) FILTER (WHERE pos = cur) AS cbcur, "
            "max(est) FILTER (WHERE pos = cur) AS estcur, sum(dur_h) AS total FROM s3 GROUP BY d) "
            "SELECT s3.*, b.total, CASE WHEN s3.g <> 'ACTIVE' "
            f"THEN {NOW} - s3.age_d * interval '1 day' "
            f"ELSE {NOW} - (CASE WHEN s3.d = 1 THEN 4800 WHEN s3.d < {HEAVY_DOSSIERS} "
            "THEN s3.d * 48 ELSE s3.fx * 2.5 * b.estcur END + b.cbcur) * interval '1 hour' "
            "END AS base, "
            "CASE WHEN skipped THEN 'skipped' WHEN s3.g = 'COMPLETED' OR s3.pos < s3.cur "
            "THEN 'done' WHEN s3.pos = s3.cur THEN 'current' ELSE 'future' END AS state "
            "FROM s3 JOIN b USING (d)",
        )
        await self.temp(
            "w_s",
            "SELECT t.*, t.started_at + t.est * interval '1 hour' AS due_at, "
            "CASE WHEN t.state = 'done' THEN t.completed_at WHEN t.state = 'current' THEN "
            f"GREATEST(t.started_at, LEAST({NOW} - interval '5 minutes', "
            "t.started_at + t.est * 1.5 * interval '1 hour')) END AS we FROM ("
            "SELECT w.*, "
            "CASE WHEN state IN ('done', 'current') THEN base + cb * interval '1 hour' "
            "END AS started_at, "
            "CASE WHEN state = 'done' THEN base + (cb + dur_h) * interval '1 hour' "
            "WHEN state = 'skipped' THEN base + cb * interval '1 hour' END AS completed_at, "
            f"CASE WHEN state = 'current' AND d < {HEAVY_DOSSIERS} THEN "
            f"pg_temp.u('agent-{HANDLE_AGENT}') "
            f"WHEN state = 'current' AND pg_temp.h('as' || id) % 10 < 6 THEN {agent} "
            f"WHEN state = 'done' AND pg_temp.h('as' || id) % 2 = 0 THEN {agent} END "
            "AS assigned_to FROM w_s0 w) t",
        )
        # The documents of every started step. Done steps: APPROVED. The current step of a
        # running dossier: the first `queue` (by hash) UPLOADED, the rest spread; the heavy
        # client's: three uploaded, the rest PENDING (the upload targets).
        await self.temp(
            "w_doc",
            "SELECT s.d, s.dossier_id, s.user_id, s.id AS si_id, s.state, s.g, s.started_at, "
            "s.we, s.assigned_to, dt.id AS dt_id, dt.k, "
            "pg_temp.u('doc-' || s.id || '-' || dt.k) AS id, "
            "CASE WHEN s.state = 'done' THEN 'APPROVED' "
            f"WHEN s.d < {HEAVY_DOSSIERS} THEN CASE WHEN dt.k <= 3 THEN 'UPLOADED' "
            "ELSE 'PENDING' END "
            "WHEN s.g = 'ACTIVE' THEN CASE WHEN b < 25 THEN 'APPROVED' "
            "WHEN b < 37 THEN 'CHANGES_REQUESTED' WHEN b < 40 THEN 'REJECTED' ELSE 'PENDING' END "
            "ELSE CASE WHEN b < 35 THEN 'UPLOADED' WHEN b < 55 THEN 'APPROVED' "
            "WHEN b < 65 THEN 'CHANGES_REQUESTED' ELSE 'PENDING' END END AS st "
            "FROM (SELECT w_s.*, pg_temp.h('cs' || id) % 100 AS b FROM w_s) s "
            "JOIN w_dt dt ON dt.step_id = s.step_id WHERE s.state IN ('done', 'current')",
        )
        heavy_uploaded = await self.conn.fetchval(
            f"SELECT count(*) FROM w_doc WHERE d < {HEAVY_DOSSIERS} AND st = 'UPLOADED'"
        )
        await self.conn.execute(
            "UPDATE w_doc SET st = 'UPLOADED' WHERE id IN (SELECT id FROM w_doc "
            f"WHERE state = 'current' AND g = 'ACTIVE' AND d >= {HEAVY_DOSSIERS} "
            f"ORDER BY pg_temp.h('up' || id), id LIMIT {max(s.queue - heavy_uploaded, 0)})"
        )
        # a current step whose documents are all approved would have been completed
        await self.conn.execute(
            "UPDATE w_doc t SET st = 'PENDING' FROM (SELECT si_id, min(id::text)::uuid AS id "
            "FROM w_doc WHERE state = 'current' GROUP BY si_id "
            "HAVING bool_and(st = 'APPROVED')) x WHERE t.id = x.id"
        )
        # the dossier: its status follows its current step's documents (derived_status)
        await self.temp(
            "w_d",
            "SELECT d.*, cs.cs, cs.si_id AS current_si, cs.we AS we_cur, "
            "CASE WHEN d.g = 'ACTIVE' THEN cs.cs ELSE d.g END AS status, "
            "b.base AS created_at, CASE WHEN d.g = 'COMPLETED' THEN b.base + b.total * "
            "interval '1 hour' END AS completed_at, "
            "CASE WHEN d.g IN ('ON_HOLD', 'CANCELLED') THEN cs.we + interval '1 minute' END "
            "AS stopped_at, (d.g = 'CANCELLED' AND d.refund_flag) AS refunded "
            "FROM w_d1 d JOIN (SELECT DISTINCT ON (d) d, base, total FROM w_s ORDER BY d) b "
            "USING (d) LEFT JOIN (SELECT x.d, x.si_id, x.we, CASE "
            "WHEN bool_or(x.st IN ('CHANGES_REQUESTED', 'REJECTED')) THEN 'CHANGES_REQUESTED' "
            "WHEN bool_and(x.st IN ('UPLOADED', 'APPROVED')) THEN 'UNDER_REVIEW' "
            "ELSE 'IN_PROGRESS' END AS cs FROM w_doc x WHERE x.state = 'current' "
            "GROUP BY x.d, x.si_id, x.we) cs USING (d)",
        )
        await self.conn.execute("CREATE INDEX ON w_d (d)")
        await self.conn.execute("CREATE INDEX ON w_d (id)")

    async def people_and_orders(self) -> None:
        NOW, s = self.NOW, self.s
        lost_end = s.first_prospect + s.lost
        recent_end = lost_end + s.recent
        prospect_bucket = PRODUCT_OF_BUCKET.format(b="pg_temp.h('pprod' || p) % 100")
        # Orders: one paid (or refunded) per dossier; one waiting per prospect.
        await self.temp(
            "w_o",
            "SELECT pg_temp.u('order-d-' || d) AS id, d.p, d.user_id, d.product_id, "
            "d.price AS amount, d.id AS dossier_id, "
            "CASE WHEN d.refunded THEN 'REFUNDED' ELSE 'PAID' END AS status, "
            "d.created_at AS paid_at, d.created_at - CASE WHEN d.failed_first "
            "THEN interval '4 hours' ELSE (5 + 55 * pg_temp.f('oc' || d.d)) * "
            "interval '1 minute' END AS created_at, "
            "CASE WHEN d.failed_first THEN d.created_at - interval '3 hours 30 minutes' END "
            "AS failed_at, CASE WHEN d.failed_first THEN 'paid_later' ELSE 'paid' END AS kind, "
            f"d.d >= {HEAVY_DOSSIERS} AS with_link, "
            "CASE WHEN d.refunded THEN d.stopped_at END AS refunded_at "
            "FROM w_d d "
            "UNION ALL "
            "SELECT pg_temp.u('order-p-' || p), p, pg_temp.u('profile-' || p), ps.product_id, "
            "ps.price, NULL, 'PENDING', NULL, c.created_at, "
            "CASE WHEN kind IN ('lost', 'recent') THEN c.created_at + interval '30 minutes' END, "
            "kind, true, NULL FROM ("
            f"SELECT p, CASE WHEN p < {lost_end} THEN 'lost' WHEN p < {recent_end} THEN 'recent' "
            f"ELSE 'prospect' END AS kind, {prospect_bucket} AS pi, "
            f"CASE WHEN p < {lost_end} THEN {NOW} - (10 + 1800 * pg_temp.f('pc' || p)) * "
            f"interval '1 day' WHEN p < {recent_end} THEN {NOW} - (2 + 18 * pg_temp.f('pc' || p))"
            f" * interval '1 hour' ELSE {NOW} - (1 + 700 * 24 * pg_temp.f('pc' || p)) * "
            "interval '1 hour' END AS created_at "
            f"FROM generate_series({s.first_prospect}, {s.profiles}) p) c "
            "JOIN (SELECT DISTINCT pi, product_id, price FROM w_ps) ps USING (pi)",
        )
        await self.conn.execute("CREATE INDEX ON w_o (id)")
        await self.temp(
            "w_p",
            "SELECT p, user_id AS id, min(created_at) AS created_at, "
            "max(COALESCE(paid_at, failed_at, created_at)) AS updated_at, "
            "CASE WHEN bool_or(kind IN ('paid', 'paid_later')) THEN 'ACTIVE' "
            "WHEN bool_or(kind IN ('lost', 'recent')) THEN 'SUSPENDED' ELSE 'PENDING' END "
            "AS status FROM w_o GROUP BY p, user_id",
        )
        await self.exec(
            "profiles",
            "INSERT INTO profiles (id, created_at, updated_at, full_name, phone, status, "
            "stripe_customer_id, locale) SELECT id, created_at, updated_at, "
            f"{FULL_NAME_SQL.format(key='p')}, "
            "'+336' || lpad(p::text, 8, '0'), status, "
            "'cus_scale' || substr(md5('cus-' || p), 1, 14), "
            "CASE WHEN pg_temp.h('loc' || p) % 4 = 0 THEN 'en' ELSE 'fr' END FROM w_p",
        )
        await self.exec(
            "credentials",
            "INSERT INTO credentials (id, created_at, updated_at, email, password_hash, "
            "password_changed_at, profile_id, agent_id) SELECT pg_temp.u('cred-p-' || p), "
            "created_at, created_at, 'client' || p || '@scale.test', "
            f"'{PASSWORD_HASH}', CASE WHEN pg_temp.h('pw' || p) % 50 = 0 THEN "
            f"GREATEST(created_at, LEAST(created_at + interval '30 days', {NOW} - interval "
            "'1 minute')) ELSE created_at END, id, NULL FROM w_p",
            "profiles",
        )
        admin = "pg_temp.u('agent-' || (1 + pg_temp.h('adm' || o.id) % 2))"
        await self.exec(
            "payment_links",
            "INSERT INTO payment_links (id, created_at, token, product_id, prospect_email, "
            "prospect_name, stripe_checkout_session_id, created_by, expires_at, used_at, "
            "used_by) SELECT pg_temp.u('pl-' || o.id), o.created_at - (1 + 100 * "
            "pg_temp.f('plc' || o.id)) * interval '1 hour', "
            "'plt_' || md5('plt-' || o.id) || substr(md5('plu-' || o.id), 1, 11), "
            "o.product_id, 'client' || o.p || '@scale.test', 'Client ' || o.p, "
            f"'cs_scale_' || md5('cs-' || o.id), {admin}, o.created_at - (1 + 100 * "
            "pg_temp.f('plc' || o.id)) * interval '1 hour' + interval '7 days', o.created_at, "
            "o.user_id FROM w_o o WHERE o.with_link",
            "used",
        )
        await self.exec(
            "payment_links",
            "INSERT INTO payment_links (id, created_at, token, product_id, prospect_email, "
            "prospect_name, stripe_checkout_session_id, created_by, expires_at, used_at, "
            "used_by) SELECT pg_temp.u('pl-lead-' || i), c.at, "
            "'plt_' || md5('pll-' || i) || substr(md5('plv-' || i), 1, 11), "
            "(SELECT product_id FROM w_ps WHERE pi = 1 + i % 5 LIMIT 1), "
            "'lead' || i || '@scale.test', 'Lead ' || i, NULL, "
            "pg_temp.u('agent-' || (1 + i % 2)), c.at + interval '7 days', NULL, NULL "
            f"FROM (SELECT i, {NOW} - 400 * pg_temp.f('lead' || i) * interval '1 day' AS at "
            f"FROM generate_series(1, {s.unused_links}) i) c",
            "unused",
        )
        # Case numbers (app.services.references): per year of creation, in (created_at, id)
        # order, as migration 0022 numbers the dossiers it finds.
        year = "extract(year FROM created_at AT TIME ZONE 'UTC')::int"
        prefix = get_settings().dossier_reference_prefix
        await self.exec(
            "dossiers",
            "INSERT INTO dossiers (id, created_at, updated_at, user_id, product_id, type, "
            "status, current_step_instance_id, metadata, completed_at, reference) SELECT id, "
            "created_at, "
            "COALESCE(completed_at, stopped_at, we_cur, created_at), user_id, product_id, "
            f"kind, status, current_si, '{{}}'::jsonb, completed_at, '{prefix}-' || y || '-' || "
            "lpad(n::text, greatest(6, length(n::text)), '0') "
            f"FROM (SELECT *, {year} AS y, row_number() OVER (PARTITION BY {year} "
            "ORDER BY created_at, id) AS n FROM w_d) w",
        )
        # each year's counter, so that the next dossier continues its year's sequence
        await self.conn.execute(
            f"INSERT INTO dossier_sequences (year, last_value) SELECT {year}, count(*) "
            "FROM dossiers GROUP BY 1"
        )
        await self.exec(
            "orders",
            "INSERT INTO orders (id, created_at, updated_at, user_id, product_id, "
            "payment_link_id, dossier_id, amount, currency, status, "
            "stripe_checkout_session_id, stripe_payment_intent_id, stripe_customer_id, "
            "metadata, paid_at) SELECT o.id, o.created_at, COALESCE(o.refunded_at, o.paid_at, "
            "o.failed_at, o.created_at + interval '1 second'), o.user_id, o.product_id, "
            "CASE WHEN o.with_link THEN pg_temp.u('pl-' || o.id) END, o.dossier_id, o.amount, "
            "'eur', o.status, 'cs_scale_' || md5('cs-' || o.id), "
            "CASE WHEN o.paid_at IS NOT NULL THEN 'pi_scale' || substr(md5('pi-' || o.id), 1, 24) "
            "END, 'cus_scale' || substr(md5('cus-' || o.p), 1, 14), "
            "jsonb_build_object('checkout_attempt', 1, 'checkout_started_at', "
            f"{_iso_sql('o.created_at')}, 'checkout_closed', o.failed_at IS NOT NULL), "
            "o.paid_at FROM w_o o",
        )
        # payment reminders: the slots `schedule_reminders` makes at the failure
        hours = Settings.model_fields["payment_reminder_hours"].default
        slots = ", ".join(f"({k}, {h})" for k, h in enumerate(hours))
        await self.temp(
            "w_pr",
            "SELECT pg_temp.u('prm-' || o.id || '-' || sl.k || '-' || ch.c) AS id, o.id AS "
            "order_id, o.user_id, o.p, o.product_id, o.amount, ch.c AS channel, sl.k AS slot, "
            "o.failed_at + sl.h * interval '1 hour' AS scheduled_for, o.kind, o.paid_at "
            f"FROM w_o o CROSS JOIN (VALUES {slots}) AS sl(k, h) "
            "CROSS JOIN (VALUES ('EMAIL'), ('SMS')) AS ch(c) WHERE o.failed_at IS NOT NULL",
        )
        await self.exec(
            "payment_reminders",
            "INSERT INTO payment_reminders (id, user_id, order_id, sent_via, sent_at, "
            "clicked_at, slot, scheduled_for, cancelled_at) SELECT id, user_id, order_id, "
            "channel, sent, CASE WHEN sent IS NOT NULL AND pg_temp.h('clk' || id) % 8 = 0 "
            f"AND sent + interval '2 hours' < {NOW} THEN sent + interval '2 hours' END, slot, "
            "scheduled_for, CASE WHEN kind = 'paid_later' AND sent IS NULL THEN paid_at END "
            "FROM (SELECT w_pr.*, CASE WHEN kind = 'lost' OR slot = 0 THEN scheduled_for "
            "END AS sent FROM w_pr) r",
        )
        await self.exec(
            "stripe_events",
            "INSERT INTO stripe_events (id, stripe_event_id, type, processed_at) "
            "SELECT pg_temp.u('se-' || t || '-' || id), 'evt_scale' || md5(t || '-' || id), "
            "t, at FROM (SELECT id, 'checkout.session.completed' AS t, paid_at AS at FROM w_o "
            "WHERE paid_at IS NOT NULL UNION ALL SELECT id, 'checkout.session.expired', "
            "failed_at FROM w_o WHERE failed_at IS NOT NULL UNION ALL SELECT id, "
            "'charge.refunded', refunded_at FROM w_o WHERE refunded_at IS NOT NULL "
            "AND status = 'REFUNDED') x",
        )

    async def workflow(self) -> None:
        await self.exec(
            "step_instances",
            "INSERT INTO step_instances (id, created_at, dossier_id, step_id, assigned_to, "
            "position, is_required, started_at, completed_at, skipped_at, due_at, "
            "estimated_duration_hours, metadata) SELECT id, base, dossier_id, step_id, "
            "assigned_to, pos, required, started_at, completed_at, "
            "CASE WHEN state = 'skipped' THEN completed_at END, due_at, est, '{}'::jsonb "
            "FROM w_s",
        )
        reviewer = self.agent("'rv' || d.id")
        await self.temp(
            "w_v",
            "SELECT x.*, CASE WHEN x.v < x.nv THEN x.up_at + (x.next_at - x.up_at) / 2 "
            "WHEN x.review IS NOT NULL THEN x.up_at + (x.we - x.up_at) / 2 END AS reviewed_at "
            "FROM (SELECT d.id AS doc_id, d.dossier_id, d.user_id, d.si_id, d.st, "
            "d.assigned_to, d.state, d.g, d.dt_id, d.we, v.v, d.nv, "
            "pg_temp.u('ver-' || d.id || '-' || v.v) AS id, "
            "d.started_at + (d.we - d.started_at) * (v.v / (d.nv + 1.0)) * (0.5 + 0.5 * d.fu) "
            "AS up_at, "
            "d.started_at + (d.we - d.started_at) * ((v.v + 1) / (d.nv + 1.0)) * "
            "(0.5 + 0.5 * d.fu) AS next_at, "
            "CASE WHEN v.v < d.nv THEN CASE WHEN pg_temp.h('rj' || d.id) % 4 = 0 THEN "
            "'REJECTED' ELSE 'CHANGES_REQUESTED' END WHEN d.st IN ('APPROVED', "
            "'CHANGES_REQUESTED', 'REJECTED') THEN d.st END AS review, "
            f"COALESCE(d.assigned_to, {reviewer}) AS reviewer, "
            "pg_temp.h('ub' || d.id) % 20 = 0 AS by_agent FROM (SELECT w_doc.*, "
            "CASE WHEN st = 'PENDING' THEN 0 ELSE 1 + (pg_temp.h('nv' || id) % 6 = 0)::int "
            "END AS nv, pg_temp.f('fu' || id) AS fu FROM w_doc) d "
            "CROSS JOIN LATERAL generate_series(1, d.nv) AS v(v)) x",
        )
        await self.exec(
            "documents",
            "INSERT INTO documents (id, created_at, updated_at, dossier_id, document_type_id, "
            "step_instance_id, status, current_version_id) SELECT d.id, d.started_at + d.k * "
            "interval '1 millisecond', COALESCE(v.last_at, d.started_at + d.k * "
            "interval '1 millisecond'), d.dossier_id, d.dt_id, d.si_id, d.st, v.current "
            "FROM w_doc d LEFT JOIN (SELECT doc_id, max(GREATEST(up_at, reviewed_at)) AS "
            "last_at, (array_agg(id ORDER BY v DESC))[1] AS current FROM w_v GROUP BY doc_id) v "
            "ON v.doc_id = d.id",
        )
        await self.exec(
            "document_versions",
            "INSERT INTO document_versions (id, document_id, file_url, file_name, "
            "file_size_bytes, mime_type, uploaded_by_type, uploaded_by_id, version_number, "
            "uploaded_at, awaiting_review_since) SELECT id, doc_id, 'documents/' || dossier_id "
            "|| '/' || doc_id || '/' || md5('file-' || id) || '.pdf', 'scan-' || "
            "lpad((pg_temp.h('fn' || id) % 10000)::text, 4, '0') || '.pdf', 20000 + "
            "pg_temp.h('sz' || id) % 4000000, 'application/pdf', CASE WHEN by_agent THEN "
            "'AGENT' ELSE 'USER' END, CASE WHEN by_agent THEN reviewer ELSE user_id END, v, "
            "up_at, CASE WHEN v = nv AND st = 'UPLOADED' THEN up_at END FROM w_v",
        )
        await self.exec(
            "document_reviews",
            "INSERT INTO document_reviews (id, document_version_id, reviewer_id, status, "
            "reason, notes, reviewed_at) SELECT pg_temp.u('rev-' || id), id, reviewer, review, "
            "CASE review WHEN 'CHANGES_REQUESTED' THEN 'The scan is blurred: send a sharper one.' "
            "WHEN 'REJECTED' THEN 'This is not the requested document.' END, "
            "CASE WHEN pg_temp.h('nt' || id) % 5 = 0 THEN 'Checked against the original.' END, "
            "reviewed_at FROM w_v WHERE review IS NOT NULL",
        )
        # Status history: opened (CREATED, then IN_PROGRESS as the first step starts), per
        # completed step UNDER_REVIEW then IN_PROGRESS (or COMPLETED after the last), the
        # current step's status, then a hold or a cancellation.
        agent = self.agent("'hs' || s.dossier_id")
        agent_c, agent_z = self.agent("'hc' || id"), self.agent("'hz' || id")
        await self.temp(
            "w_h",
            "SELECT pg_temp.u('dsh-' || x.dossier_id || '-' || x.seq) AS id, x.* FROM ("
            "SELECT id AS dossier_id, '0' AS seq, created_at, NULL AS old, 'CREATED' AS new, "
            "'SYSTEM' AS by_type, NULL::uuid AS by_id, NULL AS reason FROM w_d "
            "UNION ALL SELECT id, '1', created_at + interval '1 millisecond', 'CREATED', "
            "'IN_PROGRESS', 'SYSTEM', NULL, NULL FROM w_d "
            "UNION ALL SELECT s.dossier_id, 's' || s.pos || 'a', s.completed_at - "
            "(s.completed_at - s.started_at) * 0.1, 'IN_PROGRESS', 'UNDER_REVIEW', 'USER', "
            "s.user_id, 'Every document of the step is uploaded.' FROM w_s s "
            "WHERE s.state = 'done' "
            "UNION ALL SELECT s.dossier_id, 's' || s.pos || 'b', s.completed_at, 'UNDER_REVIEW', "
            "CASE WHEN s.g = 'COMPLETED' AND s.pos = s.nsteps THEN 'COMPLETED' "
            "ELSE 'IN_PROGRESS' END, 'AGENT', "
            f"COALESCE(s.assigned_to, {agent}), CASE WHEN s.g = 'COMPLETED' AND "
            "s.pos = s.nsteps THEN 'All steps are complete.' ELSE 'Document approved.' END "
            "FROM w_s s WHERE s.state = 'done' "
            "UNION ALL SELECT id, 'c', we_cur, 'IN_PROGRESS', cs, CASE WHEN cs = 'UNDER_REVIEW' "
            "THEN 'USER' ELSE 'AGENT' END, CASE WHEN cs = 'UNDER_REVIEW' THEN user_id "
            f"ELSE {agent_c} END, CASE WHEN cs = 'UNDER_REVIEW' THEN "
            "'Every document of the step is uploaded.' ELSE 'Document changes requested.' END "
            "FROM w_d WHERE cs IN ('UNDER_REVIEW', 'CHANGES_REQUESTED') "
            "UNION ALL SELECT id, 'z', stopped_at, cs, g, CASE WHEN refunded THEN 'SYSTEM' "
            f"ELSE 'AGENT' END, CASE WHEN NOT refunded THEN {agent_z} END, "
            "CASE WHEN refunded THEN 'Payment refunded' WHEN g = 'ON_HOLD' "
            "THEN 'Waiting for the consulate.' ELSE 'The client withdrew.' END "
            "FROM w_d WHERE g IN ('ON_HOLD', 'CANCELLED')) x",
        )
        await self.exec(
            "dossier_status_history",
            "INSERT INTO dossier_status_history (id, created_at, dossier_id, old_status, "
            "new_status, changed_by_type, changed_by_id, reason, metadata) SELECT id, "
            "created_at, dossier_id, old, new, by_type, by_id, reason, '{}'::jsonb FROM w_h",
        )

    async def chat(self) -> None:
        NOW, s = self.NOW, self.s
        normal = s.messages - s.heavy_messages
        others = s.dossiers - HEAVY_DOSSIERS
        agent = self.agent("'ma' || d.id")
        heavy_agent = f"pg_temp.u('agent-{HANDLE_AGENT}')"
        await self.exec(
            "messages",
            "INSERT INTO messages (id, created_at, dossier_id, sender_type, sender_id, content, "
            "attachments, read_at) SELECT id, at, dossier_id, CASE WHEN by_client THEN 'USER' "
            "ELSE 'AGENT' END, CASE WHEN by_client THEN user_id ELSE agent_id END, "
            "'Message ' || i || ': ' || (ARRAY['Here is the document you asked for.', "
            "'Could you check the file I sent?', 'We need a certified copy.', "
            "'Thank you, all good on our side.', 'When is the next appointment?'])"
            "[1 + pg_temp.h('mc' || i) % 5], '[]'::jsonb, "
            f"CASE WHEN at > {NOW} - interval '3 days' AND pg_temp.h('mr' || i) % 2 = 0 THEN NULL "
            f"ELSE LEAST(at + 24 * pg_temp.f('mrt' || i) * interval '1 hour', {NOW}) END "
            "FROM (SELECT m.i, pg_temp.u('msg-' || m.i) AS id, d.id AS dossier_id, d.user_id, "
            f"{agent} AS agent_id, pg_temp.h('ms' || m.i) % 2 = 0 AS by_client, d.created_at + "
            f"(COALESCE(d.completed_at, d.stopped_at, {NOW} - interval '1 minute') - "
            "d.created_at) * pg_temp.f('mt' || m.i) AS at "
            f"FROM generate_series(1, {normal}) m(i) JOIN w_d d ON d.d = {HEAVY_DOSSIERS} + 1 + "
            f"pg_temp.h('msg' || m.i) % {others}) x",
            "dossiers",
        )
        await self.exec(
            "messages",
            "INSERT INTO messages (id, created_at, dossier_id, sender_type, sender_id, content, "
            "attachments, read_at) SELECT pg_temp.u('msg-h-' || i), at, d.id, CASE WHEN i % 2 = 0 "
            f"THEN 'USER' ELSE 'AGENT' END, CASE WHEN i % 2 = 0 THEN d.user_id ELSE {heavy_agent} "
            "END, 'Heavy chat ' || i || ': about the articles of association.', '[]'::jsonb, "
            f"CASE WHEN i % 2 = 1 AND i > {s.heavy_messages - 80} THEN NULL "
            f"ELSE LEAST(at + interval '1 hour', {NOW}) END "
            f"FROM (SELECT i, d.created_at + ({NOW} - interval '1 minute' - d.created_at) * "
            f"(i / ({s.heavy_messages} + 1.0)) AS at FROM generate_series(1, {s.heavy_messages}) i "
            "CROSS JOIN w_d d WHERE d.d = 1) t CROSS JOIN w_d d WHERE d.d = 1",
            "the heavy dossier",
        )

    async def reminders(self) -> None:
        """Step reminders: the slots `deadlines.first_plan` plans when a step starts; those
        whose time has passed were processed by the chasing worker (SENT or SKIPPED)."""
        NOW = self.NOW
        schedule = parse_schedule(Settings.model_fields["document_reminder_schedule"].default)
        margin = Settings.model_fields["overdue_escalation_hours"].default
        slots = [
            f"('DOCUMENTS', '{slot.name}', '{slot.anchor}', {slot.hours})" for slot in schedule
        ]
        slots.append(f"('ESCALATION', 'overdue+{margin}h', 'due', {margin})")
        await self.temp(
            "w_sr",
            f"SELECT r.*, CASE WHEN r.at > {NOW} THEN 'PENDING' "
            "WHEN r.completed_at IS NOT NULL AND r.completed_at <= r.at THEN 'SKIPPED' "
            "WHEN r.stopped_at IS NOT NULL AND r.at >= r.stopped_at THEN 'SKIPPED' "
            "WHEN r.kind = 'ESCALATION' THEN 'SENT' "
            "WHEN r.state = 'current' AND r.cs = 'UNDER_REVIEW' THEN 'SKIPPED' "
            "WHEN pg_temp.h('srs' || r.id) % 3 <> 0 THEN 'SKIPPED' ELSE 'SENT' END AS st, "
            f"CASE WHEN r.at > {NOW} THEN NULL "
            "WHEN r.completed_at IS NOT NULL AND r.completed_at <= r.at THEN 'STEP_DONE' "
            "WHEN r.stopped_at IS NOT NULL AND r.at >= r.stopped_at THEN CASE WHEN r.status = "
            "'ON_HOLD' THEN 'ON_HOLD' ELSE 'DOSSIER_' || r.status END "
            "WHEN r.kind = 'ESCALATION' THEN NULL "
            "WHEN r.state = 'current' AND r.cs = 'UNDER_REVIEW' THEN 'NOTHING_MISSING' "
            "WHEN pg_temp.h('srs' || r.id) % 3 <> 0 THEN 'NOTHING_MISSING' END AS reason "
            "FROM (SELECT pg_temp.u('sr-' || s.id || '-' || sl.name) AS id, s.dossier_id, "
            "s.id AS si_id, s.step_id, s.pos, s.state, s.started_at, s.completed_at, s.due_at, "
            "s.assigned_to, s.user_id, d.status, d.stopped_at, d.cs, sl.kind, "
            "sl.name || CASE WHEN sl.anchor = 'due' THEN "
            f"'@' || {_stamp_sql('s.due_at')} ELSE '' END AS slot, "
            "CASE WHEN sl.anchor = 'start' THEN s.started_at ELSE s.due_at END + sl.hours * "
            "interval '1 hour' AS at FROM w_s s JOIN w_d d ON d.id = s.dossier_id "
            f"CROSS JOIN (VALUES {', '.join(slots)}) AS sl(kind, name, anchor, hours) "
            "WHERE s.state IN ('done', 'current')) r WHERE r.at > r.started_at",
        )
        await self.exec(
            "step_reminders",
            "INSERT INTO step_reminders (id, created_at, dossier_id, step_instance_id, kind, "
            "slot, scheduled_for, status, processed_at, skip_reason, event_id) SELECT r.id, "
            "r.started_at, r.dossier_id, r.si_id, r.kind, r.slot, r.at, r.st, CASE WHEN "
            f"r.st <> 'PENDING' THEN LEAST(r.at + interval '30 seconds', {NOW}) END, r.reason, "
            "CASE WHEN r.st = 'SENT' THEN pg_temp.u('ev-sr-' || r.id) END "
            "FROM w_sr r",
        )

    async def all_events(self) -> None:
        NOW = self.NOW
        sys = "'SYSTEM', NULL::uuid"
        ev = self.events
        await ev(
            "identity",
            "SELECT pg_temp.u('ev-ac-' || id), created_at, 'agent', id, 'AGENT_CREATED', "
            f"'AGENT', pg_temp.u('agent-1'), '{{}}'::jsonb FROM agents UNION ALL "
            "SELECT pg_temp.u('ev-au-' || id), updated_at, 'agent', id, 'AGENT_UPDATED', "
            "'AGENT', id, '{}'::jsonb FROM agents UNION ALL "
            "SELECT pg_temp.u('ev-pc-' || id), created_at, 'profile', id, 'PROFILE_CREATED', "
            f"{sys}, '{{}}'::jsonb FROM profiles UNION ALL "
            "SELECT pg_temp.u('ev-pu-' || id), GREATEST(created_at, LEAST(created_at + "
            f"interval '2 days', {NOW})), 'profile', id, 'PROFILE_UPDATED', 'USER', id, "
            "'{}'::jsonb FROM profiles WHERE pg_temp.h('pu' || id) % 20 = 0 UNION ALL "
            "SELECT pg_temp.u('ev-pw-' || c.id), c.password_changed_at, 'profile', c.profile_id, "
            "'PASSWORD_CHANGED', 'USER', c.profile_id, '{}'::jsonb FROM credentials c "
            "WHERE c.profile_id IS NOT NULL AND c.password_changed_at > c.created_at",
        )
        await ev(
            "catalogue",
            "SELECT pg_temp.u('ev-prc-' || id), created_at, 'product', id, 'PRODUCT_CREATED', "
            "'AGENT', pg_temp.u('agent-1'), jsonb_build_object('code', code) FROM products "
            "UNION ALL SELECT pg_temp.u('ev-pru-' || id), updated_at, 'product', id, "
            "'PRODUCT_UPDATED', 'AGENT', pg_temp.u('agent-2'), jsonb_build_object('code', code) "
            "FROM products UNION ALL SELECT pg_temp.u('ev-prs-' || id), created_at + "
            "interval '1 hour', 'product', id, 'PRODUCT_STEPS_SET', 'AGENT', "
            "pg_temp.u('agent-1'), '{}'::jsonb FROM products UNION ALL "
            "SELECT pg_temp.u('ev-stc-' || id), created_at, 'step', id, 'STEP_CREATED', 'AGENT', "
            "pg_temp.u('agent-1'), jsonb_build_object('code', code) FROM steps UNION ALL "
            "SELECT pg_temp.u('ev-dtc-' || id), created_at, 'document_type', id, "
            "'DOCUMENT_TYPE_CREATED', 'AGENT', pg_temp.u('agent-1'), "
            "jsonb_build_object('code', code) FROM document_types UNION ALL "
            "SELECT pg_temp.u('ev-dtu-' || id), updated_at, 'document_type', id, "
            "'DOCUMENT_TYPE_UPDATED', 'AGENT', pg_temp.u('agent-2'), "
            "jsonb_build_object('code', code) FROM document_types WHERE code LIKE '%_D01'",
        )
        await ev(
            "payment links",
            "SELECT pg_temp.u('ev-plc-' || l.id), l.created_at, 'payment_link', l.id, "
            "'PAYMENT_LINK_CREATED', 'AGENT', l.created_by, jsonb_build_object('email', "
            "l.prospect_email, 'name', l.prospect_name, 'productName', p.name, 'amount', "
            f"p.price_amount, 'currency', p.currency, 'url', '{APP_URL}/register?token=' || "
            f"l.token, 'expiresAt', {_iso_sql('l.expires_at')}) FROM payment_links l "
            "JOIN products p ON p.id = l.product_id UNION ALL "
            "SELECT pg_temp.u('ev-plu-' || id), used_at, 'payment_link', id, "
            f"'PAYMENT_LINK_USED', {sys}, jsonb_build_object('profileId', used_by) "
            "FROM payment_links WHERE used_at IS NOT NULL",
        )
        await ev(
            "orders",
            "SELECT pg_temp.u('ev-oc-' || id), created_at, 'order', id, 'ORDER_CREATED', "
            f"{sys}, jsonb_build_object('amount', amount, 'currency', 'eur') FROM w_o UNION ALL "
            "SELECT pg_temp.u('ev-cs-' || id), created_at + interval '1 second', 'order', id, "
            f"'CHECKOUT_STARTED', {sys}, jsonb_build_object('sessionId', 'cs_scale_' || "
            "md5('cs-' || id), 'attempt', 1) FROM w_o UNION ALL "
            "SELECT pg_temp.u('ev-pf-' || id), failed_at, 'order', id, 'PAYMENT_FAILED', "
            f"{sys}, jsonb_build_object('reason', 'expired') FROM w_o WHERE failed_at IS NOT NULL "
            "UNION ALL SELECT pg_temp.u('ev-ps-' || id), paid_at, 'order', id, "
            f"'PAYMENT_SUCCEEDED', {sys}, jsonb_build_object('amount', amount, 'currency', "
            "'eur', 'sessionId', 'cs_scale_' || md5('cs-' || id)) FROM w_o "
            "WHERE paid_at IS NOT NULL UNION ALL "
            "SELECT pg_temp.u('ev-or-' || id), refunded_at - interval '1 second', 'order', id, "
            f"'ORDER_REFUNDED', {sys}, '{{}}'::jsonb FROM w_o WHERE status = 'REFUNDED'",
        )
        await ev(
            "payment reminders",
            "SELECT pg_temp.u('ev-prs-' || r.id), r.sent_at, 'order', r.order_id, "
            f"'PAYMENT_REMINDER_SENT', {sys}, jsonb_build_object('reminderId', r.id, "
            f"'channel', r.sent_via, 'slot', r.slot, 'url', '{APP_URL}/pay/' || r.id, "
            "'productName', p.name, 'amount', o.amount, 'currency', o.currency) "
            "FROM payment_reminders r JOIN orders o ON o.id = r.order_id "
            "JOIN products p ON p.id = o.product_id WHERE r.sent_at IS NOT NULL UNION ALL "
            "SELECT pg_temp.u('ev-prk-' || id), clicked_at, 'order', order_id, "
            "'PAYMENT_REMINDER_CLICKED', 'USER', user_id, jsonb_build_object('reminderId', id) "
            "FROM payment_reminders WHERE clicked_at IS NOT NULL",
        )
        await ev(
            "dossiers",
            "SELECT pg_temp.u('ev-dc-' || id), created_at, 'dossier', id, 'DOSSIER_CREATED', "
            f"{sys}, jsonb_build_object('dossierId', id, 'orderId', pg_temp.u('order-d-' || d), "
            "'productId', product_id) FROM w_d UNION ALL "
            "SELECT pg_temp.u('ev-h-' || id), created_at, 'dossier', dossier_id, "
            "CASE new WHEN 'COMPLETED' THEN 'DOSSIER_COMPLETED' WHEN 'CANCELLED' THEN "
            "'DOSSIER_CANCELLED' ELSE 'DOSSIER_STATUS_CHANGED' END, by_type, by_id, "
            "jsonb_build_object('dossierId', dossier_id, 'old', old, 'new', new, 'reason', "
            "reason) FROM w_h",
        )
        agent_ss, agent_sc = self.agent("'ss' || id"), self.agent("'sc' || id")
        agent_sk = self.agent("'sk' || id")
        previous_due = _iso_sql("due_at - interval '2 days'")
        step = (
            "jsonb_build_object('dossierId', dossier_id, 'stepInstanceId', id, 'stepId', "
            "step_id, 'position', pos"
        )
        await ev(
            "steps",
            f"SELECT pg_temp.u('ev-ss-' || id), started_at, 'dossier', dossier_id, "
            "'STEP_STARTED', CASE WHEN pos = 1 THEN 'SYSTEM' ELSE 'AGENT' END, CASE WHEN "
            f"pos > 1 THEN {agent_ss} END, {step}) FROM w_s "
            "WHERE started_at IS NOT NULL UNION ALL "
            "SELECT pg_temp.u('ev-sc-' || id), completed_at, 'dossier', dossier_id, "
            f"'STEP_COMPLETED', 'AGENT', {agent_sc}, {step}) FROM w_s "
            "WHERE state = 'done' UNION ALL "
            "SELECT pg_temp.u('ev-sk-' || id), completed_at, 'dossier', dossier_id, "
            f"'STEP_SKIPPED', 'AGENT', {agent_sk}, {step}, 'reason', "
            "'Not needed for this client.') FROM w_s WHERE state = 'skipped' UNION ALL "
            "SELECT pg_temp.u('ev-sa-' || id), started_at + (we - started_at) * 0.05, "
            "'dossier', dossier_id, 'STEP_ASSIGNED', 'AGENT', pg_temp.u('agent-1'), "
            f"{step}, 'agentId', assigned_to, 'previousAgentId', NULL) FROM w_s "
            "WHERE assigned_to IS NOT NULL UNION ALL "
            "SELECT pg_temp.u('ev-sd-' || id), started_at + (we - started_at) * 0.5, "
            f"'dossier', dossier_id, 'STEP_DUE_DATE_CHANGED', 'AGENT', pg_temp.u('agent-2'), "
            f"{step}, 'previousDueAt', {previous_due}, 'dueAt', "
            f"{_iso_sql('due_at')}, 'reason', 'The consulate moved the appointment.') FROM w_s "
            "WHERE state = 'current' AND pg_temp.h('dd' || id) % 20 = 0",
        )
        await ev(
            "step reminders",
            "SELECT pg_temp.u('ev-sr-' || r.id), LEAST(r.at + interval '30 seconds', "
            f"{NOW}), 'dossier', r.dossier_id, CASE WHEN r.kind = 'DOCUMENTS' "
            f"THEN 'DOCUMENT_REMINDER_SENT' ELSE 'STEP_OVERDUE' END, {sys}, "
            "jsonb_build_object('dossierId', r.dossier_id, 'stepInstanceId', r.si_id, "
            "'stepId', r.step_id, 'position', r.pos, CASE WHEN r.kind = 'DOCUMENTS' THEN "
            "'reminderId' ELSE 'escalationId' END, r.id, 'slot', r.slot, 'scheduledFor', "
            f"{_iso_sql('r.at')}, 'dueAt', {_iso_sql('r.due_at')}, 'overdue', r.due_at < r.at, "
            "'missing', '[]'::jsonb, 'assignedToId', r.assigned_to) FROM w_sr r "
            "WHERE r.st = 'SENT'",
        )
        await ev(
            "documents",
            "SELECT pg_temp.u('ev-du-' || id), up_at, 'document', doc_id, 'DOCUMENT_UPLOADED', "
            "CASE WHEN by_agent THEN 'AGENT' ELSE 'USER' END, CASE WHEN by_agent THEN reviewer "
            "ELSE user_id END, jsonb_build_object('dossierId', dossier_id, 'documentId', doc_id, "
            "'versionId', id, 'versionNumber', v, 'documentTypeId', dt_id) FROM w_v UNION ALL "
            "SELECT pg_temp.u('ev-rv-' || id), reviewed_at, 'document', doc_id, "
            "'DOCUMENT_' || review, 'AGENT', reviewer, jsonb_build_object('dossierId', "
            "dossier_id, 'documentId', doc_id, 'versionId', id, 'reviewId', "
            "pg_temp.u('rev-' || id), 'decision', review) FROM w_v WHERE review IS NOT NULL",
        )
        agent_mr = self.agent("'mr' || m.dossier_id")
        await ev(
            "messages",
            "SELECT pg_temp.u('ev-ms-' || id), created_at, 'message', id, 'MESSAGE_SENT', "
            "sender_type, sender_id, jsonb_build_object('dossierId', dossier_id, 'senderType', "
            "sender_type, 'senderId', sender_id, 'previousMessageId', lag(id) OVER "
            "(PARTITION BY dossier_id ORDER BY created_at, id)) FROM messages UNION ALL "
            "SELECT pg_temp.u('ev-mr-' || m.id), m.read_at, 'dossier', m.dossier_id, "
            "'MESSAGES_READ', CASE WHEN m.sender_type = 'AGENT' THEN 'USER' ELSE 'AGENT' END, "
            "CASE WHEN m.sender_type = 'AGENT' THEN d.user_id ELSE "
            f"{agent_mr} END, jsonb_build_object('count', 1, "
            "'readerType', CASE WHEN m.sender_type = 'AGENT' THEN 'USER' ELSE 'AGENT' END) "
            "FROM messages m JOIN dossiers d ON d.id = m.dossier_id "
            "WHERE m.read_at IS NOT NULL AND pg_temp.h('mrd' || m.id) % 10 = 0",
        )

    async def all_notifications(self) -> None:
        s = self.s
        note = self.notifications
        heavy = f"'{self.heavy_profile}'::uuid"
        await note(
            "dossiers and payments",
            "SELECT pg_temp.u('n-dc-' || id), created_at, user_id, NULL::uuid, id, "
            "pg_temp.u('ev-dc-' || id), 'dossier_created', 'DOSSIER_CREATED', "
            "'/dossiers/' || id, NULL, NULL::boolean FROM w_d UNION ALL "
            "SELECT pg_temp.u('n-h-' || h.id), h.created_at, d.user_id, NULL, d.id, "
            "pg_temp.u('ev-h-' || h.id), lower('dossier_' || h.new), 'DOSSIER_' || h.new, "
            "'/dossiers/' || d.id, NULL, NULL FROM w_h h JOIN w_d d ON d.id = h.dossier_id "
            "WHERE h.new IN ('COMPLETED', 'CANCELLED') UNION ALL "
            "SELECT pg_temp.u('n-ps-' || id), paid_at, user_id, NULL, dossier_id, "
            "pg_temp.u('ev-ps-' || id), 'payment_succeeded', 'PAYMENT_SUCCEEDED', "
            "'/orders/' || id, NULL, NULL FROM w_o WHERE paid_at IS NOT NULL UNION ALL "
            "SELECT pg_temp.u('n-pf-' || id), failed_at, user_id, NULL, NULL, "
            "pg_temp.u('ev-pf-' || id), 'payment_failed', 'PAYMENT_FAILED', '/orders/' || id, "
            "NULL, NULL FROM w_o WHERE failed_at IS NOT NULL UNION ALL "
            # the e-mail and the phone reminder of one slot share one notification
            "SELECT pg_temp.u('n-pr-' || order_id || '-' || slot), sent_at, user_id, NULL, "
            "NULL, pg_temp.u('ev-prs-' || id), 'payment_reminder', 'PAYMENT_REMINDER_SENT', "
            "'/pay/' || id, 'reminder:' || order_id || ':' || slot || ':user:' || user_id, NULL "
            "FROM payment_reminders WHERE sent_at IS NOT NULL AND sent_via = 'EMAIL'",
        )
        await note(
            "steps",
            "SELECT pg_temp.u('n-ss-' || id), started_at, user_id, NULL::uuid, dossier_id, "
            "pg_temp.u('ev-ss-' || id), 'step_started', 'STEP_STARTED', '/dossiers/' || "
            "dossier_id, NULL, NULL::boolean FROM w_s WHERE started_at IS NOT NULL UNION ALL "
            "SELECT pg_temp.u('n-sr-' || id), LEAST(at + interval '30 seconds', "
            f"{self.NOW}), CASE WHEN kind = 'DOCUMENTS' THEN user_id END, CASE WHEN "
            "kind = 'ESCALATION' THEN assigned_to END, dossier_id, pg_temp.u('ev-sr-' || id), "
            "CASE WHEN kind = 'DOCUMENTS' THEN 'document_reminder' ELSE 'step_overdue' END, "
            "CASE WHEN kind = 'DOCUMENTS' THEN 'DOCUMENT_REMINDER_SENT' ELSE 'STEP_OVERDUE' END, "
            "'/dossiers/' || dossier_id, NULL, NULL FROM w_sr WHERE st = 'SENT' AND "
            "(kind = 'DOCUMENTS' OR assigned_to IS NOT NULL)",
        )
        await note(
            "documents",
            "SELECT pg_temp.u('n-rv-' || id), reviewed_at, user_id, NULL::uuid, dossier_id, "
            "pg_temp.u('ev-rv-' || id), lower('document_' || review), 'DOCUMENT_' || review, "
            "'/dossiers/' || dossier_id || '/documents/' || doc_id, NULL, NULL::boolean "
            "FROM w_v WHERE review IS NOT NULL UNION ALL "
            "SELECT pg_temp.u('n-du-' || id), up_at, NULL, assigned_to, dossier_id, "
            "pg_temp.u('ev-du-' || id), 'document_uploaded', 'DOCUMENT_UPLOADED', "
            "'/dossiers/' || dossier_id || '/documents/' || doc_id, NULL, NULL "
            "FROM w_v WHERE assigned_to IS NOT NULL AND NOT by_agent "
            f"AND up_at > {self.NOW} - interval '90 days'",
        )
        have_heavy = await self.conn.fetchval(
            f"SELECT count(*) FROM notifications WHERE user_id = {heavy}"
        )
        templates = (
            "ARRAY['message_received', 'document_reminder', 'step_started', "
            "'document_changes_requested', 'document_approved']"
        )
        types = (
            "ARRAY['MESSAGE_SENT', 'DOCUMENT_REMINDER_SENT', 'STEP_STARTED', "
            "'DOCUMENT_CHANGES_REQUESTED', 'DOCUMENT_APPROVED']"
        )
        filler = max(s.heavy_notifications - have_heavy, s.heavy_unread)
        await note(
            "the heavy client",
            f"SELECT pg_temp.u('n-heavy-' || i), {self.NOW} - ({filler} - i) * "
            f"(720.0 / {filler}) * interval '1 day' - interval '1 minute', {heavy}, "
            f"NULL::uuid, pg_temp.u('dossier-' || (1 + i % {HEAVY_DOSSIERS})), NULL::uuid, "
            f"({templates})[1 + i % 5], ({types})[1 + i % 5], '/dossiers/' || "
            f"pg_temp.u('dossier-' || (1 + i % {HEAVY_DOSSIERS})), CASE WHEN i % 5 = 0 THEN "
            f"'chat:' || pg_temp.u('dossier-' || (1 + i % {HEAVY_DOSSIERS})) || ':user:' || "
            f"{heavy} END, i > {filler - s.heavy_unread} FROM generate_series(1, {filler}) i",
        )
        # the chat: one notification per burst of an agent's messages (about one in three)
        await note(
            "chat",
            "SELECT pg_temp.u('n-ms-' || m.id), m.created_at, d.user_id, NULL::uuid, d.id, "
            "pg_temp.u('ev-ms-' || m.id), 'message_received', 'MESSAGE_SENT', '/dossiers/' || "
            "d.id || '/messages', 'chat:' || d.id || ':user:' || d.user_id, NULL::boolean "
            "FROM messages m JOIN dossiers d ON d.id = m.dossier_id "
            f"WHERE m.sender_type = 'AGENT' AND d.user_id <> {heavy} "
            "AND pg_temp.h('mb' || m.id) % 3 = 0",
        )

    async def deliveries(self) -> None:
        NOW, days = self.NOW, self.s.delivery_days
        await self.exec(
            "notification_deliveries",
            "INSERT INTO notification_deliveries (id, created_at, notification_id, channel, "
            "recipient, status, provider, provider_message_id, provider_response, attempts, "
            "next_attempt_at, claimed_until, last_error, sent_at, failed_at) "
            "SELECT pg_temp.u('nd-' || n.id || '-' || c.ch), n.created_at, n.id, c.ch, "
            "CASE WHEN c.ch = 'IN_APP' THEN COALESCE('user:' || n.user_id, 'agent:' || "
            "n.agent_id) ELSE COALESCE(cp.email, ca.email) END, "
            "CASE WHEN c.ch = 'EMAIL' AND pg_temp.h('ndf' || n.id) % 100 = 0 THEN 'FAILED' "
            "ELSE 'SENT' END, CASE WHEN c.ch = 'IN_APP' THEN 'in_app' ELSE 'smtp' END, "
            "CASE WHEN c.ch = 'EMAIL' THEN '<' || pg_temp.u('nd-' || n.id || '-EMAIL') || "
            "'@scale.test>' END, NULL, CASE WHEN c.ch = 'IN_APP' THEN 0 "
            "WHEN pg_temp.h('ndf' || n.id) % 100 = 0 THEN 5 ELSE 1 END, "
            "CASE WHEN c.ch = 'EMAIL' THEN n.created_at END, NULL, "
            "CASE WHEN c.ch = 'EMAIL' AND pg_temp.h('ndf' || n.id) % 100 = 0 THEN "
            "'550 mailbox unavailable' END, "
            "CASE WHEN c.ch = 'IN_APP' THEN n.created_at WHEN pg_temp.h('ndf' || n.id) % 100 "
            f"<> 0 THEN LEAST(n.created_at + interval '20 seconds', {NOW}) END, "
            "CASE WHEN c.ch = 'EMAIL' AND pg_temp.h('ndf' || n.id) % 100 = 0 THEN "
            f"LEAST(n.created_at + interval '2 hours', {NOW}) END "
            "FROM notifications n CROSS JOIN (VALUES ('IN_APP'), ('EMAIL')) AS c(ch) "
            "LEFT JOIN credentials cp ON cp.profile_id = n.user_id "
            "LEFT JOIN credentials ca ON ca.agent_id = n.agent_id "
            f"WHERE n.created_at > {NOW} - interval '{days} days'",
            f"last {days} days",
        )

    # --- handles ------------------------------------------------------------------------

    async def handles(self) -> dict[str, Any]:
        conn = self.conn
        columns = "id, email, password_hash, password_changed_at, profile_id, agent_id"
        client = dict(
            await conn.fetchrow(
                f"SELECT {columns} FROM credentials WHERE profile_id = $1", self.heavy_profile
            )
        )
        agent_id = _uid(f"agent-{HANDLE_AGENT}")
        agent = dict(
            await conn.fetchrow(f"SELECT {columns} FROM credentials WHERE agent_id = $1", agent_id)
        )
        upload_targets = [
            r["id"]
            for r in await conn.fetch(
                "SELECT doc.id FROM documents doc JOIN dossiers d ON d.id = doc.dossier_id "
                "WHERE d.user_id = $1 AND d.status IN " + ACTIVE_SQL + " AND doc.status = "
                "'PENDING' AND doc.step_instance_id = d.current_step_instance_id "
                "ORDER BY doc.id",
                self.heavy_profile,
            )
        ]
        review_targets = [
            r["id"]
            for r in await conn.fetch(
                "SELECT v.id FROM document_versions v JOIN documents doc ON doc.id = "
                "v.document_id AND doc.current_version_id = v.id JOIN dossiers d "
                "ON d.id = doc.dossier_id JOIN step_instances si ON si.id = doc.step_instance_id "
                "WHERE v.awaiting_review_since IS NOT NULL AND doc.status = 'UPLOADED' "
                "AND si.completed_at IS NULL AND si.id = d.current_step_instance_id "
                "AND d.status IN " + ACTIVE_SQL + " "
                "ORDER BY si.assigned_to IS NOT DISTINCT FROM $1 DESC, v.uploaded_at, v.id "
                "LIMIT 1000",
                agent_id,
            )
        ]
        orders = [
            dict(r)
            for r in await conn.fetch(
                "SELECT o.id, o.stripe_checkout_session_id, o.amount, o.currency "
                "FROM orders o JOIN profiles p ON p.id = o.user_id "
                "WHERE o.status = 'PENDING' AND p.status = 'PENDING' "
                "AND o.stripe_checkout_session_id IS NOT NULL ORDER BY o.created_at DESC, o.id "
                "LIMIT 2000"
            )
        ]
        product_id = _uid(f"product-{PRODUCTS[0][0]}")
        # What the search bench looks for: a client in the middle of the list, by name with
        # a typo, by e-mail, by phone as a person would say it, and a dossier's number.
        someone = await conn.fetchrow(
            "SELECT p.full_name, p.phone, c.email FROM profiles p JOIN credentials c "
            "ON c.profile_id = p.id WHERE p.id = $1",
            _uid(f"profile-{max(2, self.s.profiles // 2)}"),
        )
        reference = await conn.fetchval(
            "SELECT reference FROM dossiers ORDER BY created_at DESC, id LIMIT 1 OFFSET 10"
        )
        search = {
            "name": _typo(someone["full_name"]),
            "email": someone["email"],
            "phone": "0" + someone["phone"].removeprefix("+33"),
            "reference": reference.lower(),
        }
        return {
            "search": search,
            "heavy_client": client,
            "agent": agent,
            "heavy_dossier_id": _uid("dossier-1"),
            "product_id": product_id,
            "client_id": self.heavy_profile,
            "upload_targets": upload_targets,
            "review_targets": review_targets,
            "orders": orders,
        }
