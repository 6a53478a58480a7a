"""Documents: versioned uploads, agent reviews, the review queue, signed downloads (SPEC 2.3).

Upload, in order:
1. who and where: only the dossier's client (or an agent) may upload, only to a document
   of the dossier's current step that is PENDING, UPLOADED (the new version replaces the
   one awaiting review), CHANGES_REQUESTED or REJECTED, while the dossier's workflow runs;
2. the name: a sanitised display name (no path, no control or format characters,
   bounded), whose extension must be one the document type allows;
3. the bytes, streamed: the type's `max_file_size_mb` is enforced while reading, the
   magic bytes (the `filetype` library) must agree with the extension, an empty file is
   refused; the file goes to storage under a generated key as it is read;
4. one transaction, dossier then document rows locked: the next `version_number`, the
   version row, the document UPLOADED, a DOCUMENT_UPLOADED event, and the dossier status
   (UNDER_REVIEW once every document of the step is uploaded). If anything fails there,
   the stored file is deleted: no row ever points to a missing file.

The request body as a whole is capped earlier, while it arrives (`app.http.body_limits`).
"""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import filetype
from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, Forbidden, NotFound
from app.models import (
    Document,
    DocumentReview,
    DocumentType,
    DocumentVersion,
    Dossier,
    DossierMember,
)
from app.models.enums import DocumentStatus, DossierStatus, EventType, ReviewStatus
from app.providers.storage import Storage, StorageError
from app.services import document_expiry, events
from app.services.codes import DocumentErrorCode as Code
from app.services.document_specs import DocumentSpec, spec_of
from app.services.dossiers import is_party, membership
from app.services.validation import check_text
from app.services.workflow.machine import ACTIVE, lock_dossier
from app.services.workflow.steps import settle

logger = logging.getLogger("app.documents")
READ_CHUNK = 64 * 1024
SNIFF_BYTES = 8192  # what `filetype` looks at
FILE_NAME_MAX = 180
REVIEW_TEXT_MAX = 2000
UPLOADABLE = frozenset(
    {
        DocumentStatus.PENDING,
        DocumentStatus.UPLOADED,
        DocumentStatus.CHANGES_REQUESTED,
        DocumentStatus.REJECTED,
    }
)
# An allowed extension -> the extensions `filetype` may detect for such a file.
CONTENT_OF = {
    "pdf": {"pdf"},
    "jpg": {"jpg"},
    "jpeg": {"jpg"},
    "png": {"png"},
    "gif": {"gif"},
    "webp": {"webp"},
    "tif": {"tif"},
    "tiff": {"tif"},
    "heic": {"heic", "heif"},
    "docx": {"docx"},
    "xlsx": {"xlsx"},
    "odt": {"odt"},
}
REVIEW_EVENTS = {
    ReviewStatus.APPROVED: EventType.DOCUMENT_APPROVED,
    ReviewStatus.CHANGES_REQUESTED: EventType.DOCUMENT_CHANGES_REQUESTED,
    ReviewStatus.REJECTED: EventType.DOCUMENT_REJECTED,
}


@dataclass(frozen=True)
class UploadedFile:
    """What the API layer hands over: the client's name and a way to read the bytes."""

    file_name: str | None
    read: Callable[[int], Awaitable[bytes]]


# --- names ----------------------------------------------------------------------------


