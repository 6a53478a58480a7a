"""broadcaster internals: its in-memory backend (one process, tests and `make run`).

The hub (`app.subscriptions.hub`) talks to backends through broadcaster's public
`BroadcastBackend` interface; only the memory backend's class is private. Pinned in
tests/test_compat.py.
"""

from __future__ import annotations

import asyncio

from broadcaster import BroadcastBackend, Event
from broadcaster._backends.memory import MemoryBackend

__all__ = ["BroadcastBackend", "Event", "memory_backend"]


class _EagerMemoryBackend(MemoryBackend):
    """broadcaster's memory backend, usable for publishing before `connect`."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._published: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        pass


def memory_backend(url: str = "memory://") -> BroadcastBackend:
    return _EagerMemoryBackend(url)
