"""The agents' search (issue 19): hits are clients or dossiers, each with its score."""

from __future__ import annotations

import uuid

import strawberry

from app.context import Info
from app.schema.dossiers import DossierType
from app.schema.identity import ProfileType


@strawberry.interface(name="SearchHit", description="A search result, best first.")
class SearchHit:
    score: float = strawberry.field(
        description="How well it matches, from 0 to 1 (1: the whole e-mail, phone number, "
        "case number or name)."
    )
    target_id: strawberry.Private[uuid.UUID]


@strawberry.type(name="ClientHit", description="A client found by name, e-mail or phone.")
class ClientHit(SearchHit):
    @strawberry.field
    async def client(self, info: Info) -> ProfileType:
        return await info.context.loaders.profile.load(self.target_id)


@strawberry.type(name="DossierHit", description="A dossier found by its case number.")
class DossierHit(SearchHit):
    @strawberry.field
    async def dossier(self, info: Info) -> DossierType:
        return await info.context.loaders.dossier.load(self.target_id)


SEARCH_HIT_TYPES = (ClientHit, DossierHit)  # the implementations, for the schema
