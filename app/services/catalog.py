"""The catalogue: products, steps, the steps of a product, document types. Admin writes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import DocumentType, Product, ProductStep, Step
from app.models.enums import DossierKind, DossierStatus, EventType
from app.services import events
from app.services.catalogue_bounds import forget_catalogue_bounds
from app.services.validation import check_code, check_name, check_text

CURRENCY_RE = re.compile(r"^[a-z]{3}$")
# Extensions whose content we can recognise by its magic bytes (see the documents service).
SUPPORTED_EXTENSIONS = frozenset(
    {"pdf", "jpg", "jpeg", "png", "gif", "webp", "tif", "tiff", "heic", "docx", "xlsx", "odt"}
)
MAX_FILE_SIZE_MB = 100
INITIAL_STATUSES = frozenset({DossierStatus.CREATED, DossierStatus.IN_PROGRESS})


def _check_price(amount: int) -> int:
    if amount <= 0 or amount > 100_000_000:
        raise DomainError(
            "INVALID_AMOUNT", "The price must be a positive amount in cents.", "priceAmount"
        )
    return amount


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


def _check_extensions(values: Sequence[str]) -> list[str]:
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


def _check_size(mb: int) -> int:
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
) -> Product:
    fields: dict[str, Any] = {
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
    async with in_transaction():
        product = await Product.filter(id=product_id).select_for_update().first()
        if product is None:
            raise NotFound("No such product.")
        if updates:
            for key, value in updates.items():
                setattr(product, key, value)
            await product.save()
            await events.record(
                "product",
                product.id,
                EventType.PRODUCT_UPDATED,
                actor=actor,
                payload={k: str(v) for k, v in updates.items()},
            )
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
        wanted = [str(s.step_id) for s in specs]
        found = {str(s.id) for s in await Step.filter(id__in=wanted)}
        missing = [i for i, sid in enumerate(wanted) if sid not in found]
        if missing:
            raise DomainError("UNKNOWN_STEP", "No such step.", ["steps", str(missing[0]), "stepId"])
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
) -> DocumentType:
    fields: dict[str, Any] = {
        "code": check_code(code),
        "label": check_name(label, "label"),
        "description": _description(description),
        "max_file_size_mb": _check_size(max_file_size_mb),
        "allowed_extensions": _check_extensions(allowed_extensions),
    }
    if required_step_id is not None and not await Step.filter(id=required_step_id).exists():
        raise DomainError("UNKNOWN_STEP", "No such step.", "requiredStepId")
    try:
        async with in_transaction():
            document_type = await DocumentType.create(required_step_id=required_step_id, **fields)
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


async def update_document_type(
    actor: Viewer, document_type_id: uuid.UUID, changes: DocumentTypeChanges
) -> DocumentType:
    updates: dict[str, Any] = {}
    if changes.label is not None:
        updates["label"] = check_name(changes.label, "label")
    if changes.description_set:
        updates["description"] = _description(changes.description)
    if changes.max_file_size_mb is not None:
        updates["max_file_size_mb"] = _check_size(changes.max_file_size_mb)
    if changes.allowed_extensions is not None:
        updates["allowed_extensions"] = _check_extensions(changes.allowed_extensions)
    if changes.required_step_set:
        step_id = changes.required_step_id
        if step_id is not None and not await Step.filter(id=step_id).exists():
            raise DomainError("UNKNOWN_STEP", "No such step.", "requiredStepId")
        updates["required_step_id"] = step_id
    async with in_transaction():
        document_type = await DocumentType.filter(id=document_type_id).select_for_update().first()
        if document_type is None:
            raise NotFound("No such document type.")
        if updates:
            for key, value in updates.items():
                setattr(document_type, key, value)
            await document_type.save()
            await events.record(
                "document_type",
                document_type.id,
                EventType.DOCUMENT_TYPE_UPDATED,
                actor=actor,
                payload={k: str(v) for k, v in updates.items()},
            )
    forget_catalogue_bounds()
    return document_type
