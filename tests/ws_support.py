"""Helpers for the chat, subscription and scale-out tests: a real graphql-transport-ws
client (gql's WebsocketsTransport), subscriptions read in the background with bounded
waits, and a private redis-server for the tests that kill Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

WAIT = 5.0  # seconds: the longest any single expectation waits


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]], *, within: float = WAIT, what: str = ""
) -> Any:
    """Poll until predicate() is truthy (it may be async); fail after `timeout`."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def transport(url: str, token: str | None, **kwargs: Any) -> WebsocketsTransport:
    payload = {"authorization": f"Bearer {token}"} if token else {}
    return WebsocketsTransport(
        url=url,
        init_payload=payload,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        connect_timeout=WAIT,
        ack_timeout=WAIT,
        close_timeout=1,
        keep_alive_timeout=None,
        **kwargs,
    )


@contextlib.asynccontextmanager
async def ws_session(url: str, token: str | None) -> AsyncIterator[Any]:
    client = Client(transport=transport(url, token), fetch_schema_from_transport=False)
    async with client as session:
        yield session


@dataclass
class Ended:
    error: BaseException | None


@dataclass
class Feed:
    """One subscription read in the background into a queue."""

    session: Any
    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    items: asyncio.Queue = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None

    def start(self) -> Feed:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        request = GraphQLRequest(self.query, variable_values=self.variables)
        try:
            async for result in self.session.subscribe(request):
                await self.items.put(result)
        except Exception as exc:
            await self.items.put(Ended(exc))
        else:
            await self.items.put(Ended(None))

    async def next(self, within: float = WAIT) -> dict[str, Any]:
        try:
            item = await asyncio.wait_for(self.items.get(), within)
        except TimeoutError:
            raise AssertionError(f"no event within {within}s") from None
        if isinstance(item, Ended):
            raise AssertionError(f"the subscription ended: {item.error!r}")
        return item

    async def take(self, n: int, within: float = WAIT) -> list[dict[str, Any]]:
        return [await self.next(within) for _ in range(n)]

    async def ended(self, within: float = WAIT) -> Ended:
        """Skip events until the subscription ends; return how it ended."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the subscription did not end within {within}s")
            try:
                item = await asyncio.wait_for(self.items.get(), left)
            except TimeoutError:
                continue
            if isinstance(item, Ended):
                return item

    async def collect(
        self, n: int, within: float = WAIT
    ) -> tuple[list[dict[str, Any]], Ended | None]:
        """Up to `n` events, stopping early if the subscription ends (then returned)."""
        items: list[dict[str, Any]] = []
        deadline = time.monotonic() + within
        while len(items) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(items)} of {n} events within {within}s")
            try:
                item = await asyncio.wait_for(self.items.get(), left)
            except TimeoutError:
                continue
            if isinstance(item, Ended):
                return items, item
            items.append(item)
        return items, None

    async def until_end(self, within: float = WAIT) -> tuple[list[dict[str, Any]], Ended]:
        """Everything received until the subscription ends, and how it ended."""
        items: list[dict[str, Any]] = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = await asyncio.wait_for(self.items.get(), left)
            except TimeoutError:
                break
            if isinstance(item, Ended):
                return items, item
            items.append(item)
        raise AssertionError(f"the subscription did not end within {within}s")

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Whatever arrives within `seconds` (to prove nothing more comes)."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = await asyncio.wait_for(self.items.get(), left)
            except TimeoutError:
                break
            got.append(item)
        return got

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


def error_codes_of(error: BaseException | None) -> list[str | None]:
    """extensions.code of the GraphQL errors a gql exception carries."""
    errors = getattr(error, "errors", None) or []
    return [(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class PrivateRedis:
    """A redis-server of the test's own on a free port (never the shared one), which the
    test may kill and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="test-redis-")
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = redis_server_binary()
        assert binary, "redis-server is not installed"
        self.process = await asyncio.create_subprocess_exec(
            binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", self.dir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await wait_until(self._accepting, what=f"redis-server on {self.port}")

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.2):
                return True
        except OSError:
            return False

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), 5)
        self.process = None

    async def stop(self) -> None:
        await self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def command(self, *args: str) -> Any:
        import redis.asyncio as redis

        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return await client.execute_command(*args)
        finally:
            await client.aclose()


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


@dataclass
class Served:
    app: Any
    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


@contextlib.asynccontextmanager
async def serve(settings: Any) -> AsyncIterator[Served]:
    """A separately built app (its own settings, its own lifespan: hub opened and
    released) on a real uvicorn in this event loop; the database is the test's."""
    import uvicorn

    from app.main import create_app

    app = create_app(settings, manage_db=False)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", ws="websockets"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), what="uvicorn to start")
    assert server.started, "uvicorn did not start"
    try:
        yield Served(app, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


def settings_with(**changes: Any) -> Any:
    from app.settings import get_settings

    return get_settings().model_copy(update=changes)
