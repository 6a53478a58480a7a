"""Right of access (GDPR art. 15): a client's data-export archive.

`request_export` (the client for themself, or an admin for a client) writes a REQUESTED
row, one pending per client at a time. The worker's pass (`run`) builds the archive
(`archive.chunks`, streamed into the storage), marks it READY with its expiry
(DATA_EXPORT_TTL_DAYS) and e-mails the client, and the admin who asked, a signed link
(`links.export_url`, derived when the e-mail is written). A build that fails is tried again
up to DATA_EXPORT_MAX_ATTEMPTS, then FAILED; an archive past its expiry is deleted (EXPIRED).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from tortoise.transactions import in_transaction

from app import clock
from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import Agent, Credential, DataExport, Profile
from app.models.enums import PENDING_EXPORT_STATUSES, DataExportStatus, EventType
from app.providers.storage import Storage, build_storage
from app.services import events, outbox
from app.services.codes import PrivacyErrorCode as Code
from app.services.privacy import archive, files
from app.services.privacy.scope import scope_of
from app.settings import get_settings

logger = logging.getLogger("app.privacy.exports")
BUILD_LEASE = timedelta(minutes=30)
BUILDS_PER_PASS = 5
EXPIRE_BATCH = 100


async def request_export(actor: Viewer, profile_id: uuid.UUID) -> DataExport:
    """A new export of the client `profile_id`: theirs, or any client's for an admin."""
    if not (actor.is_admin or (actor.profile is not None and actor.profile.id == profile_id)):
        raise NotFound("No such client.")
    async with in_transaction():
        profile = await Profile.filter(id=profile_id).select_for_update().first()
        if profile is None:
            raise NotFound("No such client.")
        if profile.erased_at is not None:
            raise DomainError(Code.ERASED, "This client was erased: there is nothing to export.")
        pending = await DataExport.filter(
            profile_id=profile_id, status__in=list(PENDING_EXPORT_STATUSES)
        ).exists()
        if pending:
            raise DomainError(
                Code.EXPORT_PENDING,
                "An export is already on its way: its link will be e-mailed when it is ready.",
            )
        export = await DataExport.create(
            profile_id=profile_id,
            requested_by_type=actor.actor_type,
            requested_by_id=actor.actor_id,
        )
        await events.record(
            "profile",
            profile_id,
            EventType.DATA_EXPORT_REQUESTED,
            actor=actor,
            payload={"dataExportId": str(export.id)},
        )
    return export


async def _claim() -> DataExport | None:
    """One export to build: the oldest REQUESTED, or a BUILDING one whose worker died."""
    now = clock.now()
    async with in_transaction():
        export = (
            await DataExport.filter(status=DataExportStatus.REQUESTED)
            .order_by("created_at")
            .select_for_update(skip_locked=True)
            .first()
        ) or (
            await DataExport.filter(status=DataExportStatus.BUILDING, claimed_until__lt=now)
            .order_by("created_at")
            .select_for_update(skip_locked=True)
            .first()
        )
        if export is None:
            return None
        export.status = DataExportStatus.BUILDING
        export.attempts += 1
        export.claimed_until = now + BUILD_LEASE
        await export.save(update_fields=["status", "attempts", "claimed_until", "updated_at"])
    return export


async def _recipients(export: DataExport, profile: Profile) -> list[dict[str, str]]:
    """Who is e-mailed the link: the client, and the admin who asked for it."""
    found = []
    credential = await Credential.filter(profile_id=profile.id).only("email").first()
    if credential is not None:
        found.append(
            {"email": credential.email, "name": profile.full_name, "locale": profile.locale}
        )
    if export.requested_by_type == "AGENT" and export.requested_by_id:
        agent = await Agent.filter(id=export.requested_by_id, active=True).first()
        if agent is not None:
            found.append({"email": agent.email, "name": agent.name, "locale": agent.locale})
    return found


