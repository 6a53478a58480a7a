"""Case numbers (issue 19): the per-year counter behind `dossiers.reference`."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class DossierSequence(Model):
    """The last case number given in one year. One row per year, bumped by an upsert
    (`INSERT … ON CONFLICT … DO UPDATE … RETURNING`) in the transaction that creates the
    dossier: the row stays locked until that transaction ends, so two dossiers never get
    one number, and a rolled-back creation gives its number back with its dossier (no
    reference is ever handed out twice)."""

    year = fields.IntField(primary_key=True, generated=False, unique=True, db_index=True)
    last_value = fields.IntField()

    class Meta:
        table = "dossier_sequences"
