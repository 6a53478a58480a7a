"""Per-request dataloaders: every nested field loads through one of these, one query per batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from tortoise.models import Model

from app import models as m

M = TypeVar("M", bound=Model)


def _key(value: Any) -> str:
    return str(value)


def by_id(model: type[M]) -> DataLoader[Any, M | None]:
    """Rows by primary key; a missing id loads as None."""

    async def load(keys: Sequence[Any]) -> list[M | None]:
        rows = await model.filter(id__in=list({_key(k) for k in keys}))
        found = {_key(row.pk): row for row in rows}
        return [found.get(_key(k)) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=_key)


def many_by(model: type[M], column: str, *order_by: str) -> DataLoader[Any, list[M]]:
    """All rows whose `column` (a foreign key's `_id` column) is one of the keys, ordered."""

    async def load(keys: Sequence[Any]) -> list[list[M]]:
        rows = await model.filter(**{f"{column}__in": list({_key(k) for k in keys})}).order_by(
            *(order_by or ("id",))
        )
        groups: dict[str, list[M]] = defaultdict(list)
        for row in rows:
            groups[_key(getattr(row, column))].append(row)
        return [groups.get(_key(k), []) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=_key)


def one_by(model: type[M], column: str) -> DataLoader[Any, M | None]:
    """The row whose unique `column` equals the key."""

    async def load(keys: Sequence[Any]) -> list[M | None]:
        rows = await model.filter(**{f"{column}__in": list({_key(k) for k in keys})})
        found = {_key(getattr(row, column)): row for row in rows}
        return [found.get(_key(k)) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=_key)


class Loaders:
    """Built per operation (see `app.schema.extensions.FreshLoaders`)."""

    def __init__(self) -> None:
        self.agent = by_id(m.Agent)
        self.profile = by_id(m.Profile)
        self.product = by_id(m.Product)
        self.step = by_id(m.Step)
        self.document_type = by_id(m.DocumentType)
        self.step_instance = by_id(m.StepInstance)
        self.document_version = by_id(m.DocumentVersion)
        self.credential_by_profile = one_by(m.Credential, "profile_id")
        self.product_steps_by_product = many_by(m.ProductStep, "product_id", "position")
        self.document_types_by_step = many_by(m.DocumentType, "required_step_id", "code")
        self.step_instances_by_dossier = many_by(m.StepInstance, "dossier_id", "position")
        self.documents_by_dossier = many_by(m.Document, "dossier_id", "created_at", "id")
        self.documents_by_step_instance = many_by(
            m.Document, "step_instance_id", "created_at", "id"
        )
        self.status_history_by_dossier = many_by(
            m.DossierStatusHistory, "dossier_id", "created_at", "id"
        )
