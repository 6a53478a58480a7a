"""Per-request dataloaders: every nested field loads through one of these, one query per batch."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from tortoise.functions import Count
from tortoise.models import Model

from app import models as m
from app.db import latest_ids_per_parent, latest_per_parent
from app.models.enums import ActorType
from app.services.desk.owners import workloads
from app.services.messages import message_counts, message_pages
from app.services.progress import progress_of
from app.services.workflow.timeline import timelines

M = TypeVar("M", bound=Model)


def _key(value: Any) -> str:
    return str(value)


class Loader(DataLoader):
    """A DataLoader whose every load goes through a batch, answered when that batch is
    dispatched: a key already loaded (or told in advance with `provide`, e.g. by a page
    read with its nested rows, app.dataloaders.pages) costs no query but still resolves
    with the other keys of its batch. A plain DataLoader hands a cached key back at once,
    ahead of the keys loaded beside it, and the next level's loads then split into two
    batches (two statements for one field)."""

    def __init__(self, load_fn: Any, cache_key_fn: Any = _key) -> None:
        self.known: dict[Any, Any] = {}
        self._loading: dict[Any, asyncio.Future[Any]] = {}
        self._cache_key = cache_key_fn

        async def load(keys: Sequence[Any]) -> list[Any]:
            mine: dict[Any, Any] = {}
            for key in keys:
                c = cache_key_fn(key)
                if c not in self.known and c not in self._loading:
                    mine[c] = key
            if mine:
                loop = asyncio.get_running_loop()
                waiting = {c: loop.create_future() for c in mine}
                self._loading.update(waiting)
                try:
                    values = await load_fn(list(mine.values()))
                except BaseException:
                    for c, future in waiting.items():
                        future.cancel()
                        self._loading.pop(c, None)
                    raise
                for (c, future), value in zip(waiting.items(), values, strict=True):
                    self.known[c] = value
                    future.set_result(value)
                    self._loading.pop(c, None)
            for key in keys:  # keys another batch is loading right now
                c = cache_key_fn(key)
                if c not in self.known:
                    self.known[c] = await self._loading[c]
            return [self.known[cache_key_fn(k)] for k in keys]

        super().__init__(load_fn=load, cache=False)

    def provide(self, key: Any, value: Any) -> None:
        self.known[self._cache_key(key)] = value


def by_id(model: type[M]) -> Loader:
    """Rows by primary key; a missing id loads as None."""

    async def load(keys: Sequence[Any]) -> list[M | None]:
        rows = await model.filter(id__in=list({_key(k) for k in keys}))
        found = {_key(row.pk): row for row in rows}
        return [found.get(_key(k)) for k in keys]

    return Loader(load)


def latest_by(model: type[M], column: str, at: str) -> Loader:
    """The latest `last` rows whose `column` is the key's parent, oldest first; keys are
    (parent id, last). One statement picks each parent's ids (its own LIMIT, however many
    parents: `app.db.latest_per_parent`), one reads them."""

    async def load(keys: Sequence[tuple[Any, int]]) -> list[list[M]]:
        pages = {last for _, last in keys}
        groups: dict[tuple[str, int], list[M]] = {}
        for last in pages:
            parents = list({_key(p) for p, n in keys if n == last})
            ids = await latest_per_parent(model, column, at, parents, last)
            rows = await model.filter(id__in=ids).order_by(at, "id") if ids else []
            for parent in parents:
                groups[(parent, last)] = []
            for row in rows:
                groups[(_key(getattr(row, column)), last)].append(row)
        return [groups.get((_key(p), n), []) for p, n in keys]

    return Loader(load, cache_key_fn=lambda key: (_key(key[0]), key[1]))


def many_by(model: type[M], column: str, *order_by: str) -> Loader:
    """All rows whose `column` (a foreign key's `_id` column) is one of the keys, ordered."""

    async def load(keys: Sequence[Any]) -> list[list[M]]:
        rows = await model.filter(**{f"{column}__in": list({_key(k) for k in keys})}).order_by(
            *(order_by or ("id",))
        )
        groups: dict[str, list[M]] = defaultdict(list)
        for row in rows:
            groups[_key(getattr(row, column))].append(row)
        return [groups.get(_key(k), []) for k in keys]

    return Loader(load)


def product_steps_loader() -> Loader:
    """A product's workflow: its steps in position order, archived steps left out (no new
    dossier runs them). One statement per batch."""

    async def load(keys: Sequence[Any]) -> list[list[m.ProductStep]]:
        rows = await m.ProductStep.filter(
            product_id__in=list({_key(k) for k in keys}), step__archived_at__isnull=True
        ).order_by("position")
        groups: dict[str, list[m.ProductStep]] = defaultdict(list)
        for row in rows:
            groups[_key(row.product_id)].append(row)
        return [groups.get(_key(k), []) for k in keys]

    return Loader(load)


def document_types_by_step_loader() -> Loader:
    """The document types each step asks for (step_document_types), in (position, code)
    order, archived ones left out. One statement per batch."""

    async def load(keys: Sequence[Any]) -> list[list[m.DocumentType]]:
        links = (
            await m.StepDocumentType.filter(
                step_id__in=list({_key(k) for k in keys}),
                document_type__archived_at__isnull=True,
            )
            .select_related("document_type")
            .order_by("position", "document_type__code")
        )
        groups: dict[str, list[m.DocumentType]] = defaultdict(list)
        for link in links:
            groups[_key(link.step_id)].append(link.document_type)
        return [groups.get(_key(k), []) for k in keys]

    return Loader(load)


def timeline_loader() -> DataLoader[tuple[Any, int, Any], list[Any]]:
    """A dossier's timeline, keyed by (dossier id, last, before): one batch per page shape."""

    async def load(keys: Sequence[tuple[Any, int, Any]]) -> list[list[Any]]:
        shapes: dict[tuple[int, Any], list[Any]] = defaultdict(list)
        for dossier_id, last, before in keys:
            shapes[(last, before)].append(dossier_id)
        found: dict[tuple[str, int, Any], list[Any]] = {}
        for (last, before), ids in shapes.items():
            for dossier_id, items in (await timelines(ids, last=last, before=before)).items():
                found[(str(dossier_id), last, before)] = items
        return [found.get((str(d), last, before), []) for d, last, before in keys]

    return DataLoader(load_fn=load, cache_key_fn=lambda k: (str(k[0]), k[1], k[2]))


def unread_messages_loader() -> Loader:
    """Unread chat messages per (dossier id, reader) where reader is "client" (reads the
    agents' and system's messages) or "agent" (reads the client's): one grouped query."""
    senders = {"client": [ActorType.AGENT, ActorType.SYSTEM], "agent": [ActorType.USER]}

    async def load(keys: Sequence[tuple[Any, str]]) -> list[int]:
        found: dict[tuple[str, str], int] = {}
        for reader, wanted in senders.items():
            ids = list({_key(d) for d, r in keys if r == reader})
            if not ids:
                continue
            rows = (
                await m.Message.filter(dossier_id__in=ids, read_at=None, sender_type__in=wanted)
                .annotate(unread=Count("id"))
                .group_by("dossier_id")
                .values("dossier_id", "unread")
            )
            for row in rows:
                found[(_key(row["dossier_id"]), reader)] = int(row["unread"])
        return [found.get((_key(d), r), 0) for d, r in keys]

    return Loader(load, lambda k: (_key(k[0]), k[1]))


def message_pages_loader() -> DataLoader[tuple[Any, int, bool, Any, Any], list[Any]]:
    """A page of each dossier's messages, keyed by (dossier id, size, backwards, after key,
    before key): one statement per page shape for the whole batch."""

    async def load(keys: Sequence[tuple[Any, int, bool, Any, Any]]) -> list[list[Any]]:
        shapes: dict[tuple[int, bool, Any, Any], list[Any]] = defaultdict(list)
        for dossier_id, *shape in keys:
            shapes[tuple(shape)].append(dossier_id)
        found: dict[tuple[str, int, bool, Any, Any], list[Any]] = {}
        for (size, backwards, after, before), ids in shapes.items():
            pages = await message_pages(
                ids, size=size, backwards=backwards, after=after, before=before
            )
            for dossier_id, rows in pages.items():
                found[(dossier_id, size, backwards, after, before)] = rows
        return [found.get((_key(k[0]), *k[1:]), []) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=lambda k: (_key(k[0]), *k[1:]))


def message_counts_loader() -> DataLoader[Any, int]:
    async def load(keys: Sequence[Any]) -> list[int]:
        counts = await message_counts(keys)
        return [counts.get(_key(k), 0) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=_key)


def progress_loader() -> DataLoader[Any, Any]:
    """Each dossier's progress (keyed by the Dossier row): four queries per batch."""

    async def load(keys: Sequence[Any]) -> list[Any]:
        return await progress_of(keys)

    return DataLoader(load_fn=load, cache_key_fn=lambda dossier: _key(dossier.id))


def active_members_loader() -> Loader:
    """A dossier's current members (removed ones left out), in the order they joined."""

    async def load(keys: Sequence[Any]) -> list[list[m.DossierMember]]:
        rows = await m.DossierMember.filter(
            dossier_id__in=list({_key(k) for k in keys}), removed_at=None
        ).order_by("created_at", "id")
        groups: dict[str, list[m.DossierMember]] = defaultdict(list)
        for row in rows:
            groups[_key(row.dossier_id)].append(row)
        return [groups.get(_key(k), []) for k in keys]

    return Loader(load)


def shared_file_pages_loader() -> DataLoader[tuple[Any, int], list[Any]]:
    """The first `size` files shared with each dossier (oldest first), keyed by (dossier
    id, size): one statement for the batch, each dossier's LIMIT kept."""

    async def load(keys: Sequence[tuple[Any, int]]) -> list[list[Any]]:
        sizes: dict[int, list[Any]] = defaultdict(list)
        for dossier_id, size in keys:
            sizes[size].append(dossier_id)
        found: dict[tuple[str, int], list[Any]] = {}
        for size, dossier_ids in sizes.items():
            ids = await latest_ids_per_parent(
                '"shared_files" t', 't."dossier_id"', 't."created_at"', dossier_ids, size,
                oldest=True,
            )  # fmt: skip
            rows = await m.SharedFile.filter(id__in=ids).order_by("created_at", "id") if ids else []
            for row in rows:
                found.setdefault((_key(row.dossier_id), size), []).append(row)
        return [found.get((_key(k[0]), k[1]), []) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=lambda k: (_key(k[0]), k[1]))


def shared_file_counts_loader() -> DataLoader[Any, int]:
    async def load(keys: Sequence[Any]) -> list[int]:
        rows = (
            await m.SharedFile.filter(dossier_id__in=list({_key(k) for k in keys}))
            .group_by("dossier_id")
            .annotate(n=Count("id"))
            .values("dossier_id", "n")
        )
        counts = {_key(r["dossier_id"]): int(r["n"]) for r in rows}
        return [counts.get(_key(k), 0) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=_key)


def note_pages_loader() -> DataLoader[tuple[Any, int], list[Any]]:
    """The newest `size` internal notes of each dossier, keyed by (dossier id, size): one
    statement for the batch, each dossier's LIMIT kept (idx_dossier_notes_dossier)."""

    async def load(keys: Sequence[tuple[Any, int]]) -> list[list[Any]]:
        sizes: dict[int, list[Any]] = defaultdict(list)
        for dossier_id, size in keys:
            sizes[size].append(dossier_id)
        found: dict[tuple[str, int], list[Any]] = {}
        for size, dossier_ids in sizes.items():
            ids = await latest_ids_per_parent(
                '"dossier_notes" t', 't."dossier_id"', 't."created_at"', dossier_ids, size
            )
            rows = (
                await m.DossierNote.filter(id__in=ids).order_by("-created_at", "-id") if ids else []
            )
            for row in rows:
                found.setdefault((_key(row.dossier_id), size), []).append(row)
        return [found.get((_key(k[0]), k[1]), []) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=lambda k: (_key(k[0]), k[1]))


def counts_by(model: type[M], column: str) -> DataLoader[Any, int]:
    """How many rows of `model` each key (a foreign key's `_id` column value) has."""

    async def load(keys: Sequence[Any]) -> list[int]:
        rows = (
            await model.filter(**{f"{column}__in": list({_key(k) for k in keys})})
            .group_by(column)
            .annotate(n=Count("id"))
            .values(column, "n")
        )
        counts = {_key(r[column]): int(r["n"]) for r in rows}
        return [counts.get(_key(k), 0) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=_key)


def workload_loader() -> DataLoader[Any, Any]:
    """Each agent's workload (app.services.desk.owners): one statement per batch."""

    async def load(keys: Sequence[Any]) -> list[Any]:
        found = await workloads(keys)
        return [found.get(uuid.UUID(_key(k))) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=_key)


def one_by(model: type[M], column: str) -> DataLoader[Any, M | None]:
    """The row whose unique `column` equals the key."""

    async def load(keys: Sequence[Any]) -> list[M | None]:
        rows = await model.filter(**{f"{column}__in": list({_key(k) for k in keys})})
        found = {_key(getattr(row, column)): row for row in rows}
        return [found.get(_key(k)) for k in keys]

    return DataLoader(load_fn=load, cache_key_fn=_key)


class Loaders:
    """Built per operation (see `app.schema.extensions.FreshLoaders`), made on first use:
    an operation that loads nothing (most subscriptions, most mutations) never pays for
    the ~25 loaders (~75 us and ~220 objects for the garbage collector to scan again and
    again while a WebSocket stays open)."""

    def __getattr__(self, name: str) -> Any:
        # Only reached for an attribute not set yet: build every loader, then answer.
        if name.startswith("__") or "agent" in self.__dict__:
            raise AttributeError(name)
        self._build()
        return object.__getattribute__(self, name)

    def _build(self) -> None:
        self.agent = by_id(m.Agent)
        self.profile = by_id(m.Profile)
        self.product = by_id(m.Product)
        self.step = by_id(m.Step)
        self.document_type = by_id(m.DocumentType)
        self.step_instance = by_id(m.StepInstance)
        self.document_version = by_id(m.DocumentVersion)
        self.document = by_id(m.Document)
        self.dossier = by_id(m.Dossier)
        self.member = by_id(m.DossierMember)
        self.members_by_dossier = active_members_loader()
        self.shared_file_pages = shared_file_pages_loader()
        self.shared_file_counts = shared_file_counts_loader()
        self.note_pages = note_pages_loader()
        self.note_counts = counts_by(m.DossierNote, "dossier_id")
        self.tags_by_dossier = many_by(m.DossierTag, "dossier_id", "name")
        self.workload = workload_loader()
        self.versions_by_document = latest_by(m.DocumentVersion, "document_id", "version_number")
        self.reviews_by_version = latest_by(m.DocumentReview, "document_version_id", "reviewed_at")
        self.timeline = timeline_loader()
        self.credential_by_profile = one_by(m.Credential, "profile_id")
        self.unread_messages = unread_messages_loader()
        self.message_pages = message_pages_loader()
        self.message_counts = message_counts_loader()
        self.product_steps_by_product = product_steps_loader()
        self.document_types_by_step = document_types_by_step_loader()
        self.step_instances_by_dossier = many_by(m.StepInstance, "dossier_id", "position")
        self.documents_by_dossier = many_by(m.Document, "dossier_id", "created_at", "id")
        self.documents_by_step_instance = many_by(
            m.Document, "step_instance_id", "created_at", "id"
        )
        self.status_history_by_dossier = latest_by(
            m.DossierStatusHistory, "dossier_id", "created_at"
        )
        self.progress = progress_loader()
        self.notification = by_id(m.Notification)
        self.deliveries_by_notification = many_by(
            m.NotificationDelivery, "notification_id", "created_at", "channel"
        )
