from __future__ import annotations

import strawberry

from app.context import Info
from app.dataloaders import pages
from app.errors import Forbidden, NotFound
from app.schema.common import Connection, dossier_id_of, paginate, parse_id, row_as
from app.schema.dossiers import DossierFilter, DossierType
from app.services import access_audit, dossiers


@strawberry.type
class DossierQuery:
    @strawberry.field(description="Dossiers you may see, newest first: a client's own, or all.")
    async def dossiers(
        self,
        info: Info,
        filter: DossierFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[DossierType]:
        viewer = await info.context.require_viewer()
        f = filter or DossierFilter()
        if (f.tag is not None or f.owner_id is not None or f.owned_by_me) and not viewer.is_agent:
            raise Forbidden("Only agents filter by tag or owner.")
        queryset = dossiers.filter_dossiers(
            viewer,
            statuses=f.status,
            product_id=parse_id(f.product_id, what="product") if f.product_id else None,
            client_id=parse_id(f.client_id, what="client") if f.client_id else None,
            assigned_to_me=f.assigned_to_me,
            tag=f.tag,
            owner_id=parse_id(f.owner_id, what="agent") if f.owner_id else None,
            owned_by_me=f.owned_by_me,
            reference=f.reference,
        )
        # The page and what its nodes ask for (product, current step and its documents,
        # unread counts …) in one statement; the nested loaders find it primed.
        joined = pages.dossier_page(info, reader="agent" if viewer.is_agent else "client")
        return await paginate(
            queryset,
            first=first,
            after=after,
            last=last,
            before=before,
            order=("-created_at", "-id"),
            fetch=joined.fetch if joined is not None else None,
        )

    @strawberry.field(description="One dossier: yours, or any for agents.")
    async def dossier(self, info: Info, id: strawberry.ID) -> DossierType:
        viewer = await info.context.require_viewer()
        try:
            dossier_id = await dossier_id_of(id)
        except NotFound:
            raise NotFound("No such dossier.") from None
        dossier = await dossiers.get_dossier(viewer, dossier_id)
        # staff views are audited: buffered here, written after the answer
        access_audit.dossier_viewed(viewer, dossier, info.context.origin())
        return row_as(DossierType, dossier)
