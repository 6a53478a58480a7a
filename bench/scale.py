"""`make bench-scale`: the hot paths on a firm's fifth year of data against a young firm's.

Two worlds from bench/scale_world.py in two databases of a private PostgreSQL cluster
(bench/cluster.py; the bench never reconfigures a server it did not start): the large one
at BENCH_SCALE (1.0: 100k dossiers, 1.5M messages, 3M+ events, 1.45M notifications, …)
and the small one at a hundredth of it. One driver process per world (bench/scale_driver.py)
runs the same server code in-process. Every operation runs BENCH_SCALE_SAMPLES times on
each, in interleaved rounds (small-large, then large-small, operation by operation), so
drift hits both alike; then once more on the large world under EXPLAIN ANALYZE.

Printed and written to bench/RESULTS.md (between the bench-scale markers) and
bench/results-scale.json: p50 at each size, the growth ratio, statements per request (per
item for worker passes), every Seq Scan reading more than 10,000 rows, and the budgets.

Environment: BENCH_SCALE (1.0), BENCH_SCALE_SAMPLES (20), BENCH_SCALE_KEEP=1 leaves the
cluster running at the end (its URL is printed) to explore, BENCH_DATABASE_URL the server
to use when this machine has no PostgreSQL server binaries for a private cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench import env
from bench.cluster import Cluster

HERE = Path(__file__).resolve().parent
SMALL = 0.01  # the small world, as a share of the large one
START, END = "<!-- bench-scale:start -->", "<!-- bench-scale:end -->"
READ_BUDGET, COUNT_BUDGET = 1.5, 3.0  # growth ratios
PASS_OVERHEAD_MS, STATEMENTS_PER_ITEM = 50.0, 2.0
SEARCH_P50_MS = 25.0  # issue 19: `search` at 200,000 profiles, p50

# A throwaway cluster: no fsync (its data dies with the run), room for the bulk load.
CLUSTER_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "shared_buffers": "1GB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}


def log(message: str) -> None:
    print(f"[bench-scale] {message}", flush=True)


class Driver:
    """One world's driver process, spoken to line by line."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.operations: list[str] = []

    @classmethod
    async def start(cls, name: str, handles: Path, environ: dict[str, str]) -> Driver:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.scale_driver", str(handles),
            env=environ, cwd=HERE.parent,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=2**24,
        )  # fmt: skip
        driver = cls(name, process)
        hello = await driver._read()
        driver.operations = hello["operations"]
        return driver

    async def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} driver exited (code {self.process.returncode})")
        return orjson.loads(line)

    async def run(self, op: str, *, explain: bool = False) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps({"op": op, "explain": explain}) + b"\n")
        await self.process.stdin.drain()
        return await self._read()

    async def stop(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def build(url: str, scale: float, name: str) -> tuple[dict[str, Any], float]:
    from bench.scale_world import generate

    migrated = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "migrate"],
        env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(HERE.parent)},
        cwd=HERE.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if migrated.returncode != 0:
        raise RuntimeError(f"migrate {name}: {migrated.stderr[-2000:]}")
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        handles = await generate(conn, scale, log=lambda m: log(f"{name}: {m}"))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return handles, time.perf_counter() - started


def marginal(figures: dict[str, Any], explained: dict[str, Any]) -> float | None:
    """Statements one more item adds to a worker pass: the pass at 2k items (the EXPLAIN
    run) against the pass at k."""
    more = (explained.get("items") or 0) - (figures.get("items") or 0)
    if more <= 0 or "statements" not in explained:
        return None
    return (explained["statements"] - figures["statements"]) / more


def verdicts(op: str, small: float, large: float, figures: dict[str, Any]) -> tuple[str, bool]:
    if figures.get("job"):
        per_item = figures.get("per_item")
        ok = (
            large - small <= PASS_OVERHEAD_MS
            and per_item is not None
            and per_item <= STATEMENTS_PER_ITEM
        )
        return f"≤ +{PASS_OVERHEAD_MS:.0f} ms, ≤ {STATEMENTS_PER_ITEM:g} statements per item", ok
    if op.startswith("search "):  # an absolute budget on the large world
        return f"p50 ≤ {SEARCH_P50_MS:g} ms", large <= SEARCH_P50_MS
    budget = COUNT_BUDGET if "totalCount" in op or "Count" in op else READ_BUDGET
    return f"≤ {budget}x", large / small <= budget if small else False


