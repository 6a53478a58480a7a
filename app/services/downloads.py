"""Signed, short-lived links to download a stored file: a document version, or a file the
firm shared with a dossier (app.http.files serves them).

A link is `/files/<id>?for=<actor>&expires=…&signature=…`, valid at most five minutes
(DOWNLOAD_URL_TTL_SECONDS); the signature (app.services.signed_links, its own purpose)
covers the id, the account the link was issued to (the access audit's "who") and the
expiry, so it can neither be stretched, pointed elsewhere nor credited to someone else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.domain.viewer import Viewer
from app.models.enums import ActorType
from app.services import signed_links
from app.services.documents import visible_version
from app.services.signed_links import LinkRefused
from app.settings import get_settings

MAX_DOWNLOAD_TTL = timedelta(minutes=5)
DOWNLOAD_PURPOSE = "document-download-v1"


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedTo:
    """The account a download link was issued to (the access audit's "who"): in the link
    (`for=AGENT:<id>`) and bound by its signature, so it cannot be changed."""

    actor_type: ActorType
    actor_id: uuid.UUID

    @classmethod
    def of(cls, viewer: Viewer) -> IssuedTo:
        return cls(viewer.actor_type, viewer.actor_id)

    def param(self) -> str:
        return f"{self.actor_type.value}:{self.actor_id}"

    @classmethod
    def parse(cls, raw: str | None) -> IssuedTo:
        kind, _, actor = (raw or "").partition(":")
        try:
            return cls(ActorType(kind), uuid.UUID(actor))
        except ValueError:
            raise LinkRefused("Invalid link.") from None


def _subject(version_id: uuid.UUID, issued_to: IssuedTo) -> str:
    return f"{version_id}.{issued_to.param()}"


def signed_download_path(
    version_id: uuid.UUID,
    *,
    issued_to: IssuedTo,
    now: datetime | None = None,
    ttl: timedelta | None = None,
) -> tuple[str, datetime]:
    """`/files/<version>?for=<actor>&expires=…&signature=…`, valid for at most five
    minutes; the signature covers the version, the account it is issued to and the expiry."""
    now = now or datetime.now(UTC)
    ttl = min(ttl or timedelta(seconds=get_settings().download_url_ttl_seconds), MAX_DOWNLOAD_TTL)
    return signed_links.sign(
        DOWNLOAD_PURPOSE,
        f"/files/{version_id}?for={issued_to.param()}",
        _subject(version_id, issued_to),
        ttl=ttl,
        now=now,
    )


async def download_url(
    viewer: Viewer, version_id: uuid.UUID, *, now: datetime | None = None
) -> SignedUrl:
    """A short-lived link, only for the dossier's owner and agents."""
    await visible_version(viewer, version_id)
    path, expires_at = signed_download_path(version_id, issued_to=IssuedTo.of(viewer), now=now)
    return SignedUrl(get_settings().public_api_url.rstrip("/") + path, expires_at)


def verify_download(
    version_id: str,
    issued_to: str | None,
    expires: str | None,
    signature: str | None,
    *,
    now: datetime | None = None,
) -> tuple[uuid.UUID, IssuedTo]:
    """The version id of a valid, unexpired link and whom it was issued to, or LinkRefused."""
    try:
        parsed = uuid.UUID(version_id)
    except ValueError:
        raise LinkRefused("Invalid link.") from None
    who = IssuedTo.parse(issued_to)
    signed_links.verify(DOWNLOAD_PURPOSE, _subject(parsed, who), expires, signature, now=now)
    return parsed, who
