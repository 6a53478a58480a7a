"""What a bench run stands on: its own PostgreSQL database, its own Redis server, the
server process, and a description of the machine. Everything it starts it stops, and
the database it creates it drops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


# --- PostgreSQL --------------------------------------------------------------------------


async def create_database(admin_url: str) -> tuple[str, str]:
    name = f"bench_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def migrate(url: str) -> None:
    from app.cli import run_migrations

    await run_migrations(url, quiet=True)


# --- Redis: a private server, so the bench may restart it -----------------------------------


@dataclass
class RedisServer:
    port: int
    binary: str
    process: subprocess.Popen | None = None
    external_url: str = ""  # set when no redis-server binary: the bench uses this one

    @property
    def url(self) -> str:
        return self.external_url or f"redis://127.0.0.1:{self.port}/0"

    @property
    def restartable(self) -> bool:
        return not self.external_url

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "20000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    async def wait_up(self, timeout: float = 10.0) -> float:
        """Until it answers PING; returns the time (perf_counter) it first did."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"*1\r\n$4\r\nPING\r\n")
                line = await asyncio.wait_for(reader.readline(), 0.5)
                writer.close()
                if line.startswith(b"+PONG"):
                    return time.perf_counter()
            except (OSError, TimeoutError):
                pass
            await asyncio.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        return out.stdout.strip()


def redis_server(fallback_url: str) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        return RedisServer(
            port=urlsplit(fallback_url).port or 6379, binary="", external_url=fallback_url
        )
    return RedisServer(port=free_port(), binary=binary)


# --- the server process ----------------------------------------------------------------


@dataclass
class Server:
    port: int
    env: dict[str, str]
    process: subprocess.Popen | None = None
    log: Any = None

    def start(self) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)
        # BENCH_APP_PATH: serve another checkout's `app` (say, before a change) with this
        # bench (its directory first on the path, this repository after it for `bench`)
        other = self.env.get("BENCH_APP_PATH")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.server", "--port", str(self.port)],
            cwd=other or ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_up(self, timeout: float = 60.0) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the bench server exited; see {self.log.name}")
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                line = await asyncio.wait_for(reader.readline(), 2)
                writer.close()
                if b" 200 " in line:
                    return
            except (OSError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the bench server did not become ready; see {self.log.name}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


# --- the machine -------------------------------------------------------------------------


@dataclass
class Machine:
    facts: dict[str, Any] = field(default_factory=dict)


def machine_basics() -> dict[str, Any]:
    """The CPU, memory, Python and the versions of the libraries on the hot paths."""
    facts: dict[str, Any] = {
        "cpus (nproc)": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    import importlib.metadata as md

    for package in (
        "strawberry-graphql",
        "graphql-core",
        "tortoise-orm",
        "asyncpg",
        "uvicorn",
        "starlette",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            facts[package] = md.version(package)
    return facts


async def describe_machine(admin_url: str, redis: RedisServer) -> dict[str, Any]:
    facts = machine_basics()
    conn = await asyncpg.connect(admin_url)
    try:
        facts["postgresql"] = (await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()
    facts["redis"] = redis.version() if redis.binary else "external"
    return facts
