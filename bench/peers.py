"""`make bench-peers`: our API against the server users would pick instead, PostGraphile 5
(Amber preset, bench/peer/), on the same database (the bench's world and indexes), the
same documents and the same load generator (bench/client.py), in interleaved rounds.

PostGraphile's schema is not ours: each scenario carries its own document for each side
and a normaliser mapping both answers to one shape; the answers must be equal before
anything is timed (the run fails loudly otherwise). PostGraphile runs as the database
owner (no RLS, every row visible); ours runs as an agent and authorises every request.

Environment: as `make bench` (BENCH_DATABASE_URL, BENCH_CLUSTER_PORT, BENCH_REDIS_URL,
BENCH_ROUNDS, BENCH_ROUND_SECONDS), plus PEER_PORT (PostGraphile's port, a free one by
default). Node 22 and PostGraphile are installed into bench/peer/ (`npm ci` there).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil

from bench import client as c
from bench.queries import AGENT_DOSSIERS

HERE = Path(__file__).resolve().parent
PEER = HERE / "peer"
NODE = PEER / "node_modules" / "node" / "bin" / "node"
POSTGRAPHILE = PEER / "node_modules" / "postgraphile" / "dist" / "cli-run.js"

# --- the documents ----------------------------------------------------------------------

OURS_MESSAGES = """
query DossierMessages($id: ID!) {
  dossier(id: $id) {
    id status
    messages(last: 50) {
      pageInfo { hasPreviousPage }
      nodes { id content senderType createdAt readAt }
    }
  }
}
"""

TYPENAME = "{ __typename }"


def peer_document(name: str) -> str:
    return (PEER / f"{name}.graphql").read_text()


# --- normalisers: both answers to one shape ---------------------------------------------


def _time(value: str | None) -> str | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="microseconds")


def _upper(value: str | None) -> str | None:
    return value.upper() if value is not None else None


def _step(step: dict[str, Any] | None, *, ours: bool) -> dict[str, Any] | None:
    if step is None:
        return None
    key = "id" if ours else "rowId"
    agent = step["assignedTo"] if ours else step["agentByAssignedTo"]
    definition = step["step"] if ours else step["stepByStepId"]
    return {
        "id": step[key],
        "position": step["position"],
        "dueAt": _time(step["dueAt"]),
        "step": {"id": definition[key], "label": definition["label"]},
        "assignedTo": None if agent is None else {"id": agent[key], "name": agent["name"]},
    }


def work_list_ours(answer: dict[str, Any]) -> Any:
    page = answer["data"]["dossiers"]
    return {
        "more": page["pageInfo"]["hasNextPage"],
        "dossiers": [
            {
                "id": d["id"],
                "status": _upper(d["status"]),
                "createdAt": _time(d["createdAt"]),
                "client": {"id": d["client"]["id"], "fullName": d["client"]["fullName"]},
                "product": {"id": d["product"]["id"], "name": d["product"]["name"]},
                "currentStep": _step(d["currentStep"], ours=True),
            }
            for d in page["nodes"]
        ],
    }


def work_list_peer(answer: dict[str, Any]) -> Any:
    page = answer["data"]["allDossiers"]
    return {
        "more": page["pageInfo"]["hasNextPage"],
        "dossiers": [
            {
                "id": d["rowId"],
                "status": _upper(d["status"]),
                "createdAt": _time(d["createdAt"]),
                "client": {
                    "id": d["profileByUserId"]["rowId"],
                    "fullName": d["profileByUserId"]["fullName"],
                },
                "product": {
                    "id": d["productByProductId"]["rowId"],
                    "name": d["productByProductId"]["name"],
                },
                "currentStep": _step(d["currentStep"], ours=False),
            }
            for d in page["nodes"]
        ],
    }


def _message(m: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "id": m[key],
        "content": m["content"],
        "senderType": _upper(m["senderType"]),
        "createdAt": _time(m["createdAt"]),
        "readAt": _time(m["readAt"]),
    }


def messages_ours(answer: dict[str, Any]) -> Any:
    d = answer["data"]["dossier"]
    page = d["messages"]
    return {
        "id": d["id"],
        "status": _upper(d["status"]),
        "earlier": page["pageInfo"]["hasPreviousPage"],
        "messages": [_message(m, "id") for m in page["nodes"]],
    }


def messages_peer(answer: dict[str, Any]) -> Any:
    d = answer["data"]["dossierByRowId"]
    page = d["messagesByDossierId"]
    return {
        "id": d["rowId"],
        "status": _upper(d["status"]),
        "earlier": page["pageInfo"]["hasNextPage"],  # newest first: the next are earlier
        # fetched newest first (the last 50), shown oldest first as ours
        "messages": [_message(m, "rowId") for m in reversed(page["nodes"])],
    }


def typename(answer: dict[str, Any]) -> Any:
    return answer["data"]


# --- one scenario, three sides ----------------------------------------------------------


@dataclass
class Side:
    name: str  # "ours", "peer", "raw"
    port: int
    path: str
    body: bytes
    headers: dict[str, str]
    normalise: Callable[[dict[str, Any]], Any]
    process: Callable[[], list[int]]  # the pids of the server process(es) answering


@dataclass
class Scenario:
    name: str
    sides: list[Side]
    notes: str = ""


@dataclass
class Figures:
    latencies: list[c.Sample] = field(default_factory=list)  # c=1 rounds
    loads: list[c.Sample] = field(default_factory=list)  # c=16 rounds
    server_cpu: list[float] = field(default_factory=list)  # seconds per request, per round
    pg_cpu: list[float] = field(default_factory=list)


def gql(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"query": query, "variables": variables or {}})


JSON = {"Content-Type": "application/json"}


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    from bench.scenarios import first_difference as diff

    return diff(a, b, path)


async def check_equal(s: Scenario) -> dict[str, Any]:
    """Every side's answer, normalised, must equal ours; raises otherwise."""
    shapes: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        for side in s.sides:
            r = await http.post(
                f"http://127.0.0.1:{side.port}{side.path}",
                content=side.body,
                headers=JSON | side.headers,
            )
            answer = r.json()
            if r.status_code != 200 or answer.get("errors"):
                raise AssertionError(
                    f"{s.name}: {side.name} answered {r.status_code}: {r.text[:500]}"
                )
            shapes[side.name] = side.normalise(answer)
            sizes[side.name] = len(r.content)
    ours = shapes["ours"]
    for name, shape in shapes.items():
        found = first_difference(ours, shape)
        if found:
            raise AssertionError(f"{s.name}: {name}'s answer differs from ours at {found}")
    return {"equal": True, "bytes": sizes}


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


