from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import TimestampedModel, UUIDModel, WhereIndex
from app.models.enums import ActorType, DocumentStatus, ReviewStatus

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.catalog import DocumentType
    from app.models.dossiers import Dossier, StepInstance
    from app.models.members import DossierMember


class Document(TimestampedModel):
    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="documents", on_delete=fields.CASCADE
    )
    # Null for a document an agent asked for on the fly without a type (`label`,
    # `allowed_extensions` and `max_file_size_mb` below then say what it is and accepts).
    document_type: fields.ForeignKeyNullableRelation[DocumentType] = fields.ForeignKeyField(
        "models.DocumentType", related_name="documents", null=True, on_delete=fields.RESTRICT
    )
    step_instance: fields.ForeignKeyNullableRelation[StepInstance] = fields.ForeignKeyField(
        "models.StepInstance", related_name="documents", null=True, on_delete=fields.SET_NULL
    )
    # Beyond the ERD: the member a per-member document is for (null: the dossier's own).
    member: fields.ForeignKeyNullableRelation[DossierMember] = fields.ForeignKeyField(
        "models.DossierMember", related_name="documents", null=True, on_delete=fields.SET_NULL
    )
    status = fields.CharEnumField(DocumentStatus, max_length=32, default=DocumentStatus.PENDING)
    # Plain column for the documents <-> document_versions cycle; its FOREIGN KEY is added
    # by migrations/0002_cyclic_foreign_keys.py on PostgreSQL.
    current_version_id = fields.UUIDField(null=True)
    # Documents that expire (issue 18), kept by app.services.document_expiry: the expiry
    # of the current version while it is APPROVED (null otherwise), what agents list
    # soonest first; the day the next reminder margin falls (null: none left), what the
    # worker's pass claims; the smallest margin already reminded for this version.
    expires_on = fields.DateField(null=True)
    expiry_reminder_on = fields.DateField(null=True)
    expiry_reminded_margin = fields.IntField(null=True)
    # Requested on the fly by an agent (app.services.document_requests): who, the ad-hoc
    # spec when there is no document type, a note for the client and an own due date.
    requested_by_id = fields.UUIDField(null=True)  # the agent
    label = fields.TextField(null=True)
    allowed_extensions: list[str] | None = fields.JSONField(null=True)
    max_file_size_mb = fields.IntField(null=True)
    note = fields.TextField(null=True)
    due_at = fields.DatetimeField(null=True)
    # WAIVED: the agent who waived it, why and when.
    waived_by_id = fields.UUIDField(null=True)
    waived_reason = fields.TextField(null=True)
    waived_at = fields.DatetimeField(null=True)

    # The foreign keys' columns (attributes Tortoise adds):
    dossier_id: uuid.UUID
    document_type_id: uuid.UUID | None
    step_instance_id: uuid.UUID | None
    member_id: uuid.UUID | None
    versions: fields.ReverseRelation[DocumentVersion]  # the other side of versions.document

    class Meta:
        table = "documents"
        indexes = (
            Index(fields=("dossier_id",), name="idx_documents_dossier_id"),
            Index(fields=("status",), name="idx_documents_status"),
            Index(fields=("document_type_id",), name="idx_documents_document_type_id"),
            Index(fields=("step_instance_id",), name="idx_documents_step_instance_id"),
            Index(fields=("member_id",), name="idx_documents_member_id"),
            WhereIndex(
                fields=("expires_on", "id"),
                name="idx_documents_expires_on",
                where="expires_on IS NOT NULL",
            ),
            WhereIndex(
                fields=("expiry_reminder_on", "id"),
                name="idx_documents_expiry_reminder_due",
                where="expiry_reminder_on IS NOT NULL",
            ),
        )


class DocumentVersion(UUIDModel):
    document: fields.ForeignKeyRelation[Document] = fields.ForeignKeyField(
        "models.Document", related_name="versions", on_delete=fields.CASCADE
    )
    file_url = fields.TextField()  # storage key, never the client's file name
    file_name = fields.TextField()  # sanitised original name, for display only
    file_size_bytes = fields.BigIntField()
    mime_type = fields.CharField(max_length=255)
    uploaded_by_type = fields.CharEnumField(ActorType, max_length=16)
    uploaded_by_id = fields.UUIDField(null=True)
    version_number = fields.IntField()
    uploaded_at = fields.DatetimeField(auto_now_add=True)
    # Set (to uploaded_at) while this is the current version of an UPLOADED document:
    # the review queue walks these in (uploaded_at, id) order through a partial index, so
    # a page costs its size, not the whole queue (issue 14). Set on upload, cleared by the
    # review or by the next upload (app.services.documents). A condition the planner can
    # match with a prepared statement's generic plan: `IS NOT NULL`, never a parameter.
    awaiting_review_since = fields.DatetimeField(null=True)
    # The day the document stops being valid (issue 18): given at upload or by the reviewer.
    expires_on = fields.DateField(null=True)
    # When the file was deleted from storage (retention or erasure, app/services/
    # file_purge.py): the row stays, a download answers 410 Gone.
    purged_at = fields.DatetimeField(null=True)

    document_id: uuid.UUID  # the foreign key's column (an attribute Tortoise adds)
    reviews: fields.ReverseRelation[DocumentReview]  # the other side of reviews.document_version

    class Meta:
        table = "document_versions"
        unique_together = (("document", "version_number"),)
        indexes = (
            WhereIndex(
                fields=("uploaded_at", "id"),
                name="idx_document_versions_awaiting",
                where="awaiting_review_since IS NOT NULL",
            ),
        )


class DocumentReview(UUIDModel):
    document_version: fields.ForeignKeyRelation[DocumentVersion] = fields.ForeignKeyField(
        "models.DocumentVersion", related_name="reviews", on_delete=fields.CASCADE
    )
    reviewer: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="document_reviews", null=True, on_delete=fields.SET_NULL
    )
    status = fields.CharEnumField(ReviewStatus, max_length=32)
    reason = fields.TextField(null=True)
    notes = fields.TextField(null=True)
    reviewed_at = fields.DatetimeField(auto_now_add=True)

    # The foreign keys' columns (attributes Tortoise adds):
    document_version_id: uuid.UUID
    reviewer_id: uuid.UUID | None

    class Meta:
        table = "document_reviews"
        indexes = (
            Index(fields=("reviewer_id",), name="idx_document_reviews_reviewer_id"),
            Index(fields=("document_version_id",), name="idx_document_reviews_version_id"),
            # The reports' review turnaround: reviews made in a range of time.
            Index(fields=("reviewed_at",), name="idx_document_reviews_reviewed_at"),
        )
