"""registerTrustedDocuments: admins add the operations TRUSTED_DOCUMENTS mode lets run."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError, OperationDefinitionNode, parse, validate

from app.compat.strawberry import graphql_schema
from app.context import Info
from app.schema.persisted import (
    MAX_DOCUMENTS_PER_CALL,
    RegisterTrustedDocumentsInput,
    RegisterTrustedDocumentsPayload,
    TrustedDocumentType,
    TrustedDocumentUserError,
)
from app.services.persisted_queries import (
    TrustedDocumentErrorCode,
    document_hash,
    register_trusted,
)


def _problem(
    index: int, text: str, sha256_hash: str | None, schema: object
) -> TrustedDocumentUserError | None:
    field = ["documents", str(index)]
    if sha256_hash is not None and sha256_hash.lower().removeprefix("sha256:") != document_hash(
        text
    ):
        return TrustedDocumentUserError(
            field=[*field, "sha256Hash"],
            message="This is not the SHA-256 of the document.",
            code=TrustedDocumentErrorCode.HASH_MISMATCH,
        )
    try:
        errors = validate(graphql_schema(schema), parse(text))
    except GraphQLError as exc:
        errors = [exc]
    if errors:
        return TrustedDocumentUserError(
            field=[*field, "document"],
            message=f"Not a valid operation of this schema: {errors[0].message}",
            code=TrustedDocumentErrorCode.INVALID_DOCUMENT,
        )
    return None


def _operation_name(text: str) -> str | None:
    names = [
        d.name.value
        for d in parse(text).definitions
        if isinstance(d, OperationDefinitionNode) and d.name is not None
    ]
    return names[0] if len(names) == 1 else None


@strawberry.type
class PersistedMutation:
    @strawberry.mutation(
        description="Trust GraphQL documents (admins): with TRUSTED_DOCUMENTS on, only these "
        "and the manifest's run, sent in full or by their SHA-256 "
        "(`extensions.persistedQuery.sha256Hash`). Registering a document again is harmless."
    )
    async def register_trusted_documents(
        self, info: Info, input: RegisterTrustedDocumentsInput
    ) -> RegisterTrustedDocumentsPayload:
        admin = await info.context.require_admin()
        if not input.documents or len(input.documents) > MAX_DOCUMENTS_PER_CALL:
            return RegisterTrustedDocumentsPayload(
                user_errors=[
                    TrustedDocumentUserError(
                        field=["documents"],
                        message=f"Send between 1 and {MAX_DOCUMENTS_PER_CALL} documents.",
                        code=TrustedDocumentErrorCode.TOO_MANY,
                    )
                ]
            )
        problems = [
            problem
            for index, item in enumerate(input.documents)
            if (problem := _problem(index, item.document, item.sha256_hash, info.schema))
        ]
        if problems:
            return RegisterTrustedDocumentsPayload(user_errors=problems)
        rows = await register_trusted(
            [(item.document, _operation_name(item.document)) for item in input.documents],
            admin_id=admin.actor_id,
        )
        return RegisterTrustedDocumentsPayload(
            documents=[
                TrustedDocumentType(
                    sha256_hash=row.hash,
                    operation_name=row.operation_name,
                    created_at=row.created_at,
                )
                for row in rows
            ]
        )
