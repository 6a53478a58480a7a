"""`make bench`: set up, seed, serve, run every scenario, print and write the figures.

Environment (all optional):
  BENCH_DATABASE_URL   PostgreSQL server to create the bench database on
                       (default postgres://postgres@127.0.0.1:5432/postgres)
  BENCH_REDIS_URL      Redis to use when no `redis-server` binary can be started privately
  BENCH_ROUNDS         A/B rounds per figure (5)
  BENCH_ROUND_SECONDS  seconds per side per round (1.0)
  BENCH_SOAK_SECONDS   soak duration (60; `make bench-soak` runs 600)
  BENCH_IDLE_SOCKETS   idle subscriptions during the soak (1000)
  BENCH_ONLY           comma-separated scenario names to run (default: all)
  BENCH_PROFILE        write a pyinstrument profile of the server process to this file
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

HERE = Path(__file__).resolve().parent
SCENARIOS = (
    "statements",
    "dashboard",
    "queue",
    "send_message",
    "webhook",
    "queue_20k",
    "login_flood",
    "pubsub",
    "fanout",
    "redis_restart",
    "soak",
)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


async def main() -> int:
    from bench import env, pgstat, report
    from bench import scenarios as sc
    from bench import world as worlds

    started = time.perf_counter()
    admin_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get(
        "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
    )
    only = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()}
    wanted = [s for s in SCENARIOS if not only or s in only]
    config = sc.Config(
        rounds=int(_env_float("BENCH_ROUNDS", 5)),
        seconds=_env_float("BENCH_ROUND_SECONDS", 1.0),
        soak_seconds=_env_float("BENCH_SOAK_SECONDS", 60),
        idle_sockets=int(_env_float("BENCH_IDLE_SOCKETS", 1000)),
    )

    admin_url, cluster, ok = await choose_server(admin_url)
    redis = env.redis_server(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    if redis.restartable:
        redis.start()
        await redis.wait_up()
    db_name, db_url = await env.create_database(admin_url)
    print(f"[bench] database {db_name}, redis {redis.url}", flush=True)
    secret = secrets.token_hex(32)
    webhook_secret = "whsec_" + secrets.token_hex(16)
    prefix = f"bench-{db_name}:"
    server_env = {
        **os.environ,
        "ENV": "production",
        "ALLOW_LOGGED_EMAIL": "true",  # no SMTP or Twilio here: messages go to the log
        "ALLOW_LOGGED_TEXTS": "true",
        "ALLOW_DUMMY_PAYMENTS": "true",  # no Stripe key: the dummy provider, knowingly
        "DATABASE_URL": db_url,
        "REDIS_URL": redis.url,
        "SECRET_KEY": secret,
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "BROADCAST_PREFIX": prefix,
        "RATE_LIMIT_POINTS": "1000000000",  # the bench must not be throttled
        "MAX_WEBSOCKETS_PER_ACCOUNT": "10000",  # its fan-outs: 1,000 sockets of one account
        "MAX_WEBSOCKETS_PER_ADDRESS": "100000",
        # …nor locked out: the login flood measures what each attempt's hash costs the
        # others (from one address, the lockout would refuse all but the first 20 unhashed)
        "AUTH_FAILURES_PER_ADDRESS": "1000000000",
        "MAX_PAGE_SIZE": "200",  # the review queue is read 200 at a time
        "ACCESS_TOKEN_TTL_MINUTES": "240",
        "LOG_LEVEL": "WARNING",
        "STORAGE_URL": f"file://{tempfile.mkdtemp(prefix='bench-files-')}",
        "PYTHONPATH": str(HERE.parent),
    }
    os.environ.update(
        {k: server_env[k] for k in ("SECRET_KEY", "ACCESS_TOKEN_TTL_MINUTES", "DATABASE_URL")}
    )
    from app.settings import get_settings

    get_settings.cache_clear()
    server = env.Server(port=env.free_port(), env=server_env)
    # the same API with DISPATCH_AFTER_RESPONSE=0 (the dispatch before the answer), to show
    # what the default (after the answer) changes on the write paths
    dispatch_first = env.Server(
        port=env.free_port(), env={**server_env, "DISPATCH_AFTER_RESPONSE": "0"}
    )
    results: dict[str, Any] = {}
    bench: sc.Bench | None = None
    try:
        await env.migrate(db_url)
        seeded = time.perf_counter()
        handles = await seed(db_url, worlds)
        print(
            f"[bench] seeded in {time.perf_counter() - seeded:.1f} s: {handles['counts']}",
            flush=True,
        )
        server.start()
        dispatch_first.start()
        await server.wait_up()
        await dispatch_first.wait_up()
        bench = sc.Bench(
            host="127.0.0.1",
            port=server.port,
            config=config,
            db_url=db_url,
            db_name=db_name,
            admin_url=admin_url,
            prefix=prefix,
            webhook_secret=webhook_secret,
            redis=redis,
            server=server,
            tokens=handles.pop("tokens"),
            handles=handles,
            dispatch_first=dispatch_first,
        )
        results = bench.results
        results["machine"] = await env.describe_machine(admin_url, redis)
        results["config"] = {
            "rounds": config.rounds,
            "seconds per side per round": config.seconds,
            "soak seconds": config.soak_seconds,
            "server": "uvicorn, 1 process (httptools, websockets), pools of 5 connections",
            "database server": f"private cluster (initdb, port {cluster.port})"
            if cluster is not None
            else admin_url,
            "dispatch": "after the response (default); the write paths are measured again "
            "with DISPATCH_AFTER_RESPONSE=0 on a second server process",
        }
        counter = pgstat.StatementCounter(admin_url, db_name)
        bench.counter = counter if ok and await counter.open() else None
        await run_scenarios(bench, wanted, db_url, worlds)
    finally:
        server.stop()
        dispatch_first.stop()
        if bench is not None and bench.counter is not None:
            await bench.counter.close()
        redis.stop()
        await env.drop_database(admin_url, db_name)
        if cluster is not None:
            cluster.stop()
    results["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["budgets"] = [b.__dict__ | {"verdict": b.verdict} for b in report.budgets(results)]
    (HERE / "results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
    )
    print(report.tables(results), flush=True)
    if not only:
        report.write_markdown(HERE / "RESULTS.md", results)
        print("[bench] wrote bench/results.json and bench/RESULTS.md", flush=True)
    else:
        print("[bench] wrote bench/results.json (a partial run leaves RESULTS.md alone)")
    print(f"[bench] done in {results['duration_s']} s", flush=True)
    return 0


async def choose_server(admin_url: str) -> tuple[str, Any, bool]:
    """The server the bench runs on, never reconfigured: the one at BENCH_DATABASE_URL when
    it preloads pg_stat_statements (statements are counted by PostgreSQL), else a private
    cluster started for the run (bench/cluster.py), else the given one without statement
    counts, saying why. Returns (admin url, the private cluster or None, counts available)."""
    from bench import pgstat
    from bench.cluster import Cluster

    missing = await pgstat.availability(admin_url)
    if not missing:
        print(f"[bench] PostgreSQL at {admin_url}, pg_stat_statements preloaded", flush=True)
        return admin_url, None, True
    cluster = Cluster()
    why = cluster.start()
    if not why:
        print(f"[bench] {admin_url}: {missing}; running a private cluster on port "
              f"{cluster.port} ({cluster.version()}) with it preloaded", flush=True)  # fmt: skip
        return cluster.url, cluster, True
    print(f"[bench] {admin_url}: {missing}, and no private cluster ({why}): statements per "
          "request are not counted (preload pg_stat_statements there, or install the "
          "PostgreSQL server binaries)", flush=True)  # fmt: skip
    return admin_url, None, False


async def seed(db_url: str, worlds: Any) -> dict[str, Any]:
    from bench.tokens import token_for

    made = {size: worlds.client_world(size) for size in ("S", "M", "L")}
    queue = worlds.queue_world(2000)
    orders = worlds.pending_orders(1200)
    conn = await asyncpg.connect(db_url)
    counts: dict[str, int] = {}
    try:
        for world in (*made.values(), queue, orders):
            for table, n in (await worlds.copy_rows(conn, world)).items():
                counts[table] = counts.get(table, 0) + n
        tokens = {f"client_{size}": await token_for(conn, w.clients[0]) for size, w in made.items()}
        tokens["agent"] = await token_for(conn, queue.agents[0])
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    m_dossiers = [str(d) for d in made["M"].dossier_ids]
    queue_dossiers = [str(d) for d in queue.dossier_ids]
    return {
        "tokens": tokens,
        "counts": counts,
        "send_dossiers": (m_dossiers[0], m_dossiers[1]),
        "orders": list(orders.orders),
        "live_dossiers": queue_dossiers[-10:],
        "quiet_dossiers": queue_dossiers[:1500],
    }


async def grow_queue(db_url: str, worlds: Any) -> dict[str, int]:
    """2,000 -> 20,000 dossiers in the review queue world."""
    more = worlds.queue_world(18_000, start=2000)
    conn = await asyncpg.connect(db_url)
    try:
        written = await worlds.copy_rows(conn, more)
        await conn.execute("VACUUM ANALYZE")
        total = await conn.fetchval("SELECT count(*) FROM dossiers")
    finally:
        await conn.close()
    return {**written, "dossiers_now": total}


async def run_scenarios(b: Any, wanted: list[str], db_url: str, worlds: Any) -> None:
    from bench import scenarios as sc

    for name in wanted:
        t0 = time.perf_counter()
        b.log(f"-- {name}")
        try:
            if name == "statements":
                await sc.statements_reads(b)
                await sc.statements_queue(b, "2k")
                await sc.statements_writes(b)
            elif name == "dashboard":
                await sc.dashboard(b)
            elif name == "queue":
                await sc.review_queue(b, "2k")
            elif name == "send_message":
                await sc.send_message(b)
                await sc.send_message(b.on_dispatch_first(), key="send_message_dispatch_first")
            elif name == "webhook":
                await sc.webhook(b)
                await sc.webhook(b.on_dispatch_first(), key="webhook_dispatch_first", checks=False)
            elif name == "queue_20k":
                b.put("queue_growth", await grow_queue(db_url, worlds))
                await sc.statements_queue(b, "20k")
                await sc.review_queue(b, "20k", pages=(50,))
            elif name == "login_flood":
                await sc.login_flood(b)
            elif name == "pubsub":
                await sc.pubsub(b)
            elif name == "fanout":
                await sc.fanout(b)
            elif name == "redis_restart":
                await sc.redis_restart(b)
            elif name == "soak":
                await sc.soak(b)
        except Exception as exc:  # one broken scenario must not lose the others' figures
            import traceback

            traceback.print_exc()
            b.put(f"failures.{name}", f"{type(exc).__name__}: {exc}")
        b.put(f"timings.{name}", round(time.perf_counter() - t0, 1))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