class PgBackends:
    """CPU of the bench database's PostgreSQL backends (pg_stat_activity, psutil)."""

    def __init__(self, admin_url: str, db_name: str) -> None:
        self.admin_url, self.db_name = admin_url, db_name
        self.conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        self.conn = await asyncpg.connect(self.admin_url)

    async def pids(self) -> list[int]:
        assert self.conn is not None
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.db_name,
        )
        return [r["pid"] for r in rows]

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


async def measured(
    side: Side, backends: PgBackends, concurrency: int, seconds: float
) -> tuple[c.Sample, float, float]:
    request = c.build_request(side.path, side.body, side.headers)
    server_pids = side.process()
    pg_before_pids = await backends.pids()
    cpu0, pg0 = _cpu(server_pids), {p: _cpu([p]) for p in pg_before_pids}
    sample = await c.closed_loop(
        "127.0.0.1", side.port, lambda _n: request, concurrency=concurrency, seconds=seconds
    )
    cpu1 = _cpu(server_pids)
    pg_after = await backends.pids()
    pg_used = sum(_cpu([p]) - pg0.get(p, 0.0) for p in pg_after)
    n = max(1, sample.count)
    return sample, (cpu1 - cpu0) / n, pg_used / n


async def run_scenario(
    s: Scenario, backends: PgBackends, rounds: int, seconds: float
) -> dict[str, Figures]:
    figures = {side.name: Figures() for side in s.sides}
    for side in s.sides:  # warm every side (connections, prepared statements, plans)
        for concurrency in (16, 1):
            request = c.build_request(side.path, side.body, side.headers)

            def make(_n: int, r: bytes = request) -> bytes:
                return r

            await c.closed_loop("127.0.0.1", side.port, make, concurrency=concurrency, requests=50)
    for concurrency in (16, 1):
        for i in range(rounds):
            order = s.sides[i % len(s.sides) :] + s.sides[: i % len(s.sides)]
            for side in order:
                sample, server_cpu, pg_cpu = await measured(side, backends, concurrency, seconds)
                fig = figures[side.name]
                (fig.loads if concurrency == 16 else fig.latencies).append(sample)
                if concurrency == 16:
                    fig.server_cpu.append(server_cpu)
                    fig.pg_cpu.append(pg_cpu)
    return figures


