"""Files the firm shares with a dossier (issue 18, item 4).

`share_file`: an agent's upload, through the same checks as a document's (sanitised name,
an extension the platform supports, magic bytes that agree, the size cap while streaming,
under a generated storage key; the request body is capped while it arrives), recorded in
`shared_files` with a FILE_SHARED event (the client is notified). The dossier's client and
agents list them (`Dossier.sharedFiles`) and download them through the signed-download
route (`/files/<id>`, as document versions). A chat message may attach them
(app.services.messages)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import Forbidden, NotFound
from app.models import Dossier, SharedFile
from app.models.enums import EventType
from app.providers.storage import Storage
from app.services import events
from app.services.catalog import MAX_FILE_SIZE_MB, SUPPORTED_EXTENSIONS
from app.services.document_specs import DocumentSpec
from app.services.documents import REVIEW_TEXT_MAX, UploadedFile, store_upload
from app.services.dossiers import visible_dossiers
from app.services.downloads import IssuedTo, SignedUrl, signed_download_path
from app.services.validation import check_text
from app.settings import get_settings

logger = logging.getLogger("app.shared_files")
SHARED_SPEC = DocumentSpec(
    label="shared file",
    allowed_extensions=sorted(SUPPORTED_EXTENSIONS),
    max_file_size_mb=MAX_FILE_SIZE_MB,
    code=None,
)


async def share_file(
    viewer: Viewer,
    dossier_id: uuid.UUID,
    upload: UploadedFile,
    *,
    note: str | None = None,
    storage: Storage,
    now: datetime | None = None,
) -> tuple[SharedFile, Dossier]:
    if viewer.agent is None:
        raise Forbidden("Only agents share files.")
    dossier = await Dossier.filter(id=dossier_id).first()
    if dossier is None:
        raise NotFound("No such dossier.")
    if note is not None:
        note = check_text(note, "note", max_length=REVIEW_TEXT_MAX, required=False) or None
    stored = await store_upload(
        upload, SHARED_SPEC, storage=storage, key_prefix=f"shared/{dossier.id}"
    )
    try:
        async with in_transaction():
            shared = await SharedFile.create(
                dossier_id=dossier.id,
                shared_by_id=viewer.agent.id,
                file_name=stored.file_name,
                mime_type=stored.kind.mime,
                file_size_bytes=stored.size,
                storage_key=stored.key,
                note=note,
                created_at=now or datetime.now(UTC),
            )
            await events.record(
                "dossier",
                dossier.id,
                EventType.FILE_SHARED,
                actor=viewer,
                payload={
                    "dossierId": str(dossier.id),
                    "sharedFileId": str(shared.id),
                    "fileName": shared.file_name,
                    "document": shared.file_name,  # what the templates call the file
                    "note": note,
                },
            )
    except BaseException:
        try:
            await storage.delete(stored.key)
        except Exception:  # the row never committed: an orphan file harms no one
            logger.exception("could not delete %s after a failed share", stored.key)
        raise
    return shared, dossier


def dossier_shared_files(dossier_id: uuid.UUID) -> QuerySet[SharedFile]:
    return SharedFile.filter(dossier_id=dossier_id)


async def visible_shared_file(viewer: Viewer, shared_file_id: uuid.UUID) -> SharedFile:
    """The shared file; NotFound for another client's (same as missing)."""
    shared = await SharedFile.filter(
        id=shared_file_id, dossier_id__in=visible_dossiers(viewer).values("id")
    ).first()
    if shared is None:
        raise NotFound("No such shared file.")
    return shared


def download_url(shared: SharedFile, viewer: Viewer, *, now: datetime | None = None) -> SignedUrl:
    """A short-lived link through the signed-download route, issued to the viewer (the
    caller has checked the viewer sees the file's dossier)."""
    path, expires_at = signed_download_path(shared.id, issued_to=IssuedTo.of(viewer), now=now)
    return SignedUrl(get_settings().public_api_url.rstrip("/") + path, expires_at)
