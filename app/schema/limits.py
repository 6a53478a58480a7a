"""Limits that refuse abusive operations before anything runs (beyond strawberry's depth,
alias and token limiters): directives per document, a GitHub-style node budget, and text
holding the NUL character.

Node budget: every connection field costs `first`/`last` (or the default page size) times
the number of parents it can be fetched under, and so does a plain list with a page
argument; any other list of objects costs its real bound (app/schema/list_bounds.py: the
live catalogue's largest product for a dossier's steps, a setting for a message's
attachments); the sum over the operation must stay under `max_nodes`. `first`/`last` over
the page cap are refused by the connection itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from graphql import (
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValidationRule,
    Visitor,
    get_named_type,
    value_from_ast_untyped,
    visit,
)
from strawberry.extensions import AddValidationRules, SchemaExtension

from app.compat.strawberry import graphql_schema
from app.schema.common import DEFAULT_PAGE_SIZE
from app.schema.list_bounds import (
    CATALOGUE_LISTS,
    catalogue_list_bound,
    is_counted_elsewhere,
    static_list_bounds,
)
from app.services.catalogue_bounds import CatalogueBounds, catalogue_bounds

logger = logging.getLogger("app.graphql.limits")


def max_directives_rule(limit: int) -> type[ValidationRule]:
    class MaxDirectives(ValidationRule):
        def __init__(self, context: Any) -> None:
            super().__init__(context)
            self.count = 0

        def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
            self.count += 1
            if self.count == limit + 1:
                self.report_error(
                    GraphQLError(f"This document has more than {limit} directives.", node)
                )

    return MaxDirectives


class DirectiveLimiter(AddValidationRules):
    def __init__(self, limit: int) -> None:
        super().__init__([max_directives_rule(limit)])


class NodeBudgetExceeded(Exception):
    pass


class UnboundedList(Exception):
    """A plain list of objects with no bound declared in app/schema/list_bounds.py."""


class NeedsCatalogue(Exception):
    """The operation selects a list the catalogue bounds: count again with its bounds."""


class ListBounds(Mapping[tuple[str, str], int]):
    """Every plain list's bound; the catalogue's are asked for only when a list needs one,
    so most operations are counted without reading it."""

    def __init__(self, catalogue: CatalogueBounds | None) -> None:
        self.static = static_list_bounds()
        self.catalogue = catalogue

    def __getitem__(self, key: tuple[str, str]) -> int:
        if key in self.static:
            return self.static[key]
        if key in CATALOGUE_LISTS:
            if self.catalogue is None:
                raise NeedsCatalogue
            return catalogue_list_bound(self.catalogue, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter({*self.static, *CATALOGUE_LISTS})

    def __len__(self) -> int:
        return len({*self.static, *CATALOGUE_LISTS})


def selected_fields(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str],
) -> Iterator[tuple[FieldNode, frozenset[str]]]:
    """Fields of a selection set, fragments flattened (each fragment once per path)."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection, seen
        elif isinstance(selection, InlineFragmentNode):
            yield from selected_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen or name not in fragments:
                continue
            yield from selected_fields(fragments[name].selection_set, fragments, seen | {name})


def count_nodes(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any] | None,
    *,
    budget: int,
    list_bounds: Mapping[tuple[str, str], int],
) -> int:
    root = schema.get_root_type(operation.operation)
    total = 0

    def walk(
        selection_set: SelectionSetNode | None,
        parent: Any,
        multiplier: int,
        seen: frozenset[str],
    ) -> None:
        nonlocal total
        for node, path_seen in selected_fields(selection_set, fragments, seen):
            name = node.name.value
            if name.startswith("__"):
                continue
            owner = parent if isinstance(parent, GraphQLObjectType) else None
            field = owner.fields.get(name) if owner is not None else None
            if field is None:  # union/interface members: resolved through their fragments
                for candidate in _possible_types(schema, parent):
                    if name in candidate.fields:
                        owner, field = candidate, candidate.fields[name]
                        break
            field_type = get_named_type(field.type) if field is not None else None
            child_multiplier = multiplier
            paged_list = field is not None and _paged_list(field)
            size: Any = None
            if field_type is not None and (field_type.name.endswith("Connection") or paged_list):
                args = {
                    a.name.value: value_from_ast_untyped(a.value, variables)
                    for a in node.arguments or ()
                }
                size = args.get("first") if args.get("first") is not None else args.get("last")
                if not isinstance(size, int) or size < 0:
                    size = _default_page(field) if paged_list else DEFAULT_PAGE_SIZE
            elif (
                field is not None
                and owner is not None
                and _object_list(field)
                and not is_counted_elsewhere(owner.name, name)
            ):
                size = list_bounds.get((owner.name, name))
                if size is None:
                    raise UnboundedList(f"{owner.name}.{name}")
            if size is not None:
                total += multiplier * size
                if total > budget:
                    raise NodeBudgetExceeded
                child_multiplier = multiplier * max(size, 1)
            if node.selection_set is not None:
                walk(node.selection_set, field_type, child_multiplier, path_seen)

    walk(operation.selection_set, root, 1, frozenset())
    return total


def _paged_list(field: Any) -> bool:
    """A plain list with a page argument (`timeline(last:)`): it costs its page, as a
    connection does."""
    field_type = field.type
    while isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    return isinstance(field_type, GraphQLList) and ("last" in field.args or "first" in field.args)