def sanitise_file_name(raw: str | None) -> str:
    """A display name only (files are stored under generated keys): the last path segment,
    without control/format characters (NUL, newlines, bidi overrides), whitespace collapsed,
    no leading dots, at most FILE_NAME_MAX characters with the extension kept."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").split("/")[-1]
    name = "".join(
        " " if ch.isspace() else ch
        for ch in name
        if ch.isspace() or not unicodedata.category(ch).startswith("C")
    )
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    if len(name) > FILE_NAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: FILE_NAME_MAX - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:FILE_NAME_MAX]
    return name


def extension_of(name: str) -> str:
    _, dot, ext = name.rpartition(".")
    return ext.lower() if dot else ""


# --- access ---------------------------------------------------------------------------


async def _visible_document(
    viewer: Viewer, document_id: uuid.UUID
) -> tuple[Document, Dossier, DossierMember | None]:
    """The document, its dossier and the viewer's membership of it (None for its client
    and agents); NotFound for anyone else (same as missing)."""
    document = await Document.filter(id=document_id).select_related("dossier").first()
    if document is None:
        raise NotFound("No such document.")
    dossier = document.dossier
    member = await membership(viewer, dossier)
    owner = viewer.profile is not None and dossier.user_id == viewer.profile.id
    if not (viewer.is_agent or owner or member is not None):
        raise NotFound("No such document.")
    return document, dossier, member


async def visible_version(viewer: Viewer, version_id: uuid.UUID) -> DocumentVersion:
    version = (
        await DocumentVersion.filter(id=version_id).select_related("document__dossier").first()
    )
    if version is None:
        raise NotFound("No such document version.")
    dossier = version.document.dossier
    if not await is_party(viewer, dossier):
        raise NotFound("No such document version.")
    return version


def _check_uploadable(document: Document, dossier: Dossier) -> None:
    if dossier.status not in ACTIVE:
        raise DomainError(
            Code.DOSSIER_NOT_ACTIVE,
            f"The dossier is {DossierStatus(dossier.status).value}: it takes no upload now.",
            "documentId",
        )
    if document.step_instance_id != dossier.current_step_instance_id:
        raise DomainError(
            Code.NOT_CURRENT_STEP,
            "This document belongs to a step that is not the dossier's current step.",
            "documentId",
        )
    if document.status not in UPLOADABLE:
        raise DomainError(
            Code.NOT_UPLOADABLE,
            f"This document is {DocumentStatus(document.status).value}: it takes no new file.",
            "documentId",
        )


# --- upload ---------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def _stream(
    upload: UploadedFile, head: bytes, limit: int, counter: list[int]
) -> AsyncIterator[bytes]:
    """The head already read, then the rest, counting bytes against the limit."""
    counter[0] = len(head)
    yield head
    while chunk := await upload.read(READ_CHUNK):
        counter[0] += len(chunk)
        if counter[0] > limit:
            raise _TooLarge()
        yield chunk


@dataclass(frozen=True)
class StoredFile:
    key: str  # the storage key (generated)
    file_name: str  # the sanitised display name
    size: int
    kind: Any  # what `filetype` detected (`.mime`, `.extension`)


async def store_upload(
    upload: UploadedFile, spec: DocumentSpec, *, storage: Storage, key_prefix: str
) -> StoredFile:
    """Checks 2 and 3 of an upload (the name's extension among `spec`'s, the bytes'
    magic agreeing with it, `spec`'s size cap while streaming, no empty file) and the file
    stored under `key_prefix/<random>.<ext>`: uploads and files the firm shares alike. The
    caller deletes the stored file if what follows fails."""
    allowed = spec.allowed_extensions

    file_name = sanitise_file_name(upload.file_name)
    extension = extension_of(file_name)
    if extension not in allowed:
        raise DomainError(
            Code.EXTENSION_NOT_ALLOWED,
            f"A {spec.label} must be a {', '.join('.' + e for e in allowed)} file"
            f"{f' (got .{extension})' if extension else ''}.",
            "file",
        )
    limit = spec.max_file_size_mb * 1024 * 1024

    head = b""
    while len(head) < SNIFF_BYTES and (chunk := await upload.read(SNIFF_BYTES - len(head))):
        head += chunk
    if not head:
        raise DomainError(Code.EMPTY_FILE, "The file is empty.", "file")
    if len(head) > limit:
        raise _too_large(spec)
    kind = filetype.guess(head)
    if kind is None or kind.extension not in CONTENT_OF.get(extension, set()):
        what = f"a .{kind.extension} file" if kind else "not a recognised document"
        raise DomainError(
            Code.CONTENT_MISMATCH,
            f"The file's content does not match .{extension}: it is {what}.",
            "file",
        )

    key = f"{key_prefix}/{uuid.uuid4().hex}.{sorted(CONTENT_OF[extension])[0]}"
    counter = [0]
    try:
        size = await storage.save(
            key, _stream(upload, head, limit, counter), content_type=kind.mime
        )
    except _TooLarge:
        raise _too_large(spec) from None
    except StorageError as exc:
        raise DomainError(
            Code.STORAGE_UNAVAILABLE, "The file could not be stored; try again.", "file"
        ) from exc

    return StoredFile(key=key, file_name=file_name, size=size, kind=kind)


async def upload_document(
    viewer: Viewer,
    document_id: uuid.UUID,
    upload: UploadedFile,
    *,
    storage: Storage,
    now: datetime | None = None,
    expires_on: date | None = None,
) -> tuple[Document, DocumentVersion]:
    document, dossier, member = await _visible_document(viewer, document_id)
    if member is not None and document.member_id != member.id:
        # a member sends their own documents; the client and agents any
        raise DomainError(Code.NOT_YOURS, "This document is for another person to send.")
    _check_uploadable(document, dossier)
    document_type = (
        await DocumentType.get(id=document.document_type_id)
        if document.document_type_id is not None
        else None
    )
    if expires_on is not None and document_type is not None:  # before any byte is stored
        document_expiry.check_expiry(document_type, expires_on)
    spec = spec_of(document, document_type)  # an ad-hoc request's own rules, or its type's
    stored = await store_upload(
        upload, spec, storage=storage, key_prefix=f"documents/{dossier.id}/{document.id}"
    )
    key, file_name, size, kind = stored.key, stored.file_name, stored.size, stored.kind

    try:
        async with in_transaction():
            dossier = await lock_dossier(dossier.id)
            document = await Document.filter(id=document.id).select_for_update().get()
            _check_uploadable(document, dossier)
            latest = (
                await DocumentVersion.filter(document_id=document.id)
                .order_by("-version_number")
                .first()
            )
            number = latest.version_number + 1 if latest else 1
            if document.status == DocumentStatus.UPLOADED:  # the one waiting is replaced
                await DocumentVersion.filter(
                    document_id=document.id, awaiting_review_since__isnull=False
                ).update(awaiting_review_since=None)
            at = now or datetime.now(UTC)
            version = await DocumentVersion.create(
                document_id=document.id,
                file_url=key,
                file_name=file_name,
                file_size_bytes=size,
                mime_type=kind.mime,
                uploaded_by_type=viewer.actor_type,
                uploaded_by_id=viewer.actor_id,
                version_number=number,
                uploaded_at=at,
                awaiting_review_since=at,
                expires_on=expires_on,
            )
            document.current_version_id = version.id
            document.status = DocumentStatus.UPLOADED
            document_expiry.schedule(document, None)  # no approved version for now
            await document.save(
                update_fields=[
                    "current_version_id",
                    "status",
                    *document_expiry.EXPIRY_FIELDS,
                    "updated_at",
                ]
            )
            await events.record(
                "document",
                document.id,
                EventType.DOCUMENT_UPLOADED,
                actor=viewer,
                payload={
                    "dossierId": str(dossier.id),
                    "documentId": str(document.id),
                    "versionId": str(version.id),
                    "versionNumber": number,
                    "documentTypeId": str(document_type.id) if document_type else None,
                },
            )
            await settle(dossier, actor=viewer, reason="Every document of the step is uploaded.")
    except BaseException:
        try:
            await storage.delete(key)
        except Exception:  # the row never committed: an orphan file harms no one
            logger.exception("could not delete %s after a failed upload", key)
        raise
    return document, version


def _too_large(spec: DocumentSpec) -> DomainError:
    return DomainError(
        Code.FILE_TOO_LARGE,
        f"A {spec.label} may be at most {spec.max_file_size_mb} MB.",
        "file",
    )


# --- review ---------------------------------------------------------------------------


async def review_document(
    viewer: Viewer,
    version_id: uuid.UUID,
    decision: ReviewStatus,
    reason: str | None = None,
    notes: str | None = None,
    *,
    now: datetime | None = None,
    expires_on: date | None = None,
) -> tuple[DocumentReview, Document, Dossier]:
    """An agent decides on the current version of a document awaiting review. Approving
    takes the version's expiry date (`expires_on`, else the one given at upload): required
    by some types, and never too soon (app.services.document_expiry)."""
    if viewer.agent is None:
        raise Forbidden("Only agents review documents.")
    needs_reason = decision != ReviewStatus.APPROVED
    if reason is None or not reason.strip():
        if needs_reason:
            raise DomainError(
                Code.REQUIRED, "Say why: a reason is required for this decision.", "reason"
            )
        reason = None
    else:
        reason = check_text(reason, "reason", max_length=REVIEW_TEXT_MAX)
    if notes is not None:
        notes = check_text(notes, "notes", max_length=REVIEW_TEXT_MAX, required=False) or None

    version = await DocumentVersion.filter(id=version_id).first()
    if version is None:
        raise NotFound("No such document version.")
    async with in_transaction():
        document = await Document.filter(id=version.document_id).first()
        if document is None:
            raise NotFound("No such document version.")
        dossier = await lock_dossier(document.dossier_id)
        document = await Document.filter(id=document.id).select_for_update().get()
        if document.current_version_id != version.id:
            raise DomainError(
                Code.VERSION_NOT_CURRENT,
                "A newer version of this document has been uploaded: review that one.",
                "versionId",
            )
        if document.status != DocumentStatus.UPLOADED:
            raise DomainError(
                Code.NOT_AWAITING_REVIEW,
                f"This version was already reviewed ({DocumentStatus(document.status).value}).",
                "versionId",
            )
        if dossier.status not in ACTIVE:
            raise DomainError(
                Code.DOSSIER_NOT_ACTIVE,
                f"The dossier is {DossierStatus(dossier.status).value}: no review now.",
                "versionId",
            )
        if document.step_instance_id != dossier.current_step_instance_id:
            raise DomainError(
                Code.NOT_CURRENT_STEP,
                "This document belongs to a step that is not the dossier's current step.",
                "versionId",
            )
        approved_expiry: date | None = None
        if decision == ReviewStatus.APPROVED:
            version = await DocumentVersion.get(id=version.id)  # its date, read under the lock
            if document.document_type_id is not None:
                document_type = await DocumentType.get(id=document.document_type_id)
                approved_expiry = document_expiry.check_approvable(
                    document_type, expires_on or version.expires_on
                )
            else:  # a document requested ad hoc: its date, if given, unchecked by a type
                approved_expiry = expires_on or version.expires_on
            if expires_on is not None and expires_on != version.expires_on:
                await DocumentVersion.filter(id=version.id).update(expires_on=expires_on)
        stamp: dict[str, Any] = {"reviewed_at": now} if now else {}
        review = await DocumentReview.create(
            document_version_id=version.id,
            reviewer_id=viewer.agent.id,
            status=decision,
            reason=reason,
            notes=notes,
            **stamp,
        )
        document.status = DocumentStatus(decision.value)
        document_expiry.schedule(document, approved_expiry)
        await document.save(update_fields=["status", *document_expiry.EXPIRY_FIELDS, "updated_at"])
        await DocumentVersion.filter(id=version.id).update(awaiting_review_since=None)
        await events.record(
            "document",
            document.id,
            REVIEW_EVENTS[decision],
            actor=viewer,
            payload={
                "dossierId": str(dossier.id),
                "documentId": str(document.id),
                "versionId": str(version.id),
                "reviewId": str(review.id),
                "decision": decision.value,
                "reason": reason,
            },
        )
        label = {
            ReviewStatus.APPROVED: "approved",
            ReviewStatus.CHANGES_REQUESTED: "changes requested",
            ReviewStatus.REJECTED: "rejected",
        }[decision]
        await settle(
            dossier, actor=viewer, reason=f"Document {label}" + (f": {reason}" if reason else ".")
        )
    return review, document, dossier


# --- the review queue -----------------------------------------------------------------


def review_queue(viewer: Viewer, *, mine: bool = False) -> QuerySet[DocumentVersion]:
    """Versions awaiting review: the current version of each UPLOADED document of a
    running dossier's current step. Order them oldest first (`uploaded_at`, `id`).

    Exactly the versions whose `awaiting_review_since` is set (kept so by this service
    and the workflow, see app.services.waiting), through the partial index
    `idx_document_versions_awaiting` in that order: a page walks the waiting versions from
    its cursor and stops at its LIMIT, and the count is an index-only count, instead of
    joining every uploaded document to its step and dossier and sorting the lot."""
    if viewer.agent is None:
        raise Forbidden("Only agents have a review queue.")
    queryset = DocumentVersion.filter(awaiting_review_since__isnull=False)
    if mine:
        # From my open steps (index `idx_step_instances_assigned_open`) to their documents
        # to their waiting versions: what I have, not the whole queue filtered down to me.
        my_documents = Document.filter(
            step_instance__assigned_to_id=viewer.agent.id,
            step_instance__completed_at__isnull=True,
        ).values("id")
        queryset = queryset.filter(document_id__in=Subquery(my_documents))
    return queryset
