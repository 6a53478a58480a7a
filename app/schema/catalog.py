"""Products, steps and document types."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from app.context import Info
from app.schema.common import UserError
from app.schema.enums import DossierKind, DossierStatus
from app.services.codes import CatalogErrorCode

# Marks the class itself as a GraphQL enum (see app.schema.enums).
strawberry.enum(CatalogErrorCode, name="CatalogErrorCode")


@strawberry.type(name="DocumentType", description="A kind of document a step asks for.")
class DocumentTypeType:
    code: str
    label: str
    description: str | None
    max_file_size_mb: int
    allowed_extensions: list[str]
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = strawberry.field(
        description="When it was archived: new dossiers get no document of this type."
    )
    per_member_role: str | None = strawberry.field(
        description="Asked of each member of this role (one document each), not of the "
        "dossier: e.g. CHILD for a child's birth certificate."
    )
    requires_expiry: bool = strawberry.field(
        description="A version is approved with its expiry date (expiresOn)."
    )
    min_validity_days: int | None = strawberry.field(
        description="An expiry date must be at least this many days ahead (null: any future date)."
    )

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the DocumentType row: columns read below
        required_step_id: uuid.UUID | None

    @strawberry.field(
        description="The first step it was attached to that still asks for it (steps of "
        "several products may: see Step.documentTypes)."
    )
    async def required_step(self, info: Info) -> StepType | None:
        if self.required_step_id is None:
            return None
        return await info.context.loaders.step.load(self.required_step_id)


@strawberry.type(name="Step", description="A reusable stage of a workflow.")
class StepType:
    code: str
    label: str
    description: str | None
    position: int
    created_at: datetime
    archived_at: datetime | None = strawberry.field(
        description="When it was archived: no new dossier runs it, no workflow takes it."
    )

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    @strawberry.field(
        description="Document types asked for when this step starts, in order (archived "
        "ones left out)."
    )
    async def document_types(self, info: Info) -> list[DocumentTypeType]:
        return await info.context.loaders.document_types_by_step.load(self.id)


@strawberry.type(name="ProductStep", description="A step in a product's workflow, in order.")
class ProductStepType:
    position: int
    is_required: bool
    estimated_duration_hours: int | None

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the ProductStep row: columns read below
        step_id: uuid.UUID

    @strawberry.field
    async def step(self, info: Info) -> StepType:
        return await info.context.loaders.step.load(self.step_id)


@strawberry.type(name="Product", description="What a client buys; it opens a dossier.")
class ProductType:
    code: str
    name: str
    description: str | None
    dossier_type: DossierKind
    price_amount: int = strawberry.field(description="In minor units (cents).")
    currency: str
    initial_status: DossierStatus
    active: bool
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = strawberry.field(
        description="When it was archived: it is not sold any more (its dossiers go on)."
    )
    link_amount_min: int | None = strawberry.field(
        description="The lowest amount a payment link may charge instead of the price "
        "(null with linkAmountMax: the price is fixed)."
    )
    link_amount_max: int | None = strawberry.field(
        description="The highest amount a payment link may charge."
    )
    allow_promotion_codes: bool = strawberry.field(
        description="Stripe Checkout takes promotion codes; the order records what was paid."
    )

    id: strawberry.ID  # a UUID: GraphQL's ID serializes it with str(), as gid() did

    if TYPE_CHECKING:  # the root value is the Product row: columns read below
        renewal_product_id: uuid.UUID | None

    @strawberry.field(
        description="The product that renews this one: offered to the client (a payment "
        "link) when a document of the dossier nears its expiry."
    )
    async def renewal_product(self, info: Info) -> ProductType | None:
        if getattr(self, "renewal_product_id", None) is None:
            return None
        return await info.context.loaders.product.load(self.renewal_product_id)

    @strawberry.field(
        description="The product's workflow, in order: the steps a new dossier runs "
        "(archived steps left out)."
    )
    async def steps(self, info: Info) -> list[ProductStepType]:
        return await info.context.loaders.product_steps_by_product.load(self.id)


@strawberry.type
class CatalogUserError(UserError):
    code: CatalogErrorCode


@strawberry.input
class CreateProductInput:
    code: str
    name: str
    description: str | None = None
    dossier_type: DossierKind
    price_amount: int
    currency: str = "eur"
    initial_status: DossierStatus = DossierStatus.CREATED
    active: bool = True
    link_amount_min: int | None = None
    link_amount_max: int | None = None
    allow_promotion_codes: bool = False


@strawberry.input
class UpdateProductInput:
    id: strawberry.ID
    name: strawberry.Maybe[str]
    description: strawberry.Maybe[str | None]
    price_amount: strawberry.Maybe[int]
    currency: strawberry.Maybe[str]
    initial_status: strawberry.Maybe[DossierStatus]
    active: strawberry.Maybe[bool]
    link_amount_min: strawberry.Maybe[int | None]
    link_amount_max: strawberry.Maybe[int | None]
    allow_promotion_codes: strawberry.Maybe[bool]
    renewal_product_id: strawberry.Maybe[strawberry.ID | None] = strawberry.field(
        description="The product offered when a document of its dossiers nears its expiry "
        "(null: none)."
    )


@strawberry.type
class ProductPayload:
    product: ProductType | None = None
    user_errors: list[CatalogUserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateStepInput:
    code: str
    label: str
    description: str | None = None
    position: int = 0


@strawberry.input
class UpdateStepInput:
    step_id: strawberry.ID
    label: strawberry.Maybe[str]
    description: strawberry.Maybe[str | None]
    position: strawberry.Maybe[int]


@strawberry.type
class StepPayload:
    step: StepType | None = None
    user_errors: list[CatalogUserError] = strawberry.field(default_factory=list)


@strawberry.input
class ProductStepInput:
    step_id: strawberry.ID
    is_required: bool = True
    estimated_duration_hours: int | None = None


@strawberry.input
class SetProductStepsInput:
    product_id: strawberry.ID
    steps: list[ProductStepInput] = strawberry.field(
        description="The whole workflow, in order; it replaces the previous one."
    )


@strawberry.input
class CreateDocumentTypeInput:
    code: str
    label: str
    description: str | None = None
    required_step_id: strawberry.ID | None = None
    max_file_size_mb: int = 10
    allowed_extensions: list[str]
    per_member_role: str | None = strawberry.field(
        default=None, description="Ask it of each member of this role instead."
    )
    requires_expiry: bool = False
    min_validity_days: int | None = None


@strawberry.input
class UpdateDocumentTypeInput:
    id: strawberry.ID
    label: strawberry.Maybe[str]
    description: strawberry.Maybe[str | None]
    required_step_id: strawberry.Maybe[strawberry.ID | None]
    max_file_size_mb: strawberry.Maybe[int]
    allowed_extensions: strawberry.Maybe[list[str]]
    requires_expiry: strawberry.Maybe[bool]
    min_validity_days: strawberry.Maybe[int | None]


@strawberry.type
class DocumentTypePayload:
    document_type: DocumentTypeType | None = None
    user_errors: list[CatalogUserError] = strawberry.field(default_factory=list)


@strawberry.input
class ArchiveProductInput:
    product_id: strawberry.ID


@strawberry.input
class UnarchiveProductInput:
    product_id: strawberry.ID


@strawberry.input
class ArchiveStepInput:
    step_id: strawberry.ID


@strawberry.input
class UnarchiveStepInput:
    step_id: strawberry.ID


@strawberry.input
class ArchiveDocumentTypeInput:
    document_type_id: strawberry.ID


@strawberry.input
class UnarchiveDocumentTypeInput:
    document_type_id: strawberry.ID


@strawberry.input
class AttachDocumentTypeInput:
    step_id: strawberry.ID
    document_type_id: strawberry.ID
    position: int = strawberry.field(
        default=0,
        description="Its place among the step's document types (then by code); attaching "
        "it again moves it.",
    )


@strawberry.input
class DetachDocumentTypeInput:
    step_id: strawberry.ID
    document_type_id: strawberry.ID


@strawberry.type
class StepDocumentTypePayload:
    step: StepType | None = None
    document_type: DocumentTypeType | None = None
    user_errors: list[CatalogUserError] = strawberry.field(default_factory=list)