def _object_list(field: Any) -> bool:
    """A list (of lists …) of objects, interfaces or unions: scalars and enums cost nothing."""
    field_type = field.type
    listed = False
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        listed = listed or isinstance(field_type, GraphQLList)
        field_type = field_type.of_type
    return listed and isinstance(
        field_type, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType
    )


def _default_page(field: Any) -> int:
    for name in ("first", "last"):
        argument = field.args.get(name)
        if argument is not None and isinstance(argument.default_value, int):
            return argument.default_value
    return DEFAULT_PAGE_SIZE


def _possible_types(schema: GraphQLSchema, parent: Any) -> list[GraphQLObjectType]:
    if parent is None or isinstance(parent, GraphQLObjectType):
        return [parent] if parent is not None else []
    return list(schema.get_possible_types(parent))


def node_budget(max_nodes: int) -> type[SchemaExtension]:
    # The count depends only on the document, the operation, the integer variables (a page
    # size is an Int) and, for the lists it bounds, the catalogue: an operation seen within
    # budget — most of the traffic — is not walked again (while the catalogue's bounds it
    # was counted with hold). One over budget is walked each time (the walk stops there).
    verdicts: dict[tuple[Any, ...], tuple[int, CatalogueBounds | None]] = {}

    class NodeBudget(SchemaExtension):
        """Checked once the document is parsed, with the variables known."""

        async def on_validate(self) -> AsyncIterator[None]:
            context = self.execution_context
            document = context.graphql_document
            # not `is None`: ValidationCache leaves an empty list when the document is valid
            if document is None or context.pre_execution_errors:
                yield
                return
            key = (
                context.query,
                context.operation_name,
                tuple(
                    sorted(
                        (name, value)
                        for name, value in (context.variables or {}).items()
                        if value is None or isinstance(value, int)
                    )
                ),
            )
            verdict = verdicts.get(key)
            if verdict is not None and (
                verdict[1] is None or verdict[1] == await catalogue_bounds()
            ):
                _record_cost(context, verdict[0])
                yield
                return
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                if context.operation_name and (
                    definition.name is None or definition.name.value != context.operation_name
                ):
                    continue
                catalogue: CatalogueBounds | None = None
                try:
                    try:
                        cost = _count(context, definition, fragments, max_nodes, None)
                    except NeedsCatalogue:
                        catalogue = await catalogue_bounds()
                        cost = _count(context, definition, fragments, max_nodes, catalogue)
                except Exception as exc:  # fail closed: an uncounted query never runs
                    if not isinstance(exc, NodeBudgetExceeded):
                        logger.exception("node budget could not be computed")
                    context.pre_execution_errors = [_too_complex(max_nodes, definition)]
                    break
                _record_cost(context, cost)
                _remember(verdicts, key, (cost, catalogue))
            yield

    return NodeBudget


def _count(
    context: Any,
    definition: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    max_nodes: int,
    catalogue: CatalogueBounds | None,
) -> int:
    return count_nodes(
        graphql_schema(context.schema),
        definition,
        fragments,
        context.variables,
        budget=max_nodes,
        list_bounds=ListBounds(catalogue),
    )


def _record_cost(context: object, cost: int) -> None:
    """The operation's node count, for the rate limiter (app/schema/ratelimit.py reads
    `node_cost`): an attribute of our own on strawberry's per-operation ExecutionContext,
    which has no field for it (one per operation, even on a shared WebSocket)."""
    setattr(context, "node_cost", cost)  # noqa: B010 - not a field strawberry declares


def _too_complex(max_nodes: int, definition: OperationDefinitionNode | None) -> GraphQLError:
    return GraphQLError(
        f"This query could return more than {max_nodes} nodes; "
        "ask for smaller pages (first/last) or fewer nested connections.",
        definition,
        extensions={"code": "QUERY_TOO_COMPLEX"},
    )


def _remember(verdicts: dict[tuple[Any, ...], Any], key: Any, verdict: Any) -> None:
    if len(verdicts) >= 512:  # bounded: distinct documents and page sizes are few
        verdicts.clear()
    verdicts[key] = verdict


NUL = "\x00"


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


class _NulInLiteral(Visitor):
    found = False

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> Any:
        if NUL in node.value:
            self.found = True
            return self.BREAK
        return None


class NulGuard(SchemaExtension):
    """Text cannot hold U+0000 (PostgreSQL refuses it in every text column), so no valid
    input contains it: an argument or variable that does is refused before anything runs,
    as bad input, instead of failing deep in the database driver."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if not context.pre_execution_errors:  # None, or [] from ValidationCache
            found = _holds_nul(context.variables)
            # A literal holds U+0000 only if the text does, raw or escaped (\u0000, \u{0}):
            # without either there is nothing to look for in the parsed document.
            query = context.query or ""
            suspect = NUL in query or "\\" in query
            if not found and suspect and context.graphql_document is not None:
                visitor = _NulInLiteral()
                visit(context.graphql_document, visitor)
                found = visitor.found
            if found:
                context.pre_execution_errors = [
                    GraphQLError(
                        "Text may not contain the NUL character (U+0000).",
                        extensions={"code": "BAD_USER_INPUT"},
                    )
                ]
        yield
