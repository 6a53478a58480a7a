"""The archive of a data export, streamed: a zip written as it is read, one JSON file per
table and every uploaded file under files/, so neither the archive nor a large file is ever
held in memory whole (`chunks`)."""

from __future__ import annotations

import zipfile
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

import orjson
from tortoise.queryset import QuerySet

from app import clock
from app.models import (
    AccountSession,
    DocumentReview,
    DocumentVersion,
    Dossier,
    DossierMember,
    DossierStatusHistory,
    Event,
    Message,
    Notification,
    NotificationDelivery,
    Order,
    PaymentLink,
    PaymentReminder,
    Refund,
    SharedFile,
    StepInstance,
)
from app.models import Document as DocumentRow
from app.providers.storage import Storage
from app.services.privacy.scope import ENTITY_TYPES, Scope

PAGE = 500
FLUSH_BYTES = 256 * 1024

# Never in an archive: secrets and their hashes, and the firm's own notes.
SECRET_COLUMNS = {
    "credentials": {"password_hash", "totp_secret", "totp_last_step", "recovery_code_hashes"},
    "sessions": {"refresh_token_hash"},
    "payment_links": {"token"},
    "document_versions": {"file_url"},  # a storage key: the file itself is under files/
    "document_reviews": {"notes"},  # internal notes of the reviewer (agents only)
    "shared_files": {"storage_key"},
}

README = """Partners VRAI: your personal data
=================================

This archive holds every record we keep about you, as of {at} (UTC), under the right
of access (GDPR, article 15).

- profile.json, credential.json: your profile and your account (never your password,
  its hash, your two-factor secret or recovery codes);
- sessions.json: your logins (when, from where);
- dossiers.json, dossier_status_history.json, step_instances.json, dossier_members.json:
  your dossiers, their history and steps, and the dossiers you are a member of;
- documents.json, document_versions.json, document_reviews.json: the documents asked of
  you, the files you sent (in files/) and the firm's decisions about them;
- messages.json: the messages of your dossiers;
- notifications.json, notification_deliveries.json: what we told you, and how;
- orders.json, refunds.json, payment_links.json, payment_reminders.json: your orders,
  refunds, the payment links you were sent, and the reminders;
- shared_files.json: the files the firm shared with your dossiers;
- events.json: the log of what happened about you.

Dates are ISO 8601 in UTC; amounts are in minor units (cents) of their currency.
Questions: reply to the e-mail that brought you this link.
"""


class _Sink:
    """The file object the zip writes to: what it wrote, until taken."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


async def _rows(table: str, queryset: QuerySet | None) -> AsyncIterator[bytes]:
    """A JSON array of the queryset's rows, a page at a time (secret columns left out)."""
    hidden = SECRET_COLUMNS.get(table, set())
    yield b"["
    first = True
    offset = 0
    while queryset is not None:
        page = await queryset.order_by("id").offset(offset).limit(PAGE).values()
        for row in page:
            clean = {k: v for k, v in row.items() if k not in hidden}
            yield (b"\n" if first else b",\n") + _json(clean)
            first = False
        if len(page) < PAGE:
            break
        offset += PAGE
    yield b"\n]\n"


async def _one(value: bytes) -> AsyncIterator[bytes]:
    yield value


def file_path(version: DocumentVersion) -> str:
    """Where a version's file is in the archive: files/<document>/v<n>-<name>."""
    name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in version.file_name)
    return f"files/{version.document_id}/v{version.version_number}-{name or 'file'}"


def _tables(scope: Scope) -> Iterable[tuple[str, QuerySet | None]]:
    profile_id = scope.profile.id
    dossiers = scope.dossier_ids
    versions = [v.id for v in scope.versions]
    yield "profiles", None  # written apart (one object, not an array)
    yield (
        "sessions",
        (AccountSession.filter(credential_id=scope.credential.id) if scope.credential else None),
    )
    yield "dossiers", Dossier.filter(id__in=dossiers) if dossiers else None
    yield (
        "dossier_status_history",
        DossierStatusHistory.filter(dossier_id__in=dossiers) if dossiers else None,
    )
    yield "step_instances", StepInstance.filter(dossier_id__in=dossiers) if dossiers else None
    yield "dossier_members", DossierMember.filter(profile_id=profile_id)
    yield (
        "documents",
        DocumentRow.filter(id__in=scope.document_ids) if scope.document_ids else None,
    )
    yield "document_versions", DocumentVersion.filter(id__in=versions) if versions else None
    yield (
        "document_reviews",
        DocumentReview.filter(document_version_id__in=versions) if versions else None,
    )
    yield "messages", Message.filter(dossier_id__in=dossiers) if dossiers else None
    yield "notifications", Notification.filter(user_id=profile_id)
    yield (
        "notification_deliveries",
        NotificationDelivery.filter(notification__user_id=profile_id),
    )
    yield "orders", Order.filter(user_id=profile_id)
    yield "refunds", Refund.filter(order_id__in=scope.order_ids) if scope.order_ids else None
    yield (
        "payment_links",
        PaymentLink.filter(id__in=scope.payment_link_ids) if scope.payment_link_ids else None,
    )
    yield "payment_reminders", PaymentReminder.filter(user_id=profile_id)
    own = scope.own_dossier_ids
    yield "shared_files", SharedFile.filter(dossier_id__in=own) if own else None
    yield (
        "events",
        Event.filter(entity_type__in=ENTITY_TYPES, entity_id__in=scope.entity_ids()),
    )


async def _entries(scope: Scope, storage: Storage) -> AsyncIterator[tuple[str, AsyncIterator]]:
    at = clock.now()
    yield "README.txt", _one(README.format(at=at.strftime("%Y-%m-%d %H:%M")).encode())
    profile = (await type(scope.profile).filter(id=scope.profile.id).values())[0]
    yield "profile.json", _one(_json(profile) + b"\n")
    if scope.credential is not None:
        credential = (await type(scope.credential).filter(id=scope.credential.id).values())[0]
        hidden = SECRET_COLUMNS["credentials"]
        clean = {k: v for k, v in credential.items() if k not in hidden}
        clean["two_factor_enabled"] = credential["two_factor_enabled_at"] is not None
        yield "credential.json", _one(_json(clean) + b"\n")
    for table, queryset in _tables(scope):
        if table == "profiles":
            continue
        yield f"{table}.json", _rows(table, queryset)
    for version in scope.versions:
        yield file_path(version), storage.open(version.file_url)


def _info(name: str, at: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=at.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


async def chunks(scope: Scope, storage: Storage) -> AsyncIterator[bytes]:
    """The archive's bytes as they are written (a few hundred KiB at a time)."""
    sink = _Sink()
    at = clock.now()
    archive = zipfile.ZipFile(sink, "w")  # type: ignore[call-overload]
    async for name, content in _entries(scope, storage):
        with archive.open(_info(name, at), "w", force_zip64=True) as handle:
            async for piece in content:
                handle.write(piece)
                if len(sink.buffer) >= FLUSH_BYTES:
                    yield sink.take()
        if sink.buffer:
            yield sink.take()
    archive.close()  # the central directory
    yield sink.take()
