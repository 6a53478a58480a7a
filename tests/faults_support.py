"""Real processes for the fault tests (tests/test_faults.py): a private PostgreSQL cluster
the test may crash and restart, the web server and the worker as subprocesses, a chat load
generator, and a Twilio stand-in that can hang and tells whether the sender was still there
when it answered.

Nothing here touches the machine's shared PostgreSQL or Redis: the private cluster lives in
a temporary directory on a free port (initdb/pg_ctl run as `postgres` when the tests run as
root, since PostgreSQL refuses to run as root), and is removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT = 30  # seconds: any pg_ctl/initdb/app command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian layout, else the PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()],
    )
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


async def run(
    *argv: str, env: dict[str, str] | None = None, within: float = COMMAND_TIMEOUT
) -> str:
    """Run a command to completion (bounded); fail with its output if it fails."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{argv[0]} did not finish within {within}s") from None
    text = out.decode(errors="replace")
    assert process.returncode == 0, f"{' '.join(argv)} failed ({process.returncode}):\n{text}"
    return text


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own: initdb into a temporary directory, served on
    a free loopback port with trust authentication; `stop(mode)` and `start()` at will."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        assert bin_dir is not None, "PostgreSQL server binaries are not installed"
        self.bin = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="test-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    async def _ctl(self, *args: str) -> str:
        return await run(*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), *args)

    async def create(self) -> None:
        await run(
            *self._as,
            str(self.bin / "initdb"),
            *("-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"),
            "--no-sync",
        )

    async def start(self) -> None:
        # fsync off: a crash here kills processes, not the machine, so what was written
        # survives; commits stay synchronous (an acknowledged commit is in the WAL).
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        await self._ctl("-o", options, "-l", str(self.log), "-w", "-t", "20", "start")

    async def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash (no shutdown checkpoint, recovery on restart)."""
        await self._ctl("-m", mode, "-w", "-t", "20", "stop")

    async def ensure_running(self) -> None:
        """Up again if a test stopped it and failed before starting it."""
        if not (self.data / "postmaster.pid").exists():
            await self.start()

    async def destroy(self) -> None:
        with contextlib.suppress(Exception):
            await self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    async def execute(self, sql: str, *args: Any, database: str = "postgres") -> Any:
        import asyncpg

        connection = await asyncpg.connect(self.url(database), timeout=5)
        try:
            return await connection.fetch(sql, *args)
        finally:
            await connection.close()


# --- the app's processes --------------------------------------------------------------------


def app_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


@dataclass
class Process:
    process: asyncio.subprocess.Process
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def stop(self, within: float = 15) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), within)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode  # type: ignore[return-value]

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def _spawn(*args: str, env: dict[str, str]) -> Process:
    fd, name = tempfile.mkstemp(prefix="test-proc-", suffix=".log")
    try:  # a file, never a pipe nobody reads
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", *args, cwd=ROOT, env=env, stdout=fd, stderr=fd
        )
    finally:
        os.close(fd)
    return Process(process, Path(name))


@contextlib.asynccontextmanager
async def web_process(env: dict[str, str], *, within: float = 30) -> AsyncIterator[Process]:
    """`python -m app serve` (uvicorn, 10 s graceful shutdown) on a free port."""
    port = free_port()
    served = await _spawn("serve", "--host", "127.0.0.1", "--port", str(port), env=env)
    served.url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=served.url, timeout=1) as probe:
            while True:
                if served.process.returncode is not None:
                    raise AssertionError(f"the server exited:\n{served.output()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                assert time.monotonic() < deadline, (
                    f"no server within {within}s:\n{served.output()}"
                )
                await asyncio.sleep(0.1)
        yield served
    finally:
        await served.stop()
        served.log.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def worker_process(env: dict[str, str]) -> AsyncIterator[Process]:
    """`python -m app worker`."""
    worker = await _spawn("worker", env=env)
    try:
        yield worker
    finally:
        worker.kill()
        await worker.process.wait()
        worker.log.unlink(missing_ok=True)


async def app_command(*args: str, env: dict[str, str]) -> str:
    return await run(sys.executable, "-m", "app", *args, env=env)


# --- GraphQL over HTTP --------------------------------------------------------------------------

LOGIN = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }"
SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id content } userErrors { code message } }
}
"""


async def login(http: httpx.AsyncClient, email: str, password: str = "partners-vrai-2026") -> str:
    response = await http.post(
        "/graphql", json={"query": LOGIN, "variables": {"e": email, "p": password}}
    )
    return response.json()["data"]["login"]["token"]


