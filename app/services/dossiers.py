"""Who sees which dossier (SPEC §3): clients their own, agents all."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from app.domain.viewer import Viewer
from app.errors import Forbidden, NotFound
from app.models import Dossier, StepInstance
from app.models.enums import DossierStatus


def visible_dossiers(viewer: Viewer) -> QuerySet[Dossier]:
    if viewer.is_agent:
        return Dossier.all()
    if viewer.profile is not None:
        return Dossier.filter(user_id=viewer.profile.id)
    raise Forbidden()


def filter_dossiers(
    viewer: Viewer,
    *,
    statuses: Sequence[DossierStatus] | None = None,
    product_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    assigned_to_me: bool = False,
) -> QuerySet[Dossier]:
    queryset = visible_dossiers(viewer)
    if statuses:
        queryset = queryset.filter(status__in=list(statuses))
    if product_id is not None:
        queryset = queryset.filter(product_id=product_id)
    if client_id is not None:
        queryset = queryset.filter(user_id=client_id)
    if assigned_to_me:
        if viewer.agent is None:
            raise Forbidden("Only agents have assignments.")
        # A subquery, not a join: a dossier with several of my steps comes back once.
        # (Tortoise cannot take a bare ValuesQuery in `__in`: wrap it in Subquery.)
        mine = StepInstance.filter(assigned_to_id=viewer.agent.id).values("dossier_id")
        queryset = queryset.filter(id__in=Subquery(mine))
    return queryset


async def get_dossier(viewer: Viewer, dossier_id: uuid.UUID) -> Dossier:
    """The dossier, or NotFound — also when it exists but is someone else's."""
    dossier = await visible_dossiers(viewer).filter(id=dossier_id).first()
    if dossier is None:
        raise NotFound("No such dossier.")
    return dossier
