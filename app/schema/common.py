"""Shared GraphQL shapes: IDs, user errors, Relay connections over querysets."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any, Generic, TypeVar, cast

import orjson
import strawberry
from tortoise import fields as tf
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from app.errors import BadUserInput, DomainError, NotFound, ValidationFailed
from app.services.references import dossier_key
from app.settings import get_settings

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 20


def gid(value: Any) -> strawberry.ID:
    return strawberry.ID(str(value))


def row_as(_type: type[T], row: object, /) -> T:
    """A model row (or a live stand-in for one), typed as `_type`: the strawberry type it is
    the root value of, or, in such a type's resolvers, the model that `self` really is.
    Strawberry resolves a type's fields on whatever root value it is handed, so the row
    itself is the GraphQL object (its columns are the plain fields, the type's resolvers
    read the rest from it). A cast, for mypy."""
    return cast(T, row)


def parse_id(value: str | None, *, what: str = "object") -> uuid.UUID:
    """A client-supplied ID; a malformed one answers exactly like a missing one."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"No such {what}.") from None


async def dossier_id_of(value: str | None) -> uuid.UUID:
    """A client-supplied dossier ID or case number (`PV-2026-000123`), read the same way
    by every root field and input that takes a dossier: an unknown or malformed one answers
    exactly like a missing id (app.services.references.dossier_key)."""
    return await dossier_key(value)


@strawberry.interface(description="An expected failure of a mutation, reported in its payload.")
class UserError:
    field: list[str] | None = strawberry.field(
        description="Path to the input field at fault, when one is."
    )
    message: str


def user_errors(error: DomainError, error_type: type, code_enum: type[Enum]) -> list[Any]:
    errors = error.errors if isinstance(error, ValidationFailed) else [error]
    return [error_type(field=e.field, message=e.message, code=code_enum(e.code)) for e in errors]


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Nodes of this page, without cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="Items across all pages (one extra query, asked only if read).")
    async def total_count(self) -> int:
        return await self._count()


def _encode(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, dt.datetime) else str(v) for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).decode()


def _decode(cursor: str, model: Any, order: Sequence[str]) -> list[Any]:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(raw, list) or len(raw) != len(order):
            raise ValueError("shape")
        values: list[Any] = []
        for name, value in zip(order, raw, strict=True):
            field = model._meta.fields_map[name.lstrip("-")]
            if isinstance(field, tf.DatetimeField):
                parsed = dt.datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError("naive")
                values.append(parsed)
            elif isinstance(field, tf.DateField):
                values.append(dt.date.fromisoformat(value))
            elif isinstance(field, tf.UUIDField):
                values.append(uuid.UUID(value))
            elif isinstance(field, tf.IntField):
                values.append(int(value))
            else:
                values.append(str(value))
        return values
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise BadUserInput("Invalid cursor.") from None


def _keyset(order: Sequence[str], values: Sequence[Any], *, after: bool) -> Q:
    """Rows strictly after (or before) `values` in `order`: (a > x) or (a = x and b > y) ..."""
    clauses = []
    for i, name in enumerate(order):
        column = name.lstrip("-")
        ascending = not name.startswith("-")
        op = "gt" if ascending == after else "lt"
        equal = {order[j].lstrip("-"): values[j] for j in range(i)}
        clauses.append(Q(**equal, **{f"{column}__{op}": values[i]}))
    return Q(*clauses, join_type="OR")


def _flip(order: Sequence[str]) -> list[str]:
    return [name[1:] if name.startswith("-") else f"-{name}" for name in order]


async def paginate(
    queryset: QuerySet,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    order: Sequence[str] = ("created_at", "id"),
    fetch: Callable[[QuerySet, Sequence[str]], Awaitable[list[Any]]] | None = None,
) -> Connection[Any]:
    """One query for the page (+1 row to know if there is more); the count only if asked.
    `fetch` reads the ordered, limited queryset instead of awaiting it (e.g. a
    `app.dataloaders.pages.JoinedPage` reading the page with its nested rows)."""
    size, backwards = page_size(first, last)
    model = queryset.model
    base = queryset
    if after:
        queryset = queryset.filter(_keyset(order, _decode(after, model, order), after=True))
    if before:
        queryset = queryset.filter(_keyset(order, _decode(before, model, order), after=False))
    ordering = _flip(order) if backwards else list(order)
    page = queryset.order_by(*ordering).limit(size + 1)
    rows = list(await (fetch(page, ordering) if fetch is not None else page))
    return page_of(
        rows,
        size,
        backwards=backwards,
        after=after,
        before=before,
        cursor=lambda row: _encode([getattr(row, n.lstrip("-")) for n in order]),
        count=base.count,
    )


def page_size(first: int | None, last: int | None) -> tuple[int, bool]:
    """(rows wanted, backwards) for `first`/`last`, each within 0..MAX_PAGE_SIZE."""
    cap = get_settings().max_page_size
    if first is not None and last is not None:
        raise BadUserInput("Pass either `first` or `last`, not both.")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= cap:
            raise BadUserInput(f"`{name}` must be between 0 and {cap}.")
    if last is not None:
        return last, True
    return (first if first is not None else DEFAULT_PAGE_SIZE), False


def list_page(last: int) -> int:
    """A plain list's `last`, within 0..MAX_PAGE_SIZE (what the node budget counts)."""
    return page_size(None, last)[0]


def page_of(
    rows: list[Any],
    size: int,
    *,
    backwards: bool,
    after: str | None,
    before: str | None,
    cursor: Callable[[Any], str],
    count: Callable[[], Awaitable[int]],
) -> Connection[Any]:
    """The connection of a page read with one row more than `size` (to know if there is
    more), in reading order (newest first when `backwards`)."""
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    edges = [Edge(cursor=cursor(row), node=row) for row in rows]
    page_info = PageInfo(
        has_next_page=more if not backwards else before is not None,
        has_previous_page=more if backwards else after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )
    return Connection(edges=edges, page_info=page_info, _count=count)


async def first_page_by(
    pages: Any, counts: Any, parent_id: Any, first: int | None
) -> Connection[Any]:
    """The first page (newest first, keyed by created_at and id) of a parent's rows read
    through its batched loaders: `pages` answers (parent, size + 1) -> rows, `counts`
    parent -> total; one statement each for all the parents of a list."""
    size, _ = page_size(first, None)
    rows = list(await pages.load((parent_id, size + 1)))

    async def count() -> int:
        return cast(int, await counts.load(parent_id))

    return page_of(
        rows,
        size,
        backwards=False,
        after=None,
        before=None,
        cursor=lambda row: _encode([row.created_at, row.id]),
        count=count,
    )
