"""The access audit (issue 19, item 5): who opened which dossier, who downloaded which file,
when, and from where, written without slowing the read that is audited.

`record` only appends a row to this process's buffer: the read it audits (a signed
download, an agent's `dossier(id:)`) sends no statement for it and never waits for it.
The buffer is written in one multi-row INSERT (`app.db.Writes`; chunks of `CHUNK` rows) by
`flush`, which runs every ACCESS_AUDIT_FLUSH_SECONDS (the `running` block, held by the
web app's lifespan), as soon as ACCESS_AUDIT_BUFFER_SIZE rows wait (in a task of its
own, after the answer), and once more at shutdown. A write that fails is logged and its
rows are kept for the next flush, up to the buffer's size (beyond it the oldest are
dropped, and the count is logged): auditing never fails, nor blocks, a read.

What is audited, and why:
- every signed download (a document version, or a file the firm shared), by whoever:
  the link names the account it was issued to (bound by its signature), and the row keeps
  the address and user agent of the request that used it;
- `dossier(id:)` read by an agent or an administrator. A list page (`dossiers`, the
  review queue, `search`) is not a view of one dossier and is not recorded; nor is a
  client's view of a dossier they are a party to (their own data, nothing to account for
  to them), while their downloads are (a member downloading the main client's scan is).

The address is the one the app sees for the request (`request.client`): uvicorn rewrites it
from X-Forwarded-For only for the proxies FORWARDED_ALLOW_IPS trusts (`serve` runs it with
proxy headers on), the same address the session list and the rate limiter use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from tortoise.queryset import QuerySet

from app import clock
from app.db import Writes
from app.domain.viewer import Viewer
from app.errors import DomainError
from app.models import AccessEvent, Dossier
from app.models.enums import AccessKind, ActorType
from app.services.codes import DocumentErrorCode as Code
from app.services.sessions import Origin
from app.settings import get_settings

logger = logging.getLogger("app.access_audit")
CHUNK = 1000  # rows per INSERT (10 parameters each: well within PostgreSQL's 32767)
USER_AGENT_MAX = 512


class AccessAudit:
    def __init__(self, capacity: int | None = None) -> None:
        self._capacity = capacity  # None: ACCESS_AUDIT_BUFFER_SIZE
        self._pending: list[AccessEvent] = []
        self._flushing: asyncio.Task[int] | None = None
        self._lock = asyncio.Lock()
        self.dropped = 0

    @property
    def capacity(self) -> int:
        return self._capacity or get_settings().access_audit_buffer_size

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(
        self,
        kind: AccessKind,
        *,
        actor_type: ActorType,
        actor_id: uuid.UUID | None,
        where: Origin,
        client_id: uuid.UUID | None = None,
        dossier_id: uuid.UUID | None = None,
        document_id: uuid.UUID | None = None,
        version_id: uuid.UUID | None = None,
    ) -> None:
        """Buffer one access (no I/O); a full buffer is written by a task of its own."""
        self._pending.append(
            AccessEvent(
                id=uuid.uuid4(),
                occurred_at=clock.now(),
                kind=kind,
                actor_type=actor_type,
                actor_id=actor_id,
                client_id=client_id,
                dossier_id=dossier_id,
                document_id=document_id,
                version_id=version_id,
                ip_address=(where.ip_address or None) and where.ip_address[:64],
                user_agent=(where.user_agent or None) and where.user_agent[:USER_AGENT_MAX],
            )
        )
        if len(self._pending) >= self.capacity:
            self._flush_soon()

    def _flush_soon(self) -> None:
        if self._flushing is not None and not self._flushing.done():
            return
        # no running loop (a synchronous caller): the next periodic flush writes them
        with contextlib.suppress(RuntimeError):
            self._flushing = asyncio.get_running_loop().create_task(
                self.flush(), name="access-audit-flush"
            )

    async def flush(self) -> int:
        """Write what waits, in one INSERT per CHUNK rows; the rows written (0 on failure,
        which is logged and leaves the rows for the next flush)."""
        async with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return 0
            written = 0
            try:
                for start in range(0, len(rows), CHUNK):
                    batch = Writes()
                    batch.insert(*rows[start : start + CHUNK])
                    await batch.run()
                    written += len(rows[start : start + CHUNK])
            except Exception:
                logger.exception("access audit: %d row(s) not written", len(rows) - written)
                self._keep(rows[written:])
            return written

    def _keep(self, rows: list[AccessEvent]) -> None:
        """Put unwritten rows back in front of newer ones, within the buffer's size."""
        merged = rows + self._pending
        room = self.capacity
        if len(merged) > room:
            self.dropped += len(merged) - room
            logger.error("access audit: %d row(s) dropped (buffer full)", len(merged) - room)
            merged = merged[-room:]
        self._pending = merged

    def clear(self) -> None:
        """Forget what waits (tests)."""
        self._pending = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Flush periodically while the block runs, and once more at its end."""
        stop = asyncio.Event()

        async def periodic() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        stop.wait(), timeout=get_settings().access_audit_flush_seconds
                    )
                await self.flush()

        task = asyncio.create_task(periodic(), name="access-audit")
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await task
            if self._flushing is not None:
                with contextlib.suppress(Exception):
                    await self._flushing
            await self.flush()


audit = AccessAudit()  # one per process
record = audit.record
flush = audit.flush
running = audit.running


def dossier_viewed(viewer: Viewer, dossier: Dossier, where: Origin) -> None:
    """`dossier(id:)` answered: recorded for agents and administrators, not for clients."""
    if not viewer.is_agent:
        return
    record(
        AccessKind.DOSSIER_VIEWED,
        actor_type=viewer.actor_type,
        actor_id=viewer.actor_id,
        where=where,
        client_id=dossier.user_id,
        dossier_id=dossier.id,
    )


def access_log(
    *,
    client_id: uuid.UUID | None = None,
    document_id: uuid.UUID | None = None,
    dossier_id: uuid.UUID | None = None,
) -> QuerySet[AccessEvent]:
    """Accesses of one client's dossiers, one document or one dossier (exactly one filter),
    for the caller to page newest first (`-occurred_at`, `-id`) through its index."""
    given = {
        name: value
        for name, value in (
            ("client_id", client_id),
            ("document_id", document_id),
            ("dossier_id", dossier_id),
        )
        if value is not None
    }
    if len(given) != 1:
        raise DomainError(
            Code.REQUIRED, "Give exactly one of clientId, documentId and dossierId.", "clientId"
        )
    return AccessEvent.filter(**given)
