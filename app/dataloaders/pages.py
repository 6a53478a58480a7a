"""A page of rows read together with what its nested fields will ask for, in ONE statement.

The per-field loaders batch one query per nested field (the product, the current step, its
step, its documents, their types, their current versions …): a dossier list costs one
statement per level of nesting. Here the paginated query becomes a subquery, joined with
the rows the selection asks for (one-to-one joins, and at most one one-to-many join whose
rows repeat the page row); every joined row is handed to its per-request loader with
`provide`, so the nested loads find it and run no query. Whatever the selection
does not ask for is neither joined nor provided, and still loads through its loader.

Portable SQL (PostgreSQL and SQLite); rows are hydrated by the ORM itself (`from_row`),
so values come out exactly as the loaders would have returned them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField
from tortoise import connections
from tortoise.models import Model
from tortoise.queryset import QuerySet

from app import models as m
from app.compat.tortoise import columns, from_row, queryset_sql, table
from app.db import aliased_columns, is_postgres

Tree = dict[str, "Tree"]


def _fields(selections: Sequence[Any]) -> list[SelectedField]:
    out: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            out.append(selection)
        elif isinstance(selection, FragmentSpread | InlineFragment):
            out += _fields(selection.selections)
    return out


def _merge(into: Tree, selections: Sequence[Any]) -> Tree:
    for selected in _fields(selections):
        _merge(into.setdefault(selected.name, {}), selected.selections)
    return into


def node_selection(info: Any) -> Tree:
    """The fields asked for each node of a connection (under `nodes` and `edges.node`),
    as a tree of field names."""
    tree: Tree = {}
    for connection in _fields(info.selected_fields):
        for part in _fields(connection.selections):
            if part.name == "nodes":
                _merge(tree, part.selections)
            elif part.name == "edges":
                for edge_part in _fields(part.selections):
                    if edge_part.name == "node":
                        _merge(tree, edge_part.selections)
    return tree


def _columns(model: type[Model]) -> list[str]:
    return list(columns(model).values())


@dataclass
class Joined:
    """One page row with the rows joined to it."""

    row: Model
    one: dict[str, Model | None] = field(default_factory=dict)
    many: list[dict[str, Model | None]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Join:
    alias: str
    model: type[Model]
    on: str
    many: bool


class JoinedPage:
    """Builds the one statement: `page` (alias "b") joined with what was asked for.

    `join(alias, model, on)` adds a to-one LEFT JOIN (`on` in SQL, over quoted aliases);
    `join_many(...)` the one to-many LEFT JOIN (its rows, in `order`, then carry the
    to-one joins declared after it with `under_many=True`); `extra(name, sql)` a scalar
    subquery; `then(fn)` a callback run on every `Joined` once the page is read.
    """

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self._joins: list[_Join] = []
        self._many_order: list[str] = []
        self._extras: list[tuple[str, str]] = []
        self._then: list[Callable[[Joined], None]] = []
        self._many_alias: str | None = None

    @property
    def empty(self) -> bool:
        return not (self._joins or self._extras)

    def join(self, alias: str, model: type[Model], on: str, *, under_many: bool = False) -> None:
        self._joins.append(_Join(alias, model, on, under_many))

    def join_many(self, alias: str, model: type[Model], on: str, order: Sequence[str]) -> None:
        if self._many_alias is not None:
            raise ValueError("one to-many join per page")  # a cartesian product otherwise
        self._many_alias = alias
        self._joins.append(_Join(alias, model, on, True))
        self._many_order = [f'"{alias}"."{c}"' for c in order]

    def join_provided(
        self, alias: str, model: type[Model], on: str, loader: Any, *, parent: str = "b", name: str
    ) -> None:
        """A to-one join whose row is attached to its parent (`parent`'s alias) as `name`
        and provided to `loader`."""
        self.join(alias, model, on)
        self.then(provider(loader, alias, parent=parent, name=name))

    def extra(self, name: str, sql: str) -> None:
        self._extras.append((name, sql))

    def then(self, fn: Callable[[Joined], None]) -> None:
        self._then.append(fn)

    def _sql(self, queryset: QuerySet, ordering: Sequence[str]) -> tuple[str, list[Any]]:
        inner, params = queryset_sql(queryset)
        select = ['"b".*']
        for join in self._joins:
            select += aliased_columns(join.alias, join.model)
        if self._extras:  # once per page row, before the to-many join repeats it
            extras = ", ".join(f'{sql} AS "x__{name}"' for name, sql in self._extras)
            # An empty OFFSET keeps the planner from pulling these subqueries up into the
            # outer query, where they would run once per joined row (a dossier's count of
            # unread messages once per document of its step) instead of once per page row.
            fence = "OFFSET 0" if is_postgres() else "LIMIT -1 OFFSET 0"
            inner = f'SELECT "b".*, {extras} FROM ({inner}) AS "b" {fence}'
        joins = [f'LEFT JOIN "{table(j.model)}" AS "{j.alias}" ON {j.on}' for j in self._joins]
        order = [
            f'"b"."{name.lstrip("-")}" {"DESC" if name.startswith("-") else "ASC"}'
            for name in ordering
        ]
        sql = (
            f'SELECT {", ".join(select)} FROM ({inner}) AS "b" {" ".join(joins)} '
            f"ORDER BY {', '.join(order + self._many_order)}"
        )
        return sql, params

    async def fetch(self, queryset: QuerySet, ordering: Sequence[str]) -> list[Model]:
        """The page's rows, in `ordering` (the order the paginated queryset uses)."""
        sql, params = self._sql(queryset, ordering)
        rows = await connections.get("default").execute_query_dict(sql, params)
        # A joined row is hydrated once per statement: the to-one joins repeat on every row
        # of the to-many join, and the same product, step or document type comes back for
        # many page rows (one instance each, as the per-request loaders would hand out).
        joins = [
            (
                join,
                f"{join.alias}__id",
                [(c, f"{join.alias}__{c}") for c in _columns(join.model)],
            )
            for join in self._joins
        ]
        hydrated: dict[tuple[type[Model], Any], Model] = {}
        pages: dict[Any, Joined] = {}
        for row in rows:
            key = row["id"]
            joined = pages.get(key)
            first = joined is None
            if joined is None:
                joined = pages[key] = Joined(from_row(self.model, row))
                joined.extra = {name: row[f"x__{name}"] for name, _ in self._extras}
            many: dict[str, Model | None] = {}
            for join, id_column, names in joins:
                if not (join.many or first):
                    continue  # the page row's own to-one joins: read on its first row
                pk = row[id_column]
                if pk is None:
                    value = None
                else:
                    value = hydrated.get((join.model, pk))
                    if value is None:
                        value = hydrated[(join.model, pk)] = from_row(
                            join.model, {c: row[column] for c, column in names}
                        )
                if join.many:
                    many[join.alias] = value
                else:
                    joined.one[join.alias] = value
            if self._many_alias is not None and many.get(self._many_alias) is not None:
                joined.many.append(many)
        for joined in pages.values():
            for fn in self._then:
                fn(joined)
        return [joined.row for joined in pages.values()]


MISSING: Any = object()


def attach(row: Any, **values: Any) -> None:
    """Hand `row` the objects its nested fields will ask for (see `prefetched`)."""
    known = getattr(row, "_joined", None)
    if known is None:
        known = {}
        object.__setattr__(row, "_joined", known)
    known.update(values)


def prefetched(row: Any, name: str) -> Any:
    """What `attach` gave `row` under `name` (None included), else MISSING. A resolver
    that finds it answers at once, synchronously: no coroutine, no loader batch."""
    known = getattr(row, "_joined", None)
    return MISSING if known is None else known.get(name, MISSING)


def or_load(row: Any, name: str, load: Callable[[], Any]) -> Any:
    """The prefetched value, else `load()` (an awaitable, which GraphQL awaits)."""
    found = prefetched(row, name)
    return load() if found is MISSING else found


def provider(
    loader: Any, alias: str, parent: str = "b", name: str = ""
) -> Callable[[Joined], None]:
    """Attach a to-one joined row to its parent (`name`), and provide its by-id loader."""

    def prime(joined: Joined) -> None:
        row = joined.one.get(alias)
        if name:
            owner = joined.row if parent == "b" else joined.one.get(parent)
            if owner is not None:
                attach(owner, **{name: row})
        if row is not None:
            loader.provide(row.pk, row)

    return prime


def many_provider(
    loader: Any, alias: str, name: str = ""
) -> Callable[[dict[str, Model | None]], None]:
    """For a row of the to-many join: attach its joined row to the document (`name`)."""

    def prime(item: dict[str, Model | None]) -> None:
        row = item.get(alias)
        if name and item.get("doc") is not None:
            attach(item["doc"], **{name: row})
        if row is not None:
            loader.provide(row.pk, row)

    return prime


# --- the plans: what each list joins, from its selection -------------------------------


def fast_paths(info: Any) -> bool:
    """Whether the schema runs with the shortcuts (FAST_PATHS): without them no page is
    joined and every nested field loads through its loader."""
    return getattr(info.schema, "fast_paths", True)


UNREAD_SENDERS = {"client": ("AGENT", "SYSTEM"), "agent": ("USER",)}


def dossier_page(info: Any, reader: str) -> JoinedPage | None:
    """A page of dossiers with the product, client, current step (its step, assignee,
    documents, their types and current versions) and unread count the query asks for.
    `reader` is "client" or "agent" (whose unread messages are counted)."""
    if not fast_paths(info):
        return None
    tree = node_selection(info)
    loaders = info.context.loaders
    page = JoinedPage(m.Dossier)
    if "product" in tree:
        page.join_provided(
            "p", m.Product, '"p"."id" = "b"."product_id"', loaders.product, name="product"
        )
    if "client" in tree:
        page.join_provided(
            "c", m.Profile, '"c"."id" = "b"."user_id"', loaders.profile, name="client"
        )
    if "currentStep" in tree:
        step = tree["currentStep"]
        on = '"si"."id" = "b"."current_step_instance_id"'
        page.join_provided("si", m.StepInstance, on, loaders.step_instance, name="current_step")
        _step_details(page, step, loaders)
        if "documents" in step:
            documents = step["documents"]
            page.join_many(
                "doc", m.Document, '"doc"."step_instance_id" = "si"."id"', ("created_at", "id")
            )
            each = [many_provider(loaders.document, "doc")]
            if "documentType" in documents:
                page.join(
                    "dt", m.DocumentType, '"dt"."id" = "doc"."document_type_id"', under_many=True
                )
                each.append(many_provider(loaders.document_type, "dt", name="document_type"))
            if "currentVersion" in documents:
                page.join(
                    "v", m.DocumentVersion, '"v"."id" = "doc"."current_version_id"', under_many=True
                )
                each.append(many_provider(loaders.document_version, "v", name="current_version"))

            def prime_documents(joined: Joined) -> None:
                instance = joined.one.get("si")
                if instance is None:
                    return
                documents = [item["doc"] for item in joined.many]
                attach(instance, documents=documents)
                loaders.documents_by_step_instance.provide(instance.pk, documents)
                for item in joined.many:
                    for fn in each:
                        fn(item)

            page.then(prime_documents)
    if "unreadMessageCount" in tree:
        senders = ", ".join(f"'{s}'" for s in UNREAD_SENDERS[reader])
        page.extra(
            "unread",
            '(SELECT COUNT(*) FROM "messages" AS "um" WHERE "um"."dossier_id" = "b"."id" '
            f'AND "um"."read_at" IS NULL AND "um"."sender_type" IN ({senders}))',
        )

        def prime_unread(joined: Joined) -> None:
            count = int(joined.extra["unread"])
            attach(joined.row, unread_message_count=count)
            loaders.unread_messages.provide((joined.row.pk, reader), count)

        page.then(prime_unread)
    return None if page.empty else page


def review_queue_page(info: Any) -> JoinedPage | None:
    """A page of the review queue (document versions) with its document, dossier (client,
    product), step instance (step, assignee) and document type, as the query asks."""
    if not fast_paths(info):
        return None
    tree = node_selection(info)
    loaders = info.context.loaders
    page = JoinedPage(m.DocumentVersion)
    wants_document = {"document", "dossier", "stepInstance"} & set(tree)
    if not wants_document:
        return None
    page.join_provided(
        "doc", m.Document, '"doc"."id" = "b"."document_id"', loaders.document, name="document"
    )
    if "documentType" in tree.get("document", {}):
        on = '"dt"."id" = "doc"."document_type_id"'
        page.join_provided(
            "dt", m.DocumentType, on, loaders.document_type, parent="doc", name="document_type"
        )
    if "dossier" in tree:
        dossier = tree["dossier"]
        page.join_provided(
            "d", m.Dossier, '"d"."id" = "doc"."dossier_id"', loaders.dossier, name="dossier"
        )
        if "client" in dossier:
            on = '"c"."id" = "d"."user_id"'
            page.join_provided("c", m.Profile, on, loaders.profile, parent="d", name="client")
        if "product" in dossier:
            on = '"p"."id" = "d"."product_id"'
            page.join_provided("p", m.Product, on, loaders.product, parent="d", name="product")
    if "stepInstance" in tree:
        on = '"si"."id" = "doc"."step_instance_id"'
        page.join_provided("si", m.StepInstance, on, loaders.step_instance, name="step_instance")
        _step_details(page, tree["stepInstance"], loaders)
    return page


def _step_details(page: JoinedPage, selected: Tree, loaders: Any) -> None:
    """The step and assignee of the step instance joined as "si", as `selected` asks."""
    if "step" in selected:
        page.join_provided(
            "s", m.Step, '"s"."id" = "si"."step_id"', loaders.step, parent="si", name="step"
        )
    if "assignedTo" in selected:
        on = '"a"."id" = "si"."assigned_to"'
        page.join_provided("a", m.Agent, on, loaders.agent, parent="si", name="assigned_to")
