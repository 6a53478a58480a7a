"""What a document is and accepts: its document type's label and rules, or, for one an
agent requested on the fly without a type, the ad-hoc ones stored on the document."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import Document, DocumentType


@dataclass(frozen=True)
class DocumentSpec:
    label: str
    allowed_extensions: list[str]
    max_file_size_mb: int
    code: str | None  # the document type's code; None for an ad-hoc document


def spec_of(document: Document, document_type: DocumentType | None) -> DocumentSpec:
    """`document_type` is the document's own (None when it has none)."""
    if document_type is not None:
        return DocumentSpec(
            label=document_type.label,
            allowed_extensions=[e.lower() for e in document_type.allowed_extensions],
            max_file_size_mb=document_type.max_file_size_mb,
            code=document_type.code,
        )
    return DocumentSpec(
        label=document.label or "Document",
        allowed_extensions=[e.lower() for e in document.allowed_extensions or []],
        max_file_size_mb=document.max_file_size_mb or 1,
        code=None,
    )
