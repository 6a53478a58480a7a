"""The catalogue: products, steps, the steps of a product, document types and the steps
that ask for them. Admin writes.

Nothing in the catalogue is deleted: a product, step or document type is archived
(`archived_at`) and can be unarchived. Archived, it is left out of the catalogue's lists
and cannot be newly used (no new payment link or checkout: `product_on_sale`; no place in a
workflow; no new link between a step and a document type), and new dossiers neither run
an archived step nor get a document of an archived type. Dossiers already open are
unaffected: their step instances and documents are theirs, and a document type archived
after a dossier opened is still asked for when that dossier's later steps start
(`asked_for`).

Which document types a step asks for is `step_document_types` (`attach_document_type`,
`detach_document_type`): one type may serve the steps of several products.
`document_types.required_step_id` stays for compatibility and names the first step the
type was attached to (still attached); `requiredStepId` in create/updateDocumentType sets
that link (attaching the step, detaching the one it replaces).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import DocumentType, Product, ProductStep, Step, StepDocumentType
from app.models.enums import DossierKind, DossierStatus, EventType
from app.services import events
from app.services.catalogue_bounds import forget_catalogue_bounds
from app.services.catalogue_links import check_position, move_required_step, step_to_attach
from app.services.codes import CatalogErrorCode as Code
from app.services.validation import check_code, check_name, check_text

CURRENCY_RE = re.compile(r"^[a-z]{3}$")
# Extensions whose content we can recognise by its magic bytes (see the documents service).
SUPPORTED_EXTENSIONS = frozenset(
    {"pdf", "jpg", "jpeg", "png", "gif", "webp", "tif", "tiff", "heic", "docx", "xlsx", "odt"}
)
MAX_FILE_SIZE_MB = 100
INITIAL_STATUSES = frozenset({DossierStatus.CREATED, DossierStatus.IN_PROGRESS})


def product_on_sale(product: Product) -> bool:
    """Whether `product` may be sold now (a new payment link, a checkout): active and not
    archived. Orders already paid, and their dossiers, do not ask."""
    return product.active and product.archived_at is None


def asked_for(archived_at: datetime | None, opened_at: datetime | None) -> bool:
    """Whether a step's document type, archived at `archived_at` (None: not archived), is
    asked for in a dossier opened at `opened_at` (None: opening now). Archiving a type
    changes nothing for the dossiers already open."""
    return archived_at is None or (opened_at is not None and archived_at > opened_at)


def _check_price(amount: int) -> int:
    if amount <= 0 or amount > 100_000_000:
        raise DomainError(
            "INVALID_AMOUNT", "The price must be a positive amount in cents.", "priceAmount"
        )
    return amount


def check_link_range(
    low: int | None, high: int | None, *, field: str = "linkAmountMin"
) -> tuple[int | None, int | None]:
    """The amounts a payment link may charge for a product: none (a fixed price), or
    within 1 .. 100,000,000 cents, low <= high."""
    for value, name in ((low, "linkAmountMin"), (high, "linkAmountMax")):
        if value is not None and not 1 <= value <= 100_000_000:
            raise DomainError(
                "INVALID_AMOUNT", "A link amount is a positive amount in cents.", name
            )
    if low is not None and high is not None and low > high:
        raise DomainError("INVALID_AMOUNT", "The lowest link amount is above the highest.", field)
    return low, high


def _check_currency(currency: str) -> str:
    currency = currency.strip().lower()
    if not CURRENCY_RE.match(currency):
        raise DomainError(
            "INVALID_CURRENCY", "Use a three-letter ISO 4217 currency code.", "currency"
        )
    return currency


def _check_initial_status(status: DossierStatus) -> DossierStatus:
    if status not in INITIAL_STATUSES:
        raise DomainError(
            "INVALID_STATUS", "A dossier can only start CREATED or IN_PROGRESS.", "initialStatus"
        )
    return status


def check_extensions(values: Sequence[str]) -> list[str]:
    cleaned = sorted({v.strip().lower().lstrip(".") for v in values})
    if not cleaned:
        raise DomainError("REQUIRED", "List at least one allowed extension.", "allowedExtensions")
    unknown = [v for v in cleaned if v not in SUPPORTED_EXTENSIONS]
    if unknown:
        raise DomainError(
            "UNSUPPORTED_EXTENSION",
            f"Unsupported extension(s): {', '.join(unknown)}. "
            f"Supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}.",
            "allowedExtensions",
        )
    return cleaned


def check_size(mb: int) -> int:
    if not 1 <= mb <= MAX_FILE_SIZE_MB:
        raise DomainError(
            "INVALID_SIZE", f"The size limit must be 1 to {MAX_FILE_SIZE_MB} MB.", "maxFileSizeMb"
        )
    return mb


def _description(value: str | None) -> str | None:
    """Optional free text: trimmed, bounded, empty means none."""
    return check_text(value or "", "description", max_length=5000, required=False) or None


def _duplicate(entity: str) -> DomainError:
    return DomainError("CODE_TAKEN", f"A {entity} with this code already exists.", "code")


async def _apply(
    actor: Viewer, row: Any, updates: dict[str, Any], entity: str, event: EventType
) -> None:
    """Write `updates` to the (locked) catalogue row and record them, if there are any."""
    if not updates:
        return
    for key, value in updates.items():
        setattr(row, key, value)
    await row.save()
    await events.record(
        entity, row.id, event, actor=actor, payload={k: str(v) for k, v in updates.items()}
    )


async def create_product(
    actor: Viewer,
    *,
    code: str,
    name: str,
    description: str | None,
    dossier_type: DossierKind,
    price_amount: int,
    currency: str,
    initial_status: DossierStatus = DossierStatus.CREATED,
    active: bool = True,
    link_amount_min: int | None = None,
    link_amount_max: int | None = None,
    allow_promotion_codes: bool = False,
) -> Product:
    low, high = check_link_range(link_amount_min, link_amount_max)
    fields: dict[str, Any] = {
        "link_amount_min": low,
        "link_amount_max": high,
        "allow_promotion_codes": allow_promotion_codes,
        "code": check_code(code),
        "name": check_name(name, "name"),
        "description": _description(description),
        "dossier_type": dossier_type,
        "price_amount": _check_price(price_amount),
        "currency": _check_currency(currency),
        "initial_status": _check_initial_status(initial_status),
        "active": active,
    }
    try:
        async with in_transaction():
            product = await Product.create(**fields)
            await events.record(
                "product",
                product.id,
                EventType.PRODUCT_CREATED,
                actor=actor,
                payload={"code": product.code},
            )
    except IntegrityError:
        raise _duplicate("product") from None
    return product


@dataclass
class ProductChanges:
    name: str | None = None
    description: str | None = None
    price_amount: int | None = None
    currency: str | None = None
    initial_status: DossierStatus | None = None
    active: bool | None = None
    description_set: bool = False
    link_amount_min: int | None = None
    link_amount_min_set: bool = False
    link_amount_max: int | None = None
    link_amount_max_set: bool = False
    allow_promotion_codes: bool | None = None
    renewal_product_id: uuid.UUID | None = None
    renewal_product_set: bool = False


async def update_product(actor: Viewer, product_id: uuid.UUID, changes: ProductChanges) -> Product:
    updates: dict[str, Any] = {}
    if changes.name is not None:
        updates["name"] = check_name(changes.name, "name")
    if changes.description_set:
        updates["description"] = _description(changes.description)
    if changes.price_amount is not None:
        updates["price_amount"] = _check_price(changes.price_amount)
    if changes.currency is not None:
        updates["currency"] = _check_currency(changes.currency)
    if changes.initial_status is not None:
        updates["initial_status"] = _check_initial_status(changes.initial_status)
    if changes.active is not None:
        updates["active"] = changes.active
    if changes.allow_promotion_codes is not None:
        updates["allow_promotion_codes"] = changes.allow_promotion_codes
    async with in_transaction():
        product = await Product.filter(id=product_id).select_for_update().first()
        if product is None:
            raise NotFound("No such product.")
        if changes.renewal_product_set:
            renewal = changes.renewal_product_id
            if renewal is not None and not await Product.filter(id=renewal).exists():
                raise DomainError(
                    Code.UNKNOWN_PRODUCT, "No such product to renew with.", "renewalProductId"
                )
            updates["renewal_product_id"] = renewal
        if changes.link_amount_min_set or changes.link_amount_max_set:
            low, high = check_link_range(
                changes.link_amount_min if changes.link_amount_min_set else product.link_amount_min,
                changes.link_amount_max if changes.link_amount_max_set else product.link_amount_max,
            )
            updates["link_amount_min"], updates["link_amount_max"] = low, high
        await _apply(actor, product, updates, "product", EventType.PRODUCT_UPDATED)
    return product


async def create_step(
    actor: Viewer, *, code: str, label: str, description: str | None, position: int = 0
) -> Step:
    fields: dict[str, Any] = {
        "code": check_code(code),
        "label": check_name(label, "label"),
        "description": _description(description),
        "position": position,
    }
    try:
        async with in_transaction():
            step = await Step.create(**fields)
            await events.record(
                "step", step.id, EventType.STEP_CREATED, actor=actor, payload={"code": step.code}
            )
    except IntegrityError:
        raise _duplicate("step") from None
    return step


@dataclass
class StepChanges:
    label: str | None = None
    description: str | None = None
    description_set: bool = False
    position: int | None = None


async def update_step(actor: Viewer, step_id: uuid.UUID, changes: StepChanges) -> Step:
    """Change a step's label, description or position (an event when something changes).
    Running dossiers show the step as it is now (a step instance points at its step)."""
    updates: dict[str, Any] = {}
    if changes.label is not None:
        updates["label"] = check_name(changes.label, "label")
    if changes.description_set:
        updates["description"] = _description(changes.description)
    if changes.position is not None:
        updates["position"] = check_position(changes.position)
    async with in_transaction():
        step = await Step.filter(id=step_id).select_for_update().first()
        if step is None:
            raise NotFound("No such step.")
        updates = {k: v for k, v in updates.items() if getattr(step, k) != v}  # what changes
        await _apply(actor, step, updates, "step", EventType.STEP_UPDATED)
    return step


# --- archiving ---------------------------------------------------------------------------

_Archivable = TypeVar("_Archivable", Product, Step, DocumentType)
# model -> (events' entity type, what a missing id is, event when archived, when unarchived)
_ARCHIVING: dict[type[Any], tuple[str, str, EventType, EventType]] = {
    Product: ("product", "product", EventType.PRODUCT_ARCHIVED, EventType.PRODUCT_UNARCHIVED),
    Step: ("step", "step", EventType.STEP_ARCHIVED, EventType.STEP_UNARCHIVED),
    DocumentType: (
        "document_type",
        "document type",
        EventType.DOCUMENT_TYPE_ARCHIVED,
        EventType.DOCUMENT_TYPE_UNARCHIVED,
    ),
}


async def set_archived(
    actor: Viewer, model: type[_Archivable], entity_id: uuid.UUID, *, archived: bool
) -> _Archivable:
    """Archive (or unarchive) a product, step or document type, with its event. Doing it
    again changes nothing and records nothing."""
    entity, what, archived_event, unarchived_event = _ARCHIVING[model]
    async with in_transaction():
        row = await model.filter(id=entity_id).select_for_update().first()
        if row is None:
            raise NotFound(f"No such {what}.")
        if (row.archived_at is not None) != archived:
            row.archived_at = datetime.now(UTC) if archived else None
            await row.save()
            await events.record(
                entity,
                row.id,
                archived_event if archived else unarchived_event,
                actor=actor,
                payload={"code": row.code},
            )
    return row


@dataclass
class ProductStepSpec:
    step_id: str
    is_required: bool = True
    estimated_duration_hours: int | None = None


async def set_product_steps(
    actor: Viewer, product_id: uuid.UUID, specs: Sequence[ProductStepSpec]
) -> Product:
    """Replace a product's steps with `specs`, in that order (positions 1..n).

    Running dossiers are unaffected: their step instances were copied when they started.
    """
    if len({s.step_id for s in specs}) != len(specs):
        raise DomainError("DUPLICATE_STEP", "A step can appear only once in a product.", "steps")
    if len(specs) > 50:
        raise DomainError("TOO_MANY_STEPS", "A product has at most 50 steps.", "steps")
    for index, spec in enumerate(specs):
        hours = spec.estimated_duration_hours
        if hours is not None and not 1 <= hours <= 24 * 365:
            raise DomainError(
                "INVALID_DURATION",
                "The estimated duration is 1 hour to 1 year.",
                ["steps", str(index), "estimatedDurationHours"],
            )
    async with in_transaction():
        product = await Product.filter(id=product_id).select_for_update().first()
        if product is None:
            raise NotFound("No such product.")
        if product.archived_at is not None:
            raise DomainError(
                Code.PRODUCT_ARCHIVED,
                "This product is archived: unarchive it to change its workflow.",
                "productId",
            )
        wanted = [str(s.step_id) for s in specs]
        found = {str(s.id): s for s in await Step.filter(id__in=wanted)}
        missing = [i for i, sid in enumerate(wanted) if sid not in found]
        if missing:
            raise DomainError("UNKNOWN_STEP", "No such step.", ["steps", str(missing[0]), "stepId"])
        archived = [i for i, sid in enumerate(wanted) if found[sid].archived_at is not None]
        if archived:
            raise DomainError(
                Code.STEP_ARCHIVED,
                "This step is archived: it cannot join a workflow.",
                ["steps", str(archived[0]), "stepId"],
            )
        await ProductStep.filter(product_id=product.id).delete()
        await ProductStep.bulk_create(
            [
                ProductStep(
                    product_id=product.id,
                    step_id=spec.step_id,
                    position=position,
                    is_required=spec.is_required,
                    estimated_duration_hours=spec.estimated_duration_hours,
                )
                for position, spec in enumerate(specs, start=1)
            ]
        )
        await events.record(
            "product",
            product.id,
            EventType.PRODUCT_STEPS_SET,
            actor=actor,
            payload={"steps": wanted},
        )
    forget_catalogue_bounds()
    return product


async def create_document_type(
    actor: Viewer,
    *,
    code: str,
    label: str,
    description: str | None,
    required_step_id: str | None,
    max_file_size_mb: int,
    allowed_extensions: Sequence[str],
    per_member_role: str | None = None,
    requires_expiry: bool = False,
    min_validity_days: int | None = None,
) -> DocumentType:
    """A new document type; with `required_step_id`, attached to that step."""
    fields: dict[str, Any] = {
        "requires_expiry": requires_expiry,
        "min_validity_days": _check_validity(min_validity_days),
        "code": check_code(code),
        "label": check_name(label, "label"),
        "description": _description(description),
        "max_file_size_mb": check_size(max_file_size_mb),
        "allowed_extensions": check_extensions(allowed_extensions),
        "per_member_role": None
        if per_member_role is None
        else check_code(per_member_role, "perMemberRole"),
    }
    step = await step_to_attach(required_step_id, "requiredStepId")
    try:
        async with in_transaction():
            document_type = await DocumentType.create(
                required_step_id=step.id if step else None, **fields
            )
            if step is not None:
                await StepDocumentType.create(step_id=step.id, document_type_id=document_type.id)
            await events.record(
                "document_type",
                document_type.id,
                EventType.DOCUMENT_TYPE_CREATED,
                actor=actor,
                payload={"code": document_type.code},
            )
    except IntegrityError:
        raise _duplicate("document type") from None
    forget_catalogue_bounds()
    return document_type


@dataclass
class DocumentTypeChanges:
    label: str | None = None
    description: str | None = None
    description_set: bool = False
    required_step_id: str | None = None
    required_step_set: bool = False
    max_file_size_mb: int | None = None
    allowed_extensions: Sequence[str] | None = None
    requires_expiry: bool | None = None
    min_validity_days: int | None = None
    min_validity_set: bool = False


MAX_VALIDITY_DAYS = 3660


def _check_validity(days: int | None) -> int | None:
    if days is not None and not 0 <= days <= MAX_VALIDITY_DAYS:
        raise DomainError(
            Code.INVALID_VALIDITY,
            f"A minimum validity is 0 to {MAX_VALIDITY_DAYS} days.",
            "minValidityDays",
        )
    return days


async def update_document_type(
    actor: Viewer, document_type_id: uuid.UUID, changes: DocumentTypeChanges
) -> DocumentType:
    """Change a document type. A new `required_step_id` attaches the type to that step and
    detaches it from the step it named before (null: detaches it from that step only);
    its other steps keep it."""
    updates: dict[str, Any] = {}
    if changes.label is not None:
        updates["label"] = check_name(changes.label, "label")
    if changes.description_set:
        updates["description"] = _description(changes.description)
    if changes.max_file_size_mb is not None:
        updates["max_file_size_mb"] = check_size(changes.max_file_size_mb)
    if changes.allowed_extensions is not None:
        updates["allowed_extensions"] = check_extensions(changes.allowed_extensions)
    if changes.requires_expiry is not None:
        updates["requires_expiry"] = changes.requires_expiry
    if changes.min_validity_set:
        updates["min_validity_days"] = _check_validity(changes.min_validity_days)
    step = await step_to_attach(changes.required_step_id, "requiredStepId")
    async with in_transaction():
        document_type = await DocumentType.filter(id=document_type_id).select_for_update().first()
        if document_type is None:
            raise NotFound("No such document type.")
        if changes.required_step_set:
            updates["required_step_id"] = await move_required_step(document_type, step)
        await _apply(
            actor, document_type, updates, "document_type", EventType.DOCUMENT_TYPE_UPDATED
        )
    forget_catalogue_bounds()
    return document_type