async def ask(
    http: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


@dataclass
class Attempt:
    content: str
    started: float  # monotonic
    seconds: float
    status: int | None  # HTTP status; None when no answer came (connection error)
    body: Any = None
    error: str = ""

    @property
    def message_id(self) -> str | None:
        try:
            return self.body["data"]["sendMessage"]["message"]["id"]
        except (TypeError, KeyError):
            return None

    @property
    def ok(self) -> bool:
        return self.message_id is not None


@dataclass
class ChatLoad:
    """Clients sending messages to one dossier in a loop until stopped, every attempt kept."""

    url: str
    dossier_id: str
    tokens: list[str]
    prefix: str = field(default_factory=lambda: f"load-{uuid.uuid4().hex[:8]}")
    gap: float = 0.02
    timeout: float = 10.0
    max_seconds: float = 60.0  # it stops by itself, whatever happens to the test
    attempts: list[Attempt] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _n: int = 0

    def start(self) -> ChatLoad:
        self._tasks = [asyncio.create_task(self._sender(t)) for t in self.tokens]
        return self

    async def stop(self) -> list[Attempt]:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), self.timeout + 5)
        return self.attempts

    async def __aenter__(self) -> ChatLoad:
        return self.start()

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sender(self, token: str) -> None:
        headers = {"authorization": f"Bearer {token}"}
        deadline = time.monotonic() + self.max_seconds
        async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout) as http:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._n += 1
                content = f"{self.prefix}-{self._n}"
                variables = {"input": {"dossierId": self.dossier_id, "content": content}}
                started = time.monotonic()
                attempt = Attempt(content, started, 0.0, None)
                try:
                    response = await http.post(
                        "/graphql", json={"query": SEND, "variables": variables}, headers=headers
                    )
                    attempt.status = response.status_code
                    try:
                        attempt.body = response.json()
                    except ValueError:
                        attempt.body = response.text
                except httpx.HTTPError as exc:
                    attempt.error = f"{type(exc).__name__}: {exc}"
                attempt.seconds = time.monotonic() - started
                self.attempts.append(attempt)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.gap)

    def ok_since(self, moment: float) -> int:
        return sum(1 for a in self.attempts if a.started >= moment and a.ok)


MASKED = {"message": "Unexpected error.", "code": "INTERNAL_SERVER_ERROR"}


def is_masked_failure(attempt: Attempt) -> bool:
    """A failed request that says nothing about why (no driver or SQL text), with a
    request id to find it in the log."""
    body = attempt.body
    if attempt.status != 200 or not isinstance(body, dict) or not body.get("errors"):
        return False
    for error in body["errors"]:
        extensions = error.get("extensions") or {}
        if (error.get("message"), extensions.get("code")) != (MASKED["message"], MASKED["code"]):
            return False
        if not extensions.get("requestId"):
            return False
    text = str(body).lower()
    return not any(word in text for word in ("asyncpg", "postgres", "connection", "sql", "errno"))


# --- a Twilio stand-in that can hang ----------------------------------------------------------


@dataclass
class SlowTwilio:
    """Twilio's Messages API. While `holding`, requests after the first `answer_first` wait
    until `release()`; an answer counts as sent only if the sender is still connected when
    it is given (a sender killed meanwhile never got it: for it, nothing was sent)."""

    url: str = ""
    answer_first: int = 0
    holding: bool = False
    received: list[str] = field(default_factory=list)  # To numbers, in arrival order
    sent: list[str] = field(default_factory=list)  # To numbers answered 201 to a live sender
    abandoned: list[str] = field(default_factory=list)  # the sender was gone
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.holding = False
        self._release.set()

    @property
    def waiting(self) -> int:
        return len(self.received) - len(self.sent) - len(self.abandoned)

    def app(self) -> Starlette:
        async def create_message(request: Request) -> JSONResponse:
            form = await request.form()
            to = str(form.get("To", ""))
            self.received.append(to)
            if self.holding and len(self.received) > self.answer_first:
                await self._release.wait()
                await asyncio.sleep(0.05)
                if await request.is_disconnected():
                    self.abandoned.append(to)
                    return JSONResponse({"message": "gone"}, status_code=503)
            self.sent.append(to)
            sid = "SM" + uuid.uuid4().hex
            return JSONResponse({"sid": sid, "status": "queued", "to": to}, status_code=201)

        return Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{sid}/Messages.json", create_message, methods=["POST"])
            ]
        )


@contextlib.asynccontextmanager
async def serve_in_loop(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """A small ASGI app on a loopback port, in this event loop."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "the stand-in did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
