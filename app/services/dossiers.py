"""Who sees which dossier (SPEC §3): clients their own and those they are a member of,
agents all."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from app.compat.tortoise import AnyOf
from app.db import is_postgres
from app.domain.viewer import Viewer
from app.errors import Forbidden, NotFound
from app.models import Dossier, DossierMember, StepInstance
from app.models.enums import DossierStatus
from app.services.desk.tags import tagged


def visible_dossiers(viewer: Viewer) -> QuerySet[Dossier]:
    """Agents all; a client the dossiers they own and those they are a member of."""
    if viewer.is_agent:
        return Dossier.all()
    if viewer.profile is not None:
        mine = DossierMember.filter(profile_id=viewer.profile.id, removed_at=None).values(
            "dossier_id"
        )
        # On PostgreSQL `id = ANY(ARRAY(…))`: the memberships are read once (an InitPlan)
        # and the OR stays a BitmapOr of two index scans (user_id, the primary key); with
        # `IN (subquery)` it would be a filter over every dossier of the years.
        member_of = Q(id=AnyOf(mine)) if is_postgres() else Q(id__in=Subquery(mine))
        return Dossier.filter(Q(user_id=viewer.profile.id) | member_of)
    raise Forbidden()


async def membership(viewer: Viewer, dossier: Dossier) -> DossierMember | None:
    """The viewer's active membership of `dossier` (None for its owner, agents, others)."""
    if viewer.profile is None or dossier.user_id == viewer.profile.id:
        return None
    return await DossierMember.filter(
        dossier_id=dossier.id, profile_id=viewer.profile.id, removed_at=None
    ).first()


async def is_party(viewer: Viewer, dossier: Dossier) -> bool:
    """Whether the viewer may see `dossier`: an agent, its client, or a member."""
    if viewer.is_agent:
        return True
    if viewer.profile is None:
        return False
    return dossier.user_id == viewer.profile.id or await membership(viewer, dossier) is not None


def filter_dossiers(
    viewer: Viewer,
    *,
    statuses: Sequence[DossierStatus] | None = None,
    product_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    assigned_to_me: bool = False,
    tag: str | None = None,
    owner_id: uuid.UUID | None = None,
    owned_by_me: bool = False,
    reference: str | None = None,
) -> QuerySet[Dossier]:
    queryset = visible_dossiers(viewer)
    if reference is not None:  # a case number, whatever its case (unique: one at most)
        queryset = queryset.filter(reference=reference.strip().upper())
    if statuses:
        queryset = queryset.filter(status__in=list(statuses))
    if product_id is not None:
        queryset = queryset.filter(product_id=product_id)
    if client_id is not None:
        queryset = queryset.filter(user_id=client_id)
    if assigned_to_me:
        if viewer.agent is None:
            raise Forbidden("Only agents have assignments.")
        # A subquery, not a join: a dossier with several of my steps comes back once. On
        # PostgreSQL `id = ANY(ARRAY(…))`: my steps' dossiers are read once (index on
        # assigned_to) and probed by primary key; `IN (…)` is planned as a hash semi-join
        # over every dossier, which the years make 100,000 rows for a few thousand.
        mine = StepInstance.filter(assigned_to_id=viewer.agent.id).values("dossier_id")
        if is_postgres():
            queryset = queryset.filter(id=AnyOf(mine))
        else:
            queryset = queryset.filter(id__in=Subquery(mine))
    if tag is not None or owner_id is not None or owned_by_me:  # the agents' desk (issue 19)
        if viewer.agent is None:
            raise Forbidden("Only agents filter by tag or owner.")
        if tag is not None:
            queryset = tagged(queryset, tag)
        if owner_id is not None:
            queryset = queryset.filter(owner_id=owner_id)
        if owned_by_me:
            queryset = queryset.filter(owner_id=viewer.agent.id)
    return queryset


async def get_dossier(viewer: Viewer, dossier_id: uuid.UUID) -> Dossier:
    """The dossier, or NotFound — also when it exists but is someone else's."""
    dossier = await visible_dossiers(viewer).filter(id=dossier_id).first()
    if dossier is None:
        raise NotFound("No such dossier.")
    return dossier
