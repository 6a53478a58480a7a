"""Deleting uploaded files from storage while keeping their rows (issue 19): the one
primitive the retention rule (app/services/retention.py) and an erasure use.

`purge_files` deletes each version's file from storage (local or S3: both treat a file
already gone as deleted, so a pass cut short is simply run again), then marks the rows it
deleted in ONE UPDATE (`purged_at`, only where still null: idempotent). A file the storage
refuses to delete is logged and its row left unmarked, for the next pass. The rows stay:
the dossier's history still lists the version, and its download answers 410 Gone.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app import clock
from app.models import DocumentVersion
from app.providers.storage import Storage
from app.services.privacy.files import delete_keys

logger = logging.getLogger("app.file_purge")


@dataclass
class Purge:
    purged: list[uuid.UUID] = field(default_factory=list)  # versions whose file went now
    failed: list[uuid.UUID] = field(default_factory=list)  # storage refused: left for later
    bytes: int = 0


async def purge_files(
    versions: Sequence[DocumentVersion], storage: Storage, *, now: datetime | None = None
) -> Purge:
    """Delete the files of `versions` (those not purged yet) and mark their rows."""
    now = now or clock.now()
    result = Purge()
    pending = [version for version in versions if version.purged_at is None]
    failed = await delete_keys(storage, [version.file_url for version in pending])
    for version in pending:
        if version.file_url in failed:
            logger.error(
                "version %s: file %s not deleted: %s",
                version.id,
                version.file_url,
                failed[version.file_url],
            )
            result.failed.append(version.id)
            continue
        result.purged.append(version.id)
        result.bytes += version.file_size_bytes
    if result.purged:
        await DocumentVersion.filter(id__in=result.purged, purged_at__isnull=True).update(
            purged_at=now
        )
        for version in versions:
            if version.id in result.purged:
                version.purged_at = now
    return result
