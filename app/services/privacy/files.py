"""Stored files to delete once the rows that pointed at them are committed (an erased
client's documents, an expired export archive).

The transaction that stops pointing at a file writes a `FileDeletion` row (`schedule`);
after commit `delete_now` tries at once; what the storage refused stays and the worker's
`retry_due` tries again with a growing delay until the storage says it is gone. A failure
is logged (the key, never a client's name) and never puts anything back in the rows.

`delete_keys` is the one place that deletes stored files: retention
(app/services/file_purge.py) calls it too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta

from app import clock
from app.models import FileDeletion
from app.providers.storage import Storage, build_storage
from app.settings import get_settings

logger = logging.getLogger("app.privacy.files")
RETRY_BATCH = 100
MAX_DELAY = timedelta(days=1)


async def schedule(keys: Iterable[str], reason: str) -> list[uuid.UUID]:
    """Rows for the files to delete; call inside the transaction that drops them."""
    now = clock.now()
    rows = [
        FileDeletion(id=uuid.uuid4(), storage_key=key, reason=reason, next_attempt_at=now)
        for key in dict.fromkeys(k for k in keys if k)
    ]
    if rows:
        await FileDeletion.bulk_create(rows)
    return [row.id for row in rows]


async def delete_keys(storage: Storage, keys: list[str]) -> dict[str, str]:
    """Delete each key; what failed, with why (a key already gone counts as deleted)."""
    failed: dict[str, str] = {}
    for key in keys:
        try:
            await storage.delete(key)
        except Exception as exc:  # any backend failure: kept for a retry
            failed[key] = f"{type(exc).__name__}: {exc}"[:500]
    return failed


async def _attempt(rows: list[FileDeletion], storage: Storage) -> int:
    if not rows:
        return 0
    failed = await delete_keys(storage, [row.storage_key for row in rows])
    done = [row.id for row in rows if row.storage_key not in failed]
    if done:
        await FileDeletion.filter(id__in=done).delete()
    base = get_settings().file_deletion_retry_seconds
    now = clock.now()
    for row in rows:
        if row.storage_key in failed:
            row.attempts += 1
            delay = min(timedelta(seconds=base * 2 ** (row.attempts - 1)), MAX_DELAY)
            row.next_attempt_at, row.last_error = now + delay, failed[row.storage_key]
            await row.save(
                update_fields=["attempts", "next_attempt_at", "last_error", "updated_at"]
            )
            logger.error(
                "file deletion %s (%s) failed, attempt %d, retry in %s: %s",
                row.storage_key,
                row.reason,
                row.attempts,
                delay,
                row.last_error,
            )
    return len(done)


async def delete_now(ids: list[uuid.UUID], storage: Storage | None = None) -> int:
    """Right after commit: try the files just scheduled; how many are gone."""
    if not ids:
        return 0
    storage = storage or build_storage(get_settings())
    return await _attempt(list(await FileDeletion.filter(id__in=ids)), storage)


async def retry_due(storage: Storage | None = None) -> int:
    """The worker's pass: the deletions whose time came, oldest first (an index range)."""
    rows = list(
        await FileDeletion.filter(next_attempt_at__lte=clock.now())
        .order_by("next_attempt_at")
        .limit(RETRY_BATCH)
    )
    if not rows:
        return 0
    return await _attempt(rows, storage or build_storage(get_settings()))
