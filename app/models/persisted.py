"""Trusted documents (issue 21): the GraphQL operations an admin registered, by hash."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class TrustedDocument(Model):
    """One registered GraphQL document, keyed by the SHA-256 of its text (lower-case hex,
    as Apollo's persisted queries and GraphQL Codegen's manifests name it). With
    TRUSTED_DOCUMENTS on, only these (and the manifest's) run. Immutable: a hash names one
    text for ever. Looked up by its primary key only."""

    hash = fields.CharField(max_length=64, primary_key=True)
    document = fields.TextField()
    operation_name = fields.CharField(max_length=200, null=True)
    created_by_id = fields.UUIDField(null=True)  # the admin (agents.id); kept if they leave
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "trusted_documents"
