"""The signed, expiring link of a data-export archive: `/exports/<id>?expires=…&signature=…`.

Signed under a purpose of its own (a download link never opens an archive, nor the other
way round), expiring with the archive itself (`data_exports.expires_at`, whole seconds). The
delivery worker derives it when it writes the e-mail: no row, event or log holds it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from app.services import signed_links
from app.services.signed_links import LinkRefused
from app.settings import get_settings

EXPORT_PURPOSE = "data-export-v1"


def export_path(export_id: uuid.UUID | str, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    signature = signed_links.signature(EXPORT_PURPOSE, str(export_id), expires)
    return f"/exports/{export_id}?expires={expires}&signature={signature}"


def export_url(export_id: uuid.UUID | str, expires_at: datetime) -> str:
    return get_settings().public_api_url.rstrip("/") + export_path(export_id, expires_at)


def verify_export(
    export_id: str, expires: str | None, signature: str | None, *, now: datetime | None = None
) -> uuid.UUID:
    """The export id of a valid, unexpired link, or LinkRefused."""
    try:
        parsed = uuid.UUID(export_id)
    except ValueError:
        raise LinkRefused("Invalid link.") from None
    signed_links.verify(EXPORT_PURPOSE, str(parsed), expires, signature, now=now)
    return parsed
