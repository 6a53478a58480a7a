"""`GET /exports/csv/{kind}?from=…&to=…&by=…&expires=…&signature=…`: an admin's CSV export
(`createCsvExport`), streamed from the database in keyset batches (app.services.csv_exports).

A forged, altered or expired link, or one whose admin has been disabled since, answers 403
and no data. The CSV comes as an attachment with the same security headers as the file
downloads, so a browser never renders it in our origin.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from app.http.files import SECURITY_HEADERS, content_disposition
from app.services.csv_exports import LinkRefused, export_csv, open_export


async def download_csv_export(request: Request) -> Response:
    query = request.query_params
    try:
        export = await open_export(
            request.path_params["kind"],
            query.get("from"),
            query.get("to"),
            query.get("by"),
            query.get("expires"),
            query.get("signature"),
        )
    except LinkRefused as refused:
        return PlainTextResponse(refused.message, 403, headers=SECURITY_HEADERS)
    return StreamingResponse(
        export_csv(export),
        media_type="text/csv; charset=utf-8",
        headers={**SECURITY_HEADERS, "content-disposition": content_disposition(export.file_name)},
    )