async def main() -> int:
    started = time.perf_counter()
    scale = float(os.environ.get("BENCH_SCALE") or 1.0)
    samples = int(os.environ.get("BENCH_SCALE_SAMPLES") or 20)
    keep = os.environ.get("BENCH_SCALE_KEEP") == "1"
    cluster = Cluster(settings=CLUSTER_SETTINGS)
    why = cluster.start()
    if why:
        admin = (
            os.environ.get("BENCH_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
        )
        log(f"no private cluster ({why}): using {admin}, as it is configured")
        server = admin
        cluster_note = f"{admin} (its own configuration)"
    else:
        server = cluster.url
        cluster_note = f"private cluster ({cluster.version()}), " + ", ".join(
            f"{k}={v}" for k, v in CLUSTER_SETTINGS.items()
        )
        log(f"private cluster on port {cluster.port}: {cluster.root}")
    suffix = secrets.token_hex(3)
    names = {"small": f"scale_small_{suffix}", "large": f"scale_large_{suffix}"}
    urls = {k: env.with_database(server, n) for k, n in names.items()}
    drivers: dict[str, Driver] = {}
    results: dict[str, Any] = {"scale": scale, "samples": samples}
    files = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        admin_conn = await asyncpg.connect(server)
        try:
            for n in names.values():
                await admin_conn.execute(f'CREATE DATABASE "{n}"')
        finally:
            await admin_conn.close()
        counts: dict[str, Any] = {}
        for size, factor in (("small", scale * SMALL), ("large", scale)):
            handles, seconds = await build(urls[size], factor, size)
            counts[size] = {"generated_in_s": round(seconds, 1), **handles["counts"]}
            log(f"{size} world ({factor:g}) in {seconds:.1f} s: {handles['counts']}")
            (files / f"{size}.json").write_bytes(orjson.dumps(handles, default=str))
        results["worlds"] = counts
        secret = "whsec_" + secrets.token_hex(16)
        for size in ("small", "large"):
            environ = {
                **os.environ,
                "DATABASE_URL": urls[size],
                "SECRET_KEY": secrets.token_hex(32),
                "STRIPE_WEBHOOK_SECRET": secret,
                "RATE_LIMIT_POINTS": "1000000000",
                "MAX_WEBSOCKETS_PER_ACCOUNT": "10000",  # its fan-outs: 1,000 sockets of one account
                "MAX_WEBSOCKETS_PER_ADDRESS": "100000",
                "ACCESS_TOKEN_TTL_MINUTES": "600",
                "LOG_LEVEL": "WARNING",
                "STORAGE_URL": f"file://{files / ('files-' + size)}",
                "PYTHONPATH": str(HERE.parent),
            }
            environ.pop("REDIS_URL", None)
            drivers[size] = await Driver.start(size, files / f"{size}.json", environ)
        results["operations"] = await measure(drivers, samples)
    finally:
        for driver in drivers.values():
            await driver.stop()
        if keep and not why:
            cluster.keep()
            log(f"kept: {cluster.url} (databases {', '.join(names.values())}; handles in "
                f"{files}); stop it with pg_ctl -D {cluster.data} stop")  # fmt: skip
        elif not why:
            cluster.stop()
        if not keep:
            shutil.rmtree(files, ignore_errors=True)
        else:
            with contextlib.suppress(Exception):
                admin_conn = await asyncpg.connect(server)
                for n in names.values():
                    await admin_conn.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')
                await admin_conn.close()
    results["machine"] = await machine(cluster_note)
    results["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["duration_s"] = round(time.perf_counter() - started, 1)
    (HERE / "results-scale.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2, default=str)
    )
    text = report(results)
    print(text, flush=True)
    write_markdown(HERE / "RESULTS.md", text)
    log(f"wrote bench/results-scale.json and bench/RESULTS.md in {results['duration_s']} s")
    return 0


async def measure(drivers: dict[str, Driver], samples: int) -> list[dict[str, Any]]:
    from bench.scale_driver import JOBS

    small, large = drivers["small"], drivers["large"]
    ops = [op for op in small.operations if op in large.operations]
    times: dict[str, dict[str, list[float]]] = {op: {"small": [], "large": []} for op in ops}
    last: dict[str, dict[str, dict[str, Any]]] = {op: {} for op in ops}
    failed: dict[str, str] = {}
    for round_ in range(samples + 1):  # round 0 warms up (caches, prepared statements)
        for i, op in enumerate(ops):
            if op in failed:
                continue
            order = (small, large) if (round_ + i) % 2 == 0 else (large, small)
            for driver in order:
                answer = await driver.run(op)
                if "error" in answer:
                    failed[op] = f"{driver.name}: {answer['error']}"
                    log(f"{op} failed on the {driver.name} world: {answer['error']}")
                    break
                if round_:
                    times[op][driver.name].append(answer["ms"])
                last[op][driver.name] = answer
        log(f"round {round_}/{samples}")
    rows = []
    for op in ops:
        row: dict[str, Any] = {"operation": op, "job": op in JOBS}
        if op in failed:
            rows.append({**row, "error": failed[op]})
            continue
        explained = await large.run(op, explain=True)
        p50 = {k: statistics.median(v) for k, v in times[op].items()}
        p95 = {k: _p95(v) for k, v in times[op].items()}
        figures = {**last[op]["large"], "job": op in JOBS}
        if op in JOBS:
            figures["per_item"] = marginal(figures, explained)
        budget, ok = verdicts(op, p50["small"], p50["large"], figures)
        items = figures.get("items") if op in JOBS else None
        rows.append(
            {
                **row,
                "p50_small_ms": round(p50["small"], 2),
                "p50_large_ms": round(p50["large"], 2),
                "p95_large_ms": round(p95["large"], 2),
                "growth": round(p50["large"] / p50["small"], 2) if p50["small"] else None,
                "statements_small": last[op]["small"]["statements"],
                "statements_large": figures["statements"],
                "items": items,
                "statements_per_more_item": figures.get("per_item"),
                "budget": budget,
                "seq_scans": explained.get("seq_scans", []),
                "explain_error": explained.get("error"),
                "ok": ok and not explained.get("seq_scans"),
            }
        )
    return rows


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else 0.0


async def machine(server: str) -> dict[str, Any]:
    return {"database server": server, **env.machine_basics()}


def report(results: dict[str, Any]) -> str:
    lines = [
        f"Large world: BENCH_SCALE={results['scale']:g}; small world: a hundredth of it. "
        f"{results['samples']} interleaved samples per operation and size; "
        f"finished {results['finished']} in {results['duration_s']} s.",
        "",
        "| world | generated in | " + " | ".join(TABLES) + " |",
        "|---|---:|" + "---:|" * len(TABLES),
    ]
    for size, counts in results.get("worlds", {}).items():
        cells = " | ".join(f"{counts.get(t, 0):,}" for t in TABLES)
        lines.append(f"| {size} | {counts['generated_in_s']} s | {cells} |")
    lines += [
        "",
        "| operation | p50 small | p50 large | growth | budget | statements | verdict |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    scans = []
    for row in results.get("operations", []):
        if "error" in row:
            lines.append(f"| {row['operation']} | | | | | | failed: {row['error'][:200]} |")
            continue
        statements = f"{row['statements_large']}"
        if row["job"]:
            per_item = row["statements_per_more_item"]
            statements += f" for {row['items'] or 0} items, " + (
                f"{per_item:+.1f} per more item" if per_item is not None else "?"
            )
            growth = f"{row['p50_large_ms'] - row['p50_small_ms']:+.1f} ms"
        else:
            growth = f"{row['growth']}x"
        verdict = "ok" if row["ok"] else "**over**"
        if row["seq_scans"]:
            verdict += f" ({len(row['seq_scans'])} Seq Scan)"
            scans += [(row["operation"], s) for s in row["seq_scans"]]
        lines.append(
            f"| {row['operation']} | {row['p50_small_ms']:.2f} ms | {row['p50_large_ms']:.2f} ms "
            f"| {growth} | {row['budget']} | {statements} | {verdict} |"
        )
    searches = [r for r in results.get("operations", []) if r["operation"].startswith("search ")]
    if searches:
        profiles = results.get("worlds", {}).get("large", {}).get("profiles", 0)
        lines += ["", f"Search at {profiles:,} profiles (large world):", ""]
        lines += [
            f"- {r['operation']}: p50 {r['p50_large_ms']:.2f} ms, p95 {r['p95_large_ms']:.2f} ms"
            f" (budget {r['budget']}: {'ok' if r['ok'] else 'over'})"
            if "error" not in r
            else f"- {r['operation']}: failed"
            for r in searches
        ]
    lines += ["", "Seq Scans over 10,000 rows (large world, EXPLAIN ANALYZE):", ""]
    if scans:
        lines += [
            f"- {op}: `{s['table']}`, {s['rows']:,} rows — `{_short(s['sql'])}`" for op, s in scans
        ]
    else:
        lines.append("- none")
    lines += ["", "Machine:", ""]
    lines += [f"- {k}: {v}" for k, v in results["machine"].items()]
    return "\n".join(lines)


TABLES = (
    "profiles",
    "dossiers",
    "documents",
    "document_versions",
    "messages",
    "events",
    "notifications",
    "payment_reminders",
)


def _short(sql: str, limit: int = 240) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def write_markdown(path: Path, text: str) -> None:
    current = path.read_text() if path.exists() else ""
    block = f"{START}\n{text}\n{END}"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        updated = head + block + rest.split(END, 1)[1]
    else:
        updated = current.rstrip() + "\n\n## Years of data (`make bench-scale`)\n\n" + block + "\n"
    path.write_text(updated)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
