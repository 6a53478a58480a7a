"""Retention of uploaded files (issue 19, item 8): the files of a dossier that ended are
deleted DOCUMENT_RETENTION_DAYS after its end, the client told beforehand.

The end: `dossiers.ended_at`, set by the status change that makes a dossier COMPLETED or
CANCELLED (app/services/workflow/machine.py; both are final, so it is set once; migration
0025 backfilled the dossiers that had ended before). Two passes, each walking a partial
index by end date and claiming at most RETENTION_BATCH_SIZE dossiers with FOR UPDATE SKIP
LOCKED (a second worker takes other rows):

1. the notice (`idx_dossiers_retention_notice_due`): a dossier whose files go within
   DOCUMENT_RETENTION_NOTICE_DAYS gets `retention_notified_at` and, when it still has
   files, ONE DOSSIER_RETENTION_NOTICE event (the client's notification and e-mail,
   template `document_retention_notice`): sent once, the marker says so.
2. the purge (`idx_dossiers_retention_due`): a dossier ended RETENTION_DAYS ago, and told
   at least NOTICE_DAYS ago (when notices are on), has its versions' files deleted from
   storage (app/services/file_purge.py; the rows stay, `purged_at` set), then
   `files_purged_at` and, when files went, ONE DOSSIER_FILES_PURGED event. A file storage
   refuses to delete leaves its dossier for the next pass; nothing is done twice.

So a file is never deleted before its client was told NOTICE_DAYS ahead: a dossier that
ends nearer its deadline than that (or a notice the worker sent late) is told at once, and
its files wait NOTICE_DAYS from the notice. DOCUMENT_RETENTION_DAYS=0 keeps files forever.
Only the clients' uploads (document versions) go: files the firm shared are its own.
`python -m app retention --dry-run` lists what a pass would delete (`due_files`).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from app import clock
from app.models import Document, DocumentVersion, Dossier
from app.models.enums import EventType
from app.providers.storage import Storage, build_storage
from app.services import events, outbox
from app.services.file_purge import purge_files
from app.settings import Settings, get_settings

logger = logging.getLogger("app.retention")
DRY_RUN_LIMIT = 10_000


@dataclass(frozen=True)
class DueFile:
    """A file a pass would delete: what the dry run lists."""

    dossier_id: uuid.UUID
    reference: str  # the dossier's case number
    version_id: uuid.UUID
    file_name: str
    file_size_bytes: int
    due_at: datetime


@dataclass
class RetentionReport:
    noticed: int = 0  # dossiers told (events sent)
    purged_dossiers: int = 0
    purged_files: int = 0
    purged_bytes: int = 0


def purge_due_at(
    ended_at: datetime, notified_at: datetime | None, now: datetime, settings: Settings
) -> datetime:
    """When a dossier's files go: RETENTION_DAYS after its end, and NOTICE_DAYS after its
    notice at the earliest (a notice not yet sent would be sent `now`)."""
    due = ended_at + timedelta(days=settings.document_retention_days)
    notice = settings.document_retention_notice_days
    if notice:
        due = max(due, (notified_at or now) + timedelta(days=notice))
    return due


async def _versions_of(dossier_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[DocumentVersion]]:
    """The versions still stored, per dossier (documents by `idx_documents_dossier_id`,
    their versions by the (document, version_number) unique index)."""
    if not dossier_ids:
        return {}
    documents = await Document.filter(dossier_id__in=dossier_ids).values_list("id", "dossier_id")
    dossier_of: dict[uuid.UUID, uuid.UUID] = dict(documents)
    found: dict[uuid.UUID, list[DocumentVersion]] = defaultdict(list)
    if dossier_of:
        for version in await DocumentVersion.filter(
            document_id__in=list(dossier_of), purged_at__isnull=True
        ).order_by("uploaded_at", "id"):
            found[dossier_of[version.document_id]].append(version)
    return found


async def send_notices(
    *, now: datetime | None = None, limit: int | None = None, settings: Settings | None = None
) -> int:
    """Tell the clients whose files go within NOTICE_DAYS, once; the dossiers told."""
    settings = settings or get_settings()
    retention, notice = settings.document_retention_days, settings.document_retention_notice_days
    if not retention or not notice:
        return 0
    now = now or clock.now()
    threshold = now - timedelta(days=max(retention - notice, 0))
    told = 0
    async with outbox.collecting(), in_transaction():
        due = list(
            await Dossier.filter(
                ended_at__isnull=False,
                files_purged_at__isnull=True,
                retention_notified_at__isnull=True,
                ended_at__lte=threshold,
            )
            .order_by("ended_at", "id")
            .limit(limit or settings.retention_batch_size)
            .select_for_update(skip_locked=True)
        )
        if not due:
            return 0
        versions = await _versions_of([d.id for d in due])
        await Dossier.filter(id__in=[d.id for d in due]).update(retention_notified_at=now)
        for dossier in due:
            files = versions.get(dossier.id, [])
            if not files or dossier.ended_at is None:
                continue  # nothing to delete: nothing to tell
            purge_at = purge_due_at(dossier.ended_at, now, now, settings)
            await events.record(
                "dossier",
                dossier.id,
                EventType.DOSSIER_RETENTION_NOTICE,
                payload={
                    "dossierId": str(dossier.id),
                    "purgeOn": purge_at.date().isoformat(),
                    "fileCount": len(files),
                    "daysLeft": (purge_at - now).days,
                },
            )
            told += 1
    if told:
        logger.info("retention: %d client(s) told their files will be deleted", told)
    return told


def _purge_filter(now: datetime, settings: Settings) -> dict[str, object]:
    conditions: dict[str, object] = {
        "ended_at__isnull": False,
        "files_purged_at__isnull": True,
        "ended_at__lte": now - timedelta(days=settings.document_retention_days),
    }
    if settings.document_retention_notice_days:
        conditions["retention_notified_at__lte"] = now - timedelta(
            days=settings.document_retention_notice_days
        )
    return conditions


async def purge_due(
    *,
    now: datetime | None = None,
    limit: int | None = None,
    settings: Settings | None = None,
    storage: Storage | None = None,
) -> RetentionReport:
    """Delete the files of the dossiers whose time has come; at most `limit` dossiers."""
    settings = settings or get_settings()
    report = RetentionReport()
    if not settings.document_retention_days:
        return report
    now = now or clock.now()
    storage = storage or build_storage(settings)
    async with outbox.collecting(), in_transaction():
        due = list(
            await Dossier.filter(**_purge_filter(now, settings))
            .order_by("ended_at", "id")
            .limit(limit or settings.retention_batch_size)
            .select_for_update(skip_locked=True)
        )
        if not due:
            return report
        versions = await _versions_of([d.id for d in due])
        done: list[uuid.UUID] = []
        for dossier in due:
            files = versions.get(dossier.id, [])
            purge = await purge_files(files, storage, now=now)
            if purge.failed:
                continue  # its dossier waits for the next pass
            done.append(dossier.id)
            if not purge.purged:
                continue
            report.purged_dossiers += 1
            report.purged_files += len(purge.purged)
            report.purged_bytes += purge.bytes
            await events.record(
                "dossier",
                dossier.id,
                EventType.DOSSIER_FILES_PURGED,
                payload={
                    "dossierId": str(dossier.id),
                    "versionIds": [str(v) for v in purge.purged],
                    "fileCount": len(purge.purged),
                    "bytes": purge.bytes,
                    "endedAt": dossier.ended_at.isoformat() if dossier.ended_at else None,
                    "retentionDays": settings.document_retention_days,
                },
            )
        if done:
            await Dossier.filter(id__in=done).update(files_purged_at=now)
    if report.purged_files:
        logger.info(
            "retention: %d file(s), %d bytes, of %d dossier(s) deleted",
            report.purged_files,
            report.purged_bytes,
            report.purged_dossiers,
        )
    return report


async def run_pass(
    *, now: datetime | None = None, settings: Settings | None = None, storage: Storage | None = None
) -> RetentionReport:
    """The worker's job (and `python -m app retention`): notices, then the purge."""
    settings = settings or get_settings()
    noticed = await send_notices(now=now, settings=settings)
    report = await purge_due(now=now, settings=settings, storage=storage)
    report.noticed = noticed
    return report


