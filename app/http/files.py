"""`GET /files/{version_id}?expires=…&signature=…`: signed, short-lived document downloads
(and of the files the firm shares with a dossier: `sharedFile.downloadUrl`).

The link comes from `documentDownloadUrl` (owner or agents only); the signature covers
the version id, the account the link was issued to (`for=`) and the expiry, so it can
neither be stretched, pointed elsewhere nor credited to someone else. The file is streamed
from storage with the type detected at upload, `nosniff`, and as an attachment, so a
browser never renders it in our origin.

Every download served is an access event (app/services/access_audit.py): the account the
link was issued to, the file, the request's address and user agent, buffered and written
after the answer. A version whose file the retention rule (or an erasure) deleted answers
410 Gone.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from app.models import DocumentVersion, SharedFile
from app.models.enums import AccessKind
from app.providers.storage import FileMissing, Storage, StorageError
from app.services import access_audit
from app.services.downloads import IssuedTo, LinkRefused, verify_download
from app.services.sessions import Origin

logger = logging.getLogger("app.http.files")

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "private, no-store",
    "content-security-policy": "default-src 'none'; sandbox",
    "referrer-policy": "no-referrer",
}


def content_disposition(file_name: str) -> str:
    """RFC 6266: an ASCII fallback plus the UTF-8 name in `filename*`."""
    fallback = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\;' else "_" for ch in file_name
    )
    encoded = quote(file_name, safe="")
    return f"attachment; filename=\"{fallback or 'document'}\"; filename*=UTF-8''{encoded}"


async def open_stored(storage: Storage, key: str, what: str) -> AsyncIterator[bytes] | Response:
    """The stored file's bytes, streamed, once its first chunk is read; or the answer when
    it cannot be (404 missing, 503 storage down, logged as `what`, never the file's name)."""
    stream = storage.open(key)
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = b""
    except FileMissing:
        logger.error("%s: file %s is missing", what, key)
        return PlainTextResponse("Not found.", 404, headers=SECURITY_HEADERS)
    except StorageError:
        logger.exception("%s: storage failed", what)
        return PlainTextResponse("Storage unavailable.", 503, headers=SECURITY_HEADERS)

    async def body() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    return body()


def _audit(request: Request, found: DocumentVersion | SharedFile, issued_to: IssuedTo) -> None:
    client = request.client
    where = Origin(client.host if client else None, request.headers.get("user-agent"))
    if isinstance(found, DocumentVersion):
        dossier = found.document.dossier
        kind, document_id = AccessKind.DOCUMENT_DOWNLOADED, found.document_id
    else:
        dossier, kind, document_id = found.dossier, AccessKind.SHARED_FILE_DOWNLOADED, None
    access_audit.record(
        kind,
        actor_type=issued_to.actor_type,
        actor_id=issued_to.actor_id,
        where=where,
        client_id=dossier.user_id,
        dossier_id=dossier.id,
        document_id=document_id,
        version_id=found.id,
    )


@dataclass(frozen=True)
class _Served:
    id: object
    file_url: str
    file_name: str
    mime_type: str
    file_size_bytes: int

    @classmethod
    def of(cls, row: DocumentVersion | SharedFile) -> _Served:
        key = row.storage_key if isinstance(row, SharedFile) else row.file_url
        return cls(row.id, key, row.file_name, row.mime_type, row.file_size_bytes)


async def download_file(request: Request) -> Response:
    try:
        version_id, issued_to = verify_download(
            request.path_params["version_id"],
            request.query_params.get("for"),
            request.query_params.get("expires"),
            request.query_params.get("signature"),
        )
    except LinkRefused as refused:
        return PlainTextResponse(refused.message, 403, headers=SECURITY_HEADERS)
    # A document version, or a file the firm shared (the signature covers the id); each
    # read with its dossier, whose client the access event names.
    found: DocumentVersion | SharedFile | None = (
        await DocumentVersion.filter(id=version_id).select_related("document__dossier").first()
    )
    if found is None:
        found = await SharedFile.filter(id=version_id).select_related("dossier").first()
    if found is None:
        return PlainTextResponse("Not found.", 404, headers=SECURITY_HEADERS)
    if isinstance(found, DocumentVersion) and found.purged_at is not None:
        return PlainTextResponse(
            "This file was deleted: the firm keeps uploaded files for a limited time after "
            "a dossier ends.",
            410,
            headers=SECURITY_HEADERS,
        )
    version = _Served.of(found)
    storage: Storage = request.app.state.storage
    body = await open_stored(storage, version.file_url, f"document version {version.id}")
    if isinstance(body, Response):
        return body
    _audit(request, found, issued_to)  # served: buffered, written after the answer
    return StreamingResponse(
        body,
        media_type=version.mime_type,
        headers={
            **SECURITY_HEADERS,
            "content-disposition": content_disposition(version.file_name),
            "content-length": str(version.file_size_bytes),
        },
    )
