"""Documents that expire (issue 18, item 5): expiry dates, reminders, renewal offers.

A document type may require an expiry date (`requires_expiry`), at least
`min_validity_days` ahead. The date is given at upload (`uploadDocument.expiresOn`), when
the agent approves (`reviewDocument.expiresOn`) or later (`setDocumentExpiry`); a date too
soon is refused (EXPIRES_TOO_SOON) and approving without one when the type requires it is
refused (EXPIRY_REQUIRED), before anything changes.

While a document's current version is APPROVED with a date, the document carries it
(`documents.expires_on`, what `expiringDocuments` lists through its partial index) and
its reminder schedule: `expiry_reminder_on`, the day the next margin of
DOCUMENT_EXPIRY_MARGINS_DAYS falls, and `expiry_reminded_margin`, the smallest margin
already reminded. A new upload, or a decision other than approval, clears all three.

The worker's pass (`send_expiry_reminders`) claims documents whose `expiry_reminder_on`
has come, in batches through `idx_documents_expiry_reminder_due`, with FOR UPDATE SKIP
LOCKED: a second worker takes other rows, and a row another worker moved on is no longer
due once re-read. Each claimed document gets ONE DOCUMENT_EXPIRING event for the smallest
margin due (margins passed together make one reminder), its schedule moved to the next
margin in the same transaction, so a margin is reminded once. The first reminder of a
version also offers the product's renewal product (`products.renewal_product_id`): a
payment link for the client, made by the system (`create_payment_link` with no admin),
and a DOSSIER_RENEWAL_OFFERED event.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import clock
from app.domain.schedule import expiry_margins
from app.domain.viewer import Viewer
from app.errors import DomainError, Forbidden, NotFound
from app.models import (
    Credential,
    Document,
    DocumentType,
    DocumentVersion,
    Dossier,
    Product,
    Profile,
)
from app.models.enums import DocumentStatus, DossierStatus, EventType
from app.services import events, outbox
from app.services.codes import DocumentErrorCode as Code
from app.services.payments.links import create_payment_link
from app.settings import Settings, get_settings

logger = logging.getLogger("app.document_expiry")
MAX_WITHIN_DAYS = 3660


def today() -> date:
    return clock.now().date()


def check_expiry(
    document_type: DocumentType, expires_on: date, *, field: str = "expiresOn"
) -> date:
    """The date, or EXPIRES_TOO_SOON: already passed (or today), or within the type's
    minimum validity from today."""
    now = today()
    least = now + timedelta(days=max(document_type.min_validity_days or 0, 1))
    if expires_on < least:
        if expires_on <= now:
            message = f"This document expired on {expires_on.isoformat()}."
        else:
            message = (
                f"A {document_type.label} must be valid for at least "
                f"{document_type.min_validity_days} days (until {least.isoformat()} or later)."
            )
        raise DomainError(Code.EXPIRES_TOO_SOON, message, field)
    return expires_on


def check_approvable(document_type: DocumentType, expires_on: date | None) -> date | None:
    if expires_on is None:
        if document_type.requires_expiry:
            raise DomainError(
                Code.EXPIRY_REQUIRED,
                f"A {document_type.label} is approved with its expiry date: give expiresOn.",
                "expiresOn",
            )
        return None
    return check_expiry(document_type, expires_on)


def _first_due(expires_on: date, pending: list[int]) -> date | None:
    return expires_on - timedelta(days=max(pending)) if pending else None


def schedule(document: Document, expires_on: date | None, settings: Settings | None = None) -> None:
    """Set (or clear, with None) the document's expiry and its reminder schedule; the
    caller saves `EXPIRY_FIELDS`."""
    margins = expiry_margins((settings or get_settings()).document_expiry_margins_days)
    document.expires_on = expires_on
    document.expiry_reminded_margin = None
    document.expiry_reminder_on = _first_due(expires_on, margins) if expires_on else None


EXPIRY_FIELDS = ["expires_on", "expiry_reminder_on", "expiry_reminded_margin"]


# --- agents set the date ---------------------------------------------------------------


async def set_document_expiry(
    viewer: Viewer, version_id: uuid.UUID, expires_on: date
) -> tuple[DocumentVersion, Document]:
    """An agent sets (or corrects) a version's expiry; for the current approved version
    the reminders start again from the new date."""
    if viewer.agent is None:
        raise Forbidden("Only agents set a document's expiry.")
    version = await DocumentVersion.filter(id=version_id).first()
    if version is None:
        raise NotFound("No such document version.")
    async with in_transaction():
        document = await Document.filter(id=version.document_id).select_for_update().get()
        if document.document_type_id is not None:
            check_expiry(await DocumentType.get(id=document.document_type_id), expires_on)
        elif expires_on <= today():  # a document requested ad hoc: no type's rules
            raise DomainError(
                Code.EXPIRES_TOO_SOON, f"This document expired on {expires_on.isoformat()}."
            )
        version.expires_on = expires_on
        await version.save(update_fields=["expires_on"])
        if document.current_version_id == version.id and document.status == (
            DocumentStatus.APPROVED
        ):
            schedule(document, expires_on)
            await document.save(update_fields=[*EXPIRY_FIELDS, "updated_at"])
    return version, document


# --- agents list what expires ----------------------------------------------------------


def expiring_documents(viewer: Viewer, within_days: int) -> QuerySet[Document]:
    """Documents whose approved version expires within `within_days` (or has expired),
    through `idx_documents_expires_on`; the caller orders them (`expires_on`, `id`)."""
    if viewer.agent is None:
        raise Forbidden("Only agents list expiring documents.")
    if not 0 <= within_days <= MAX_WITHIN_DAYS:
        raise DomainError(Code.REQUIRED, f"`within` is 0 to {MAX_WITHIN_DAYS} days.", "within")
    return Document.filter(
        expires_on__isnull=False, expires_on__lte=today() + timedelta(days=within_days)
    )


# --- the worker's pass -----------------------------------------------------------------


@dataclass
class ExpiryReport:
    claimed: int = 0
    reminded: int = 0
    renewals: int = 0


async def send_expiry_reminders(
    *, now: datetime | None = None, limit: int | None = None, settings: Settings | None = None
) -> ExpiryReport:
    """One pass: remind the documents whose next margin has come, once per margin."""
    settings = settings or get_settings()
    margins = expiry_margins(settings.document_expiry_margins_days)
    day = (now or clock.now()).date()
    limit = limit or settings.chasing_batch_size
    report = ExpiryReport()
    async with outbox.collecting(), in_transaction():
        due = list(
            await Document.filter(expiry_reminder_on__isnull=False, expiry_reminder_on__lte=day)
            .order_by("expiry_reminder_on", "id")
            .limit(limit)
            .select_for_update(skip_locked=True)
        )
        if not due:
            return report
        report.claimed = len(due)
        dossiers = {d.id: d for d in await Dossier.filter(id__in={d.dossier_id for d in due})}
        products = {
            p.id: p for p in await Product.filter(id__in={d.product_id for d in dossiers.values()})
        }
        for document in due:
            dossier = dossiers[document.dossier_id]
            expires_on = document.expires_on
            if (
                expires_on is None
                or document.status != DocumentStatus.APPROVED
                or dossier.status == DossierStatus.CANCELLED
            ):
                schedule(document, None, settings)
                await document.save(update_fields=EXPIRY_FIELDS)
                continue
            reminded = document.expiry_reminded_margin
            pending = [m for m in margins if reminded is None or m < reminded]
            reached = [m for m in pending if expires_on - timedelta(days=m) <= day]
            if not reached:  # the margins changed: wait for the next one
                document.expiry_reminder_on = _first_due(expires_on, pending)
                await document.save(update_fields=EXPIRY_FIELDS)
                continue
            margin = min(reached)
            document.expiry_reminded_margin = margin
            document.expiry_reminder_on = _first_due(expires_on, [m for m in pending if m < margin])
            await document.save(update_fields=EXPIRY_FIELDS)
            await events.record(
                "document",
                document.id,
                EventType.DOCUMENT_EXPIRING,
                payload={
                    "dossierId": str(dossier.id),
                    "documentId": str(document.id),
                    "versionId": str(document.current_version_id),
                    "documentTypeId": str(document.document_type_id)
                    if document.document_type_id
                    else None,
                    "stepInstanceId": str(document.step_instance_id)
                    if document.step_instance_id
                    else None,
                    "expiresOn": expires_on.isoformat(),
                    "marginDays": margin,
                    "daysLeft": (expires_on - day).days,
                },
            )
            report.reminded += 1
            product = products.get(dossier.product_id)
            if reminded is None and product is not None and product.renewal_product_id:
                report.renewals += await _offer_renewal(document, dossier, product)
    if report.claimed:
        logger.info(
            "document expiry: %d reminded, %d renewal(s) offered, %d claimed",
            report.reminded,
            report.renewals,
            report.claimed,
        )
    return report


async def _offer_renewal(document: Document, dossier: Dossier, product: Product) -> int:
    """A payment link for the renewal product, made by the system; 0 when it cannot be
    (the renewal product is not on sale): the reminder still goes out."""
    profile = await Profile.filter(id=dossier.user_id).first()
    credential = await Credential.filter(profile_id=dossier.user_id).first()
    if profile is None or credential is None or product.renewal_product_id is None:
        return 0
    try:
        link, existing = await create_payment_link(
            None,
            product_id=product.renewal_product_id,
            prospect_email=credential.email,
            prospect_name=profile.full_name,
        )
    except (DomainError, NotFound) as error:
        logger.warning(
            "renewal of dossier %s not offered: %s", dossier.id, getattr(error, "message", error)
        )
        return 0
    await events.record(
        "dossier",
        dossier.id,
        EventType.DOSSIER_RENEWAL_OFFERED,
        payload={
            "dossierId": str(dossier.id),
            "documentId": str(document.id),
            "productId": str(product.id),
            "renewalProductId": str(product.renewal_product_id),
            "paymentLinkId": str(link.id),
            "existingClient": existing,
        },
    )
    return 1