async def due_files(
    *,
    now: datetime | None = None,
    within_days: int = 0,
    settings: Settings | None = None,
    limit: int = DRY_RUN_LIMIT,
) -> list[DueFile]:
    """The files a pass would delete by `now + within_days`, soonest first (nothing is
    changed): the dry run."""
    settings = settings or get_settings()
    if not settings.document_retention_days:
        return []
    now = now or clock.now()
    horizon = now + timedelta(days=within_days)
    dossiers = await (
        Dossier.filter(
            ended_at__isnull=False,
            files_purged_at__isnull=True,
            ended_at__lte=horizon - timedelta(days=settings.document_retention_days),
        )
        .order_by("ended_at", "id")
        .limit(limit)
    )
    due_at = {
        d.id: purge_due_at(d.ended_at, d.retention_notified_at, now, settings)
        for d in dossiers
        if d.ended_at is not None
    }
    due_at = {d: at for d, at in due_at.items() if at <= horizon}
    references = {d.id: d.reference for d in dossiers}
    versions = await _versions_of(list(due_at))
    rows = [
        DueFile(d, references[d], v.id, v.file_name, v.file_size_bytes, due_at[d])
        for d, files in versions.items()
        for v in files
    ]
    return sorted(rows, key=lambda r: (r.due_at, str(r.dossier_id), str(r.version_id)))