async def build(export: DataExport, storage: Storage) -> DataExport:
    """Build one claimed export: READY (and e-mailed), back to REQUESTED, or FAILED."""
    settings = get_settings()
    profile = await Profile.get(id=export.profile_id)
    key = f"exports/{profile.id}/{export.id}.zip"
    try:
        scope = await scope_of(profile)
        size = await storage.save(
            key, archive.chunks(scope, storage), content_type="application/zip"
        )
    except Exception as exc:
        logger.exception("data export %s: build %d failed", export.id, export.attempts)
        await storage_delete_quietly(storage, key)
        return await _failed(export, f"{type(exc).__name__}: {exc}"[:500])
    now = clock.now()
    expires_at = (now + timedelta(days=settings.data_export_ttl_days)).replace(microsecond=0)
    async with outbox.collecting(), in_transaction():
        current = await DataExport.filter(id=export.id).select_for_update().get()
        if current.status != DataExportStatus.BUILDING or current.attempts != export.attempts:
            # lease lost (another worker took it over): leave the other build to finish
            await files.schedule([key], "data-export-superseded")
            return current
        current.status = DataExportStatus.READY
        current.storage_key, current.size_bytes = key, size
        current.ready_at, current.expires_at = now, expires_at
        current.claimed_until, current.last_error = None, None  # type: ignore[assignment]
        await current.save()
        for recipient in await _recipients(current, profile):
            await events.record(
                "data_export",
                current.id,
                EventType.DATA_EXPORT_READY,
                payload={
                    **recipient,
                    "profileId": str(profile.id),
                    "dataExportId": str(current.id),
                    "expiresAt": expires_at.isoformat(),
                },
            )
    return current


async def storage_delete_quietly(storage: Storage, key: str) -> None:
    try:
        await storage.delete(key)
    except Exception:  # a save that failed may have left nothing: nothing to report
        logger.warning("data export: could not delete the partial archive %s", key)


async def _failed(export: DataExport, error: str) -> DataExport:
    settings = get_settings()
    async with outbox.collecting(), in_transaction():
        current = await DataExport.filter(id=export.id).select_for_update().get()
        if current.status != DataExportStatus.BUILDING:
            return current
        current.last_error, current.claimed_until = error, None
        if current.attempts >= settings.data_export_max_attempts:
            current.status, current.failed_at = DataExportStatus.FAILED, clock.now()
            await events.record(
                "data_export",
                current.id,
                EventType.DATA_EXPORT_FAILED,
                payload={"profileId": str(current.profile_id), "attempts": current.attempts},
            )
        else:
            current.status = DataExportStatus.REQUESTED
        await current.save()
    return current


async def build_due(storage: Storage | None = None, *, limit: int = BUILDS_PER_PASS) -> int:
    """The worker's pass: build up to `limit` exports; how many were built."""
    storage = storage or build_storage(get_settings())
    built = 0
    for _ in range(limit):
        export = await _claim()
        if export is None:
            break
        if (await build(export, storage)).status == DataExportStatus.READY:
            built += 1
    return built


async def expire_due(storage: Storage | None = None) -> int:
    """Archives past their expiry: EXPIRED, their file deleted. How many expired."""
    now = clock.now()
    async with in_transaction():
        due = list(
            await DataExport.filter(status=DataExportStatus.READY, expires_at__lte=now)
            .order_by("expires_at")
            .limit(EXPIRE_BATCH)
            .select_for_update(skip_locked=True)
        )
        keys = [export.storage_key for export in due if export.storage_key]
        if due:
            await DataExport.filter(id__in=[export.id for export in due]).update(
                status=DataExportStatus.EXPIRED, expired_at=now, storage_key=None, updated_at=now
            )
        scheduled = await files.schedule(keys, "data-export-expired")
    await files.delete_now(scheduled, storage)
    return len(due)


async def run(storage: Storage | None = None) -> None:
    """The worker job: build what was asked, delete what expired, retry file deletions."""
    storage = storage or build_storage(get_settings())
    await build_due(storage)
    await expire_due(storage)
    await files.retry_due(storage)
