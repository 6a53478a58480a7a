"""Trusted documents: the operations an admin registers for TRUSTED_DOCUMENTS mode."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.schema.common import UserError
from app.services.persisted_queries import MAX_TRUSTED_PER_CALL, TrustedDocumentErrorCode

strawberry.enum(TrustedDocumentErrorCode, name="TrustedDocumentErrorCode")

MAX_DOCUMENTS_PER_CALL = MAX_TRUSTED_PER_CALL


@strawberry.input
class TrustedDocumentInput:
    document: str = strawberry.field(description="The operation's full text, as clients send it.")
    sha256_hash: str | None = strawberry.field(
        default=None,
        description="The hash the client sends (checked: the SHA-256 of `document`, hex).",
    )


@strawberry.input
class RegisterTrustedDocumentsInput:
    documents: list[TrustedDocumentInput] = strawberry.field(
        description=f"At most {MAX_DOCUMENTS_PER_CALL} documents per call."
    )


@strawberry.type(name="TrustedDocument")
class TrustedDocumentType:
    sha256_hash: str
    operation_name: str | None
    created_at: datetime


@strawberry.type
class TrustedDocumentUserError(UserError):
    code: TrustedDocumentErrorCode


@strawberry.type
class RegisterTrustedDocumentsPayload:
    documents: list[TrustedDocumentType] = strawberry.field(default_factory=list)
    user_errors: list[TrustedDocumentUserError] = strawberry.field(default_factory=list)
