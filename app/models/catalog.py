from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, TimestampedModel
from app.models.enums import DossierStatus, DossierType


class Product(TimestampedModel):
    code = fields.CharField(max_length=64, unique=True)
    name = fields.TextField()
    description = fields.TextField(null=True)
    dossier_type = fields.CharEnumField(DossierType, max_length=32)
    stripe_product_id = fields.CharField(max_length=255, null=True, unique=True)
    stripe_price_id = fields.CharField(max_length=255, null=True)
    price_amount = fields.IntField()  # minor units (cents)
    currency = fields.CharField(max_length=3)  # ISO 4217, lower-case as Stripe uses
    initial_status = fields.CharEnumField(
        DossierStatus, max_length=32, default=DossierStatus.CREATED
    )
    active = fields.BooleanField(default=True)

    class Meta:
        table = "products"


class Step(CreatedModel):
    code = fields.CharField(max_length=64, unique=True)
    label = fields.TextField()
    description = fields.TextField(null=True)
    position = fields.IntField(default=0)

    class Meta:
        table = "steps"


class ProductStep(CreatedModel):
    product = fields.ForeignKeyField(
        "models.Product", related_name="product_steps", on_delete=fields.CASCADE
    )
    step = fields.ForeignKeyField(
        "models.Step", related_name="product_steps", on_delete=fields.RESTRICT
    )
    position = fields.IntField()
    is_required = fields.BooleanField(default=True)
    estimated_duration_hours = fields.IntField(null=True)

    class Meta:
        table = "product_steps"
        unique_together = (("product", "step"), ("product", "position"))


class DocumentType(TimestampedModel):
    code = fields.CharField(max_length=64, unique=True)
    label = fields.TextField()
    description = fields.TextField(null=True)
    required_step = fields.ForeignKeyField(
        "models.Step", related_name="document_types", null=True, on_delete=fields.SET_NULL
    )
    max_file_size_mb = fields.IntField(default=10)
    # ERD: text[]; a JSON list keeps one migration working on PostgreSQL and SQLite.
    allowed_extensions = fields.JSONField(default=list)

    class Meta:
        table = "document_types"
        indexes = (Index(fields=("required_step_id",), name="idx_document_types_required_step"),)
