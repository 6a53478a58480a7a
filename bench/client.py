"""The load side: a lean HTTP/1.1 keep-alive client, closed- and open-loop generators,
A/B rounds, graphql-transport-ws and bare WebSocket clients, a raw RESP subscriber.

The generator must never be the bottleneck (the raw routes answer thousands of requests a
second on one core): requests are prebuilt bytes written on keep-alive sockets and the
response is read by its Content-Length, no HTTP library in the loop. httpx is used only
for the equality checks, where speed does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

# --- HTTP ------------------------------------------------------------------------------


def build_request(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class HttpConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> HttpConnection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = None, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length is not None:
            return status, await self.reader.readexactly(length)
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    return status, bytes(body)
                body += chunk[:-2]
        return status, b""


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


Check = Callable[[int, bytes], bool]


def ok_json(status: int, body: bytes) -> bool:
    return status == 200 and b'"errors"' not in body[:200]


async def closed_loop(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    *,
    concurrency: int,
    seconds: float | None = None,
    requests: int | None = None,
    check: Check = ok_json,
) -> Sample:
    """`concurrency` connections, each sending its next request when the last one is
    answered, for `seconds` or until `requests` were sent in all."""
    connections = [await HttpConnection(host, port).open() for _ in range(concurrency)]
    sample = Sample()
    counter = iter(range(10**9))
    deadline = None
    started = time.perf_counter()
    if seconds is not None:
        deadline = started + seconds

    async def worker(conn: HttpConnection) -> None:
        while True:
            n = next(counter)
            if requests is not None and n >= requests:
                return
            if deadline is not None and time.perf_counter() >= deadline:
                return
            request = make(n)
            t0 = time.perf_counter()
            status, body = await conn.send(request)
            sample.latencies.append(time.perf_counter() - t0)
            if not check(status, body):
                sample.errors += 1

    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        sample.seconds = time.perf_counter() - started
        for conn in connections:
            await conn.close()
    return sample


async def open_loop(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float,
    max_connections: int = 64,
    check: Check = ok_json,
) -> Sample:
    """Requests sent on a fixed schedule (`rate` per second) whatever the answers do; each
    latency counts from the scheduled send time (no coordinated omission)."""
    idle: list[HttpConnection] = []
    opened = 0
    sample = Sample()
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    pending: set[asyncio.Task[None]] = set()

    async def one(n: int, due: float) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        elif opened < max_connections:
            opened += 1
            conn = await HttpConnection(host, port).open()
        else:
            while not idle:
                await asyncio.sleep(0.0005)
            conn = idle.pop()
        status, body = await conn.send(make(n))
        sample.latencies.append(time.perf_counter() - due)
        if not check(status, body):
            sample.errors += 1
        idle.append(conn)

    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(n, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    sample.seconds = time.perf_counter() - start
    for conn in idle:
        await conn.close()
    return sample


@dataclass
class AB:
    """Interleaved rounds of a contender (A) and its baseline (B)."""

    a: list[Sample] = field(default_factory=list)
    b: list[Sample] = field(default_factory=list)

    def ratios(self, metric: Callable[[Sample], float]) -> list[float]:
        return [metric(a) / metric(b) for a, b in zip(self.a, self.b, strict=True) if metric(b)]

    def median_ratio(self, metric: Callable[[Sample], float]) -> float:
        ratios = self.ratios(metric)
        return statistics.median(ratios) if ratios else float("nan")

    def median(self, side: str, metric: Callable[[Sample], float]) -> float:
        samples = self.a if side == "a" else self.b
        return statistics.median(metric(s) for s in samples) if samples else float("nan")

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.a + self.b)


async def ab_rounds(
    run_a: Callable[[], Awaitable[Sample]],
    run_b: Callable[[], Awaitable[Sample]],
    rounds: int,
) -> AB:
    """A then B, B then A, … so drift (caches, autovacuum, the other engineers' load on a
    shared machine) hits both sides alike."""
    result = AB()
    for i in range(rounds):
        if i % 2 == 0:
            result.a.append(await run_a())
            result.b.append(await run_b())
        else:
            result.b.append(await run_b())
            result.a.append(await run_a())
    return result


# --- graphql-transport-ws and bare WebSocket ---------------------------------------------


class GraphQLSocket:
    """One graphql-transport-ws connection with (at most) one subscription."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.on_data: Callable[[dict[str, Any]], None] | None = None
        self.errors: list[Any] = []
        self.completed = asyncio.Event()

    async def open(self, *, max_queue: int | None = 16) -> GraphQLSocket:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            self.url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            max_queue=max_queue,
            ping_interval=None,
            open_timeout=30,
            close_timeout=2,
        )
        await self.ws.send(
            orjson.dumps(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}}
            ).decode()
        )
        ack = orjson.loads(await asyncio.wait_for(self.ws.recv(), 30))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        return self

    async def subscribe(self, query: str, variables: dict[str, Any], *, read: bool = True) -> None:
        self.completed.clear()
        await self.ws.send(
            orjson.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables},
                }
            ).decode()
        )
        if read:
            self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "next" and self.on_data is not None:
                    self.on_data(message["payload"])
                elif kind == "ping":
                    await self.ws.send('{"type":"pong"}')
                elif kind == "error":
                    self.errors.append(message.get("payload"))
                    self.completed.set()
                elif kind == "complete":
                    self.completed.set()
        except Exception as exc:  # the connection went away
            self.errors.append(repr(exc))
            self.completed.set()

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3)


class BareSocket:
    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.on_text: Callable[[str], None] | None = None

    async def open(self) -> BareSocket:
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, ping_interval=None, open_timeout=30, close_timeout=2)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                if self.on_text is not None:
                    self.on_text(raw)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 3)


async def gather_limited(factories: list[Callable[[], Awaitable[Any]]], limit: int = 50) -> list:
    gate = asyncio.Semaphore(limit)

    async def run(factory: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await factory()

    return await asyncio.gather(*(run(f) for f in factories))


# --- a raw Redis subscriber (RESP over a plain socket) -------------------------------------


class RespSubscriber:
    """SUBSCRIBE on its own connection; each published payload goes to `on_message`."""

    def __init__(self, host: str, port: int, channel: str) -> None:
        self.host, self.port, self.channel = host, port, channel
        self.on_message: Callable[[bytes], None] | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> RespSubscriber:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        name = self.channel.encode()
        self.writer.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(name), name))
        await self._item()  # the subscribe confirmation
        self.task = asyncio.create_task(self._loop())
        return self

    async def _line(self) -> bytes:
        assert self.reader is not None
        return (await self.reader.readuntil(b"\r\n"))[:-2]

    async def _item(self) -> Any:
        assert self.reader is not None
        line = await self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"*":
            return [await self._item() for _ in range(int(rest))]
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else (await self.reader.readexactly(size + 2))[:-2]
        if kind == b":":
            return int(rest)
        return rest

    async def _loop(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                item = await self._item()
                if isinstance(item, list) and item and item[0] == b"message" and self.on_message:
                    self.on_message(item[2])

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
