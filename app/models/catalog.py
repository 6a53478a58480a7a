from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, TimestampedModel
from app.models.enums import DossierKind, DossierStatus

if TYPE_CHECKING:
    from app.models.documents import Document
    from app.models.dossiers import Dossier, StepInstance
    from app.models.payments import Order, PaymentLink


class Product(TimestampedModel):
    code = fields.CharField(max_length=64, unique=True)
    name = fields.TextField()
    description = fields.TextField(null=True)
    dossier_type = fields.CharEnumField(DossierKind, max_length=32)
    stripe_product_id = fields.CharField(max_length=255, null=True, unique=True)
    stripe_price_id = fields.CharField(max_length=255, null=True)
    price_amount = fields.IntField()  # minor units (cents)
    currency = fields.CharField(max_length=3)  # ISO 4217, lower-case as Stripe uses
    initial_status = fields.CharEnumField(
        DossierStatus, max_length=32, default=DossierStatus.CREATED
    )
    active = fields.BooleanField(default=True)
    # Beyond the ERD: what a payment link may charge instead of price_amount (a quote, a
    # discount; no range: the price is fixed), and whether Stripe Checkout takes
    # promotion codes (then the order records the amount actually charged).
    link_amount_min = fields.IntField(null=True)
    link_amount_max = fields.IntField(null=True)
    allow_promotion_codes = fields.BooleanField(default=False, db_default=False)
    # Archived (issue 17): retired from the catalogue, kept for the dossiers and orders that
    # point at it; left out of the lists, never sold again (app.services.catalog).
    archived_at = fields.DatetimeField(null=True)
    # Issue 18: the product that renews this one (a residence permit's renewal): when a
    # document of one of its dossiers nears its expiry, the client is offered a payment
    # link for it (app.services.document_expiry).
    renewal_product: fields.ForeignKeyNullableRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="renewed_products", null=True, on_delete=fields.SET_NULL
    )

    renewal_product_id: uuid.UUID | None  # the foreign key's column (an attribute Tortoise adds)
    # The other side of foreign keys to products:
    product_steps: fields.ReverseRelation[ProductStep]
    dossiers: fields.ReverseRelation[Dossier]
    payment_links: fields.ReverseRelation[PaymentLink]
    orders: fields.ReverseRelation[Order]
    renewed_products: fields.ReverseRelation[Product]

    class Meta:
        table = "products"
        indexes = (Index(fields=("renewal_product_id",), name="idx_products_renewal_product_id"),)


class Step(CreatedModel):
    code = fields.CharField(max_length=64, unique=True)
    label = fields.TextField()
    description = fields.TextField(null=True)
    position = fields.IntField(default=0)
    # Archived: no new dossier gets it; the step instances of running dossiers keep it.
    archived_at = fields.DatetimeField(null=True)

    # The other side of foreign keys to steps:
    product_steps: fields.ReverseRelation[ProductStep]
    step_instances: fields.ReverseRelation[StepInstance]
    # The document types whose `required_step` this is (the first step each was attached
    # to); what the step asks for is `document_type_links` (step_document_types).
    document_types: fields.ReverseRelation[DocumentType]
    document_type_links: fields.ReverseRelation[StepDocumentType]

    class Meta:
        table = "steps"


class ProductStep(CreatedModel):
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="product_steps", on_delete=fields.CASCADE
    )
    step: fields.ForeignKeyRelation[Step] = fields.ForeignKeyField(
        "models.Step", related_name="product_steps", on_delete=fields.RESTRICT
    )
    position = fields.IntField()
    is_required = fields.BooleanField(default=True)
    estimated_duration_hours = fields.IntField(null=True)

    # The foreign keys' columns (attributes Tortoise adds):
    product_id: uuid.UUID
    step_id: uuid.UUID

    class Meta:
        table = "product_steps"
        unique_together = (("product", "step"), ("product", "position"))


class DocumentType(TimestampedModel):
    code = fields.CharField(max_length=64, unique=True)
    label = fields.TextField()
    description = fields.TextField(null=True)
    # The ERD's column, kept for compatibility: the first step the type was attached to
    # (still attached), or none. Which steps ask for the type is step_document_types.
    required_step: fields.ForeignKeyNullableRelation[Step] = fields.ForeignKeyField(
        "models.Step", related_name="document_types", null=True, on_delete=fields.SET_NULL
    )
    max_file_size_mb = fields.IntField(default=10)
    # ERD: text[]; a JSON list keeps one migration working on PostgreSQL and SQLite.
    allowed_extensions: list[str] = fields.JSONField(default=list)
    # Archived: new dossiers get no document of this type; existing documents stay.
    archived_at = fields.DatetimeField(null=True)
    # Beyond the ERD: asked of each member of this role (issue 18), not of the dossier.
    per_member_role = fields.CharField(max_length=64, null=True)
    # Issue 18: an approved version must carry its expiry date, at least this many days
    # ahead when given (null: any future date).
    requires_expiry = fields.BooleanField(default=False, db_default=False)
    min_validity_days = fields.IntField(null=True)

    required_step_id: uuid.UUID | None  # the foreign key's column (an attribute Tortoise adds)
    documents: fields.ReverseRelation[Document]  # the other side of documents.document_type
    step_links: fields.ReverseRelation[StepDocumentType]

    class Meta:
        table = "document_types"
        indexes = (Index(fields=("required_step_id",), name="idx_document_types_required_step"),)


class StepDocumentType(CreatedModel):
    """A document type a step asks for (issue 17): one type can be asked for by the steps
    of several products. A step's types come in (position, code) order."""

    step: fields.ForeignKeyRelation[Step] = fields.ForeignKeyField(
        "models.Step", related_name="document_type_links", on_delete=fields.CASCADE
    )
    document_type: fields.ForeignKeyRelation[DocumentType] = fields.ForeignKeyField(
        "models.DocumentType", related_name="step_links", on_delete=fields.CASCADE
    )
    position = fields.IntField(default=0)

    # The foreign keys' columns (attributes Tortoise adds):
    step_id: uuid.UUID
    document_type_id: uuid.UUID

    class Meta:
        table = "step_document_types"
        # The unique key leads with step_id: it is the index of "what does a step ask for".
        unique_together = (("step", "document_type"),)
        indexes = (
            Index(fields=("document_type_id",), name="idx_step_document_types_document_type"),
        )
