"""`GET /exports/{export_id}?expires=…&signature=…`: a data-export archive (right of access),
through the signed link its e-mail carries (app.services.privacy.links), streamed from the
storage as an attachment while the export is READY and unexpired."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from app import clock
from app.http.files import SECURITY_HEADERS, content_disposition, open_stored
from app.models import DataExport
from app.models.enums import DataExportStatus
from app.providers.storage import Storage
from app.services.privacy.links import verify_export
from app.services.signed_links import LinkRefused

logger = logging.getLogger("app.http.exports")


async def download_export(request: Request) -> Response:
    try:
        export_id = verify_export(
            request.path_params["export_id"],
            request.query_params.get("expires"),
            request.query_params.get("signature"),
        )
    except LinkRefused as refused:
        return PlainTextResponse(refused.message, 403, headers=SECURITY_HEADERS)
    export = await DataExport.filter(id=export_id).first()
    if export is None or export.status != DataExportStatus.READY or not export.storage_key:
        return PlainTextResponse(
            "This archive is no longer available.", 410, headers=SECURITY_HEADERS
        )
    if export.expires_at is None or export.expires_at <= clock.now():
        return PlainTextResponse(
            "This link has expired: ask for a new one.", 403, headers=SECURITY_HEADERS
        )
    storage: Storage = request.app.state.storage
    body = await open_stored(storage, export.storage_key, f"data export {export.id}")
    if isinstance(body, Response):
        return body
    headers = {
        **SECURITY_HEADERS,
        "content-disposition": content_disposition(
            f"personal-data-{export.created_at:%Y-%m-%d}.zip"
        ),
    }
    if export.size_bytes is not None:
        headers["content-length"] = str(export.size_bytes)
    return StreamingResponse(body, media_type="application/zip", headers=headers)
