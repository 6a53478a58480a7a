"""The people of a dossier besides its client: co-applicants, associates, a spouse or
children, each a client profile invited by e-mail (issue 18)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel

if TYPE_CHECKING:
    from app.models.dossiers import Dossier
    from app.models.profiles import Profile

# The roles a member may have when the product names none (Product.member_roles).
DEFAULT_MEMBER_ROLES = ("CO_APPLICANT", "SPOUSE", "CHILD", "ASSOCIATE")


class DossierMember(CreatedModel):
    """One person's part in a dossier. Removing a member ends their access (removed_at),
    and the row stays, with the documents they sent."""

    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="members", on_delete=fields.CASCADE
    )
    profile: fields.ForeignKeyRelation[Profile] = fields.ForeignKeyField(
        "models.Profile", related_name="memberships", on_delete=fields.CASCADE
    )
    role = fields.CharField(max_length=64)
    removed_at = fields.DatetimeField(null=True)

    dossier_id: uuid.UUID
    profile_id: uuid.UUID

    class Meta:
        table = "dossier_members"
        indexes = (
            Index(fields=("dossier_id",), name="idx_dossier_members_dossier_id"),
            # Which dossiers a client sees as a member: read on every dossier access
            # (and what deleting a profile looks up).
            Index(fields=("profile_id", "dossier_id"), name="idx_dossier_members_profile"),
        )
