"""Profile one operation in process with pyinstrument: `python -m bench.profile dashboard L`.

Builds its own database (seeded like the bench), runs the operation a few times through
the ASGI app (no network), and prints where the time goes. Operations: dashboard S|M|L,
queue 10|50|200, send; `--all` shows every frame, `--cprofile` prints function self-times.
"""

from __future__ import annotations

import asyncio
import os
import sys

import orjson


async def main(operation: str, arg: str, repeat: int) -> None:
    import httpx
    from pyinstrument import Profiler

    from bench import env
    from bench import world as worlds
    from bench.queries import DASHBOARD, REVIEW_QUEUE, SEND_MESSAGE

    admin = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name, url = await env.create_database(admin)
    os.environ.update(
        {
            "DATABASE_URL": url,
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "RATE_LIMIT_POINTS": "1000000000",
            "MAX_WEBSOCKETS_PER_ACCOUNT": "10000",  # its fan-outs: 1,000 sockets of one account
            "MAX_WEBSOCKETS_PER_ADDRESS": "100000",
            "MAX_PAGE_SIZE": "200",
            "LOG_LEVEL": "WARNING",
            "BROADCAST_PREFIX": f"profile-{name}:",
        }
    )
    from app.settings import get_settings

    get_settings.cache_clear()
    try:
        await env.migrate(url)
        import asyncpg

        conn = await asyncpg.connect(url)
        made = {s: worlds.client_world(s) for s in ("S", "M", "L")}
        queue = worlds.queue_world(2000)
        for w in (*made.values(), queue):
            await worlds.copy_rows(conn, w)
        await conn.execute("VACUUM ANALYZE")
        from app.main import create_app
        from bench.tokens import token_for

        tokens = {
            "S": await token_for(conn, made["S"].clients[0]),
            "M": await token_for(conn, made["M"].clients[0]),
            "L": await token_for(conn, made["L"].clients[0]),
            "agent": await token_for(conn, queue.agents[0]),
        }
        await conn.close()

        def token(row):
            for size in ("S", "M", "L"):
                if row is made[size].clients[0]:
                    return tokens[size]
            return tokens["agent"]

        if operation == "dashboard":
            who, body = token(made[arg].clients[0]), {"query": DASHBOARD}
        elif operation == "queue":
            who, body = (
                token(queue.agents[0]),
                {"query": REVIEW_QUEUE, "variables": {"first": int(arg)}},
            )
        else:
            who = token(made["M"].clients[0])
            dossier = str(made["M"].dossier_ids[0])
            body = {
                "query": SEND_MESSAGE,
                "variables": {"input": {"dossierId": dossier, "content": "hi"}},
            }
        app = create_app(get_settings())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                headers = {"authorization": f"Bearer {who}", "content-type": "application/json"}
                for _ in range(3):
                    r = await http.post("/graphql", content=orjson.dumps(body), headers=headers)
                    assert r.status_code == 200, r.text[:500]
                    assert "errors" not in r.json(), r.text[:500]
                import time

                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(repeat):
                    await http.post("/graphql", content=orjson.dumps(body), headers=headers)
                elapsed = (time.perf_counter() - t0) / repeat
                cpu = (time.process_time() - c0) / repeat
                print(
                    f"{operation} {arg}: {elapsed * 1000:.1f} ms per request, "
                    f"{cpu * 1000:.1f} ms of this process's CPU (no profiler)"
                )
                if "--cprofile" in sys.argv:
                    # Function totals (self time), for per-call overhead a sampling tree hides.
                    import cProfile
                    import pstats

                    cprof = cProfile.Profile()
                    cprof.enable()
                    for _ in range(repeat):
                        await http.post("/graphql", content=orjson.dumps(body), headers=headers)
                    cprof.disable()
                    order = os.environ.get("BENCH_PROFILE_SORT", "tottime")
                    lines = int(os.environ.get("BENCH_PROFILE_LINES", "40"))
                    pstats.Stats(cprof).sort_stats(order).print_stats(lines)
                    return
                profiler = Profiler(async_mode="enabled", interval=0.0005)
                profiler.start()
                for _ in range(repeat):
                    await http.post("/graphql", content=orjson.dumps(body), headers=headers)
                profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all="--all" in sys.argv))
    finally:
        await env.drop_database(admin, name)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    op, arg = ([*args, "M"] if len(args) == 1 else [*args, "dashboard", "M"])[:2]
    asyncio.run(main(op, arg, int(os.environ.get("BENCH_PROFILE_REPEAT", "20"))))
