"""Which rows are about one client: read once, by indexed foreign keys, by the export (what
the archive holds) and the erasure (what it scrubs)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tortoise.queryset import QuerySet

from app.models import (
    Credential,
    DataExport,
    Document,
    DocumentVersion,
    Dossier,
    DossierMember,
    Order,
    PaymentLink,
    Profile,
)

# Events name what they are about by (entity_type, entity_id): these kinds can be a client's.
ENTITY_TYPES = (
    "profile",
    "dossier",
    "order",
    "payment_link",
    "document",
    "message",
    "step_instance",
    "data_export",
)


@dataclass
class Scope:
    profile: Profile
    credential: Credential | None
    own_dossier_ids: list[uuid.UUID] = field(default_factory=list)
    member_dossier_ids: list[uuid.UUID] = field(default_factory=list)  # others', as a member
    membership_ids: list[uuid.UUID] = field(default_factory=list)
    document_ids: list[uuid.UUID] = field(default_factory=list)  # own dossiers' and member ones
    versions: list[DocumentVersion] = field(default_factory=list)
    order_ids: list[uuid.UUID] = field(default_factory=list)
    payment_link_ids: list[uuid.UUID] = field(default_factory=list)
    export_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def email(self) -> str | None:
        return self.credential.email if self.credential else None

    @property
    def dossier_ids(self) -> list[uuid.UUID]:
        return [*self.own_dossier_ids, *self.member_dossier_ids]

    def entity_ids(self) -> list[uuid.UUID]:
        """Every id an event about this client may name as its entity."""
        return [
            self.profile.id,
            *self.own_dossier_ids,
            *self.order_ids,
            *self.payment_link_ids,
            *self.document_ids,
            *self.export_ids,
        ]


async def _ids(queryset: QuerySet[Any], column: str = "id") -> list[uuid.UUID]:
    return [uuid.UUID(str(value)) for value in await queryset.values_list(column, flat=True)]


async def scope_of(profile: Profile) -> Scope:
    credential = await Credential.filter(profile_id=profile.id).first()
    scope = Scope(profile=profile, credential=credential)
    scope.own_dossier_ids = list(await _ids(Dossier.filter(user_id=profile.id)))
    memberships = list(await DossierMember.filter(profile_id=profile.id))
    scope.membership_ids = [row.id for row in memberships]
    scope.member_dossier_ids = sorted(
        {row.dossier_id for row in memberships} - set(scope.own_dossier_ids), key=str
    )
    own_documents = (
        await _ids(Document.filter(dossier_id__in=scope.own_dossier_ids))
        if scope.own_dossier_ids
        else []
    )
    member_documents = (
        await _ids(Document.filter(member_id__in=scope.membership_ids))
        if scope.membership_ids
        else []
    )
    scope.document_ids = list(dict.fromkeys([*own_documents, *member_documents]))
    if scope.document_ids:
        scope.versions = list(
            await DocumentVersion.filter(document_id__in=scope.document_ids).order_by(
                "document_id", "version_number"
            )
        )
    scope.order_ids = list(await _ids(Order.filter(user_id=profile.id)))
    links = set(await _ids(PaymentLink.filter(used_by_id=profile.id)))
    if scope.email:
        links |= set(await _ids(PaymentLink.filter(prospect_email=scope.email)))
    scope.payment_link_ids = sorted(links, key=str)
    scope.export_ids = list(await _ids(DataExport.filter(profile_id=profile.id)))
    return scope