def summarise(figures: dict[str, Figures]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fig in figures.items():
        out[name] = {
            "p50_ms": round(statistics.median(x.pct(50) for x in fig.latencies) * 1000, 3),
            "p99_ms": round(statistics.median(x.pct(99) for x in fig.latencies) * 1000, 3),
            "rps_c16": round(statistics.median(x.throughput for x in fig.loads), 1),
            "server_cpu_ms_per_req": round(statistics.median(fig.server_cpu) * 1000, 3),
            "pg_cpu_ms_per_req": round(statistics.median(fig.pg_cpu) * 1000, 3),
            "errors": sum(x.errors for x in fig.latencies + fig.loads),
        }
    ours = figures["ours"]
    for name, fig in figures.items():
        if name == "ours":
            continue
        # per-round ratios (the rounds were interleaved), then their median
        out[name]["our_p50_ratio"] = round(
            statistics.median(
                a.pct(50) / b.pct(50) for a, b in zip(ours.latencies, fig.latencies, strict=True)
            ),
            2,
        )
        out[name]["our_p99_ratio"] = round(
            statistics.median(
                a.pct(99) / b.pct(99) for a, b in zip(ours.latencies, fig.latencies, strict=True)
            ),
            2,
        )
        out[name]["our_rps_ratio"] = round(
            statistics.median(
                a.throughput / b.throughput for a, b in zip(ours.loads, fig.loads, strict=True)
            ),
            2,
        )
    return out


def table(results: dict[str, Any]) -> str:
    lines = [
        "| scenario | server | p50 ms c=1 | p99 ms c=1 | req/s c=16 | ours/it p50 | ours/it p99 "
        "| ours/it req/s | server CPU ms/req | PostgreSQL CPU ms/req | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, figures in results["scenarios"].items():
        for side in ("ours", "peer", "raw"):
            f = figures.get(side)
            if f is None:
                continue
            label = {
                "ours": "ours (agent)",
                "peer": "PostGraphile 5 (owner, no RLS)",
                "raw": "raw floor",
            }[side]
            lines.append(
                f"| {name} | {label} | {f['p50_ms']} | {f['p99_ms']} | {f['rps_c16']} "
                f"| {f.get('our_p50_ratio', '')} | {f.get('our_p99_ratio', '')} "
                f"| {f.get('our_rps_ratio', '')} | {f['server_cpu_ms_per_req']} "
                f"| {f['pg_cpu_ms_per_req']} | {f['errors']} |"
            )
    return "\n".join(lines)


# --- the peer process ---------------------------------------------------------------------


@dataclass
class PeerServer:
    port: int
    db_url: str
    process: subprocess.Popen | None = None
    log: Any = None

    def start(self) -> None:
        if not NODE.exists() or not POSTGRAPHILE.exists():
            raise RuntimeError("PostGraphile is not installed: run `npm ci` in bench/peer/")
        self.log = tempfile.NamedTemporaryFile(prefix="bench-peer-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [str(NODE), str(POSTGRAPHILE), "-C", str(PEER / "graphile.config.mjs")],
            cwd=PEER,
            env={
                **os.environ,
                "PEER_DATABASE_URL": self.db_url,
                "PEER_PORT": str(self.port),
                "NODE_ENV": "production",
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_up(self, timeout: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout
        async with httpx.AsyncClient(timeout=5) as http:
            while time.perf_counter() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"PostGraphile exited; see {self.log.name}")
                try:
                    r = await http.post(
                        f"http://127.0.0.1:{self.port}/graphql", content=gql(TYPENAME), headers=JSON
                    )
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"PostGraphile did not become ready; see {self.log.name}")

    def pids(self) -> list[int]:
        assert self.process is not None
        proc = psutil.Process(self.process.pid)
        return [proc.pid, *(p.pid for p in proc.children(recursive=True))]

    def version(self) -> str:
        pkg = orjson.loads((PEER / "node_modules" / "postgraphile" / "package.json").read_bytes())
        node = subprocess.run([str(NODE), "--version"], capture_output=True, text=True).stdout
        return f"postgraphile {pkg['version']} (Amber preset), node {node.strip()}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


# --- the run ------------------------------------------------------------------------------


async def latest_messages_dossier(db_url: str) -> str:
    """The dossier with the most messages (M's: 30 and more), for 'the last 50 messages'."""
    conn = await asyncpg.connect(db_url)
    try:
        return str(
            await conn.fetchval(
                "SELECT dossier_id FROM messages GROUP BY dossier_id ORDER BY count(*) DESC, "
                "dossier_id LIMIT 1"
            )
        )
    finally:
        await conn.close()


def scenarios(
    ours_port: int, peer_port: int, token: str, dossier: str, pids: Any
) -> list[Scenario]:
    agent = {"Authorization": f"Bearer {token}"}
    ours_pids, peer_pids = pids

    def ours(body: bytes, normalise: Callable) -> Side:
        return Side("ours", ours_port, "/graphql", body, agent, normalise, ours_pids)

    def peer(body: bytes, normalise: Callable) -> Side:
        return Side("peer", peer_port, "/graphql", body, {}, normalise, peer_pids)

    def raw(path: str, body: bytes, normalise: Callable) -> Side:
        # bench/raw.py in our server process: the same token checks, the SQL, orjson
        return Side("raw", ours_port, f"/bench/raw/{path}", body, agent, normalise, ours_pids)

    return [
        Scenario(
            "work list (50 dossiers)",
            [
                ours(gql(AGENT_DOSSIERS, {"filter": None, "count": False}), work_list_ours),
                peer(gql(peer_document("work_list")), work_list_peer),
                raw("work-list", gql(AGENT_DOSSIERS), work_list_ours),
            ],
        ),
        Scenario(
            "dossier + last 50 messages",
            [
                ours(gql(OURS_MESSAGES, {"id": dossier}), messages_ours),
                peer(gql(peer_document("messages"), {"id": dossier}), messages_peer),
                raw("messages", gql(OURS_MESSAGES, {"id": dossier}), messages_ours),
            ],
        ),
        Scenario(
            "{ __typename }",
            [
                ours(gql(TYPENAME), typename),
                peer(gql(TYPENAME), typename),
                raw("typename", gql(TYPENAME), typename),
            ],
        ),
    ]


async def main() -> int:
    from bench import env
    from bench import world as worlds
    from bench.run import choose_server, seed

    started = time.perf_counter()
    rounds = int(float(os.environ.get("BENCH_ROUNDS") or 5))
    seconds = float(os.environ.get("BENCH_ROUND_SECONDS") or 1.0)
    admin_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get(
        "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
    )
    admin_url, cluster, _ok = await choose_server(admin_url)
    redis = env.redis_server(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    if redis.restartable:
        redis.start()
        await redis.wait_up()
    db_name, db_url = await env.create_database(admin_url)
    print(f"[peers] database {db_name}, redis {redis.url}", flush=True)
    secret = secrets.token_hex(32)
    server_env = {
        **os.environ,
        "ENV": "production",
        "ALLOW_LOGGED_EMAIL": "true",
        "ALLOW_LOGGED_TEXTS": "true",
        "ALLOW_DUMMY_PAYMENTS": "true",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis.url,
        "SECRET_KEY": secret,
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
        "BROADCAST_PREFIX": f"bench-{db_name}:",
        "RATE_LIMIT_POINTS": "1000000000",  # the bench must not be throttled
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
    peer = PeerServer(port=int(os.environ.get("PEER_PORT") or 0) or env.free_port(), db_url=db_url)
    backends = PgBackends(admin_url, db_name)
    results: dict[str, Any] = {"scenarios": {}, "checks": {}}
    try:
        await env.migrate(db_url)
        handles = await seed(db_url, worlds)
        dossier = await latest_messages_dossier(db_url)
        server.start()
        peer.start()
        await server.wait_up()
        await peer.wait_up()
        await backends.open()
        results["peer"] = peer.version()
        print(f"[peers] ours: uvicorn, 1 process, pool of 5, as an agent; peer: "
              f"{results['peer']}, 1 process, pool of 5, AS THE DATABASE OWNER (no RLS, "
              "no authorisation)", flush=True)  # fmt: skip
        print("[peers] the machine is shared with other work: the ratios (interleaved "
              "rounds) matter, not the absolute figures", flush=True)  # fmt: skip
        for s in scenarios(
            server.port, peer.port, handles["tokens"]["agent"], dossier,
            (lambda: [server.pid], peer.pids),
        ):  # fmt: skip
            results["checks"][s.name] = await check_equal(s)  # raises when not the same data
            print(f"[peers] {s.name}: same data {results['checks'][s.name]['bytes']}", flush=True)
            run = await run_scenario(s, backends, rounds, seconds)
            results["scenarios"][s.name] = summarise(run)
            print(f"[peers] {s.name}: {results['scenarios'][s.name]}", flush=True)
    finally:
        await backends.close()
        server.stop()
        peer.stop()
        redis.stop()
        await env.drop_database(admin_url, db_name)
        if cluster is not None:
            cluster.stop()
    results["rounds"], results["seconds per side per round"] = rounds, seconds
    print(table(results), flush=True)
    print(f"[peers] done in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
