"""Every list costs its real bound in the node budget (issue 16, item 6): a plain list by
what the live catalogue (or a setting, or its input) lets it hold, a paged one by its page,
so nesting pages under a dossier's steps and documents is counted as it reads."""

from __future__ import annotations

import pytest
import strawberry
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, parse

from app.api import schema
from app.models import Notification, ProductStep, Step
from app.schema.limits import ListBounds, UnboundedList, count_nodes
from app.schema.list_bounds import CATALOGUE_LISTS, is_counted_elsewhere, static_list_bounds
from app.services.catalogue_bounds import CatalogueBounds, catalogue_bounds
from app.settings import get_settings
from tests.factories import make_admin, make_agent, make_client, make_dossier, make_product
from tests.helpers import count_statements, error_codes, gql

# 100 dossiers, each with its steps, their documents and a page of each document's versions
NESTED = """
query($versions: Int!) {
  dossiers(first: 100) { nodes { steps { documents { versions(last: $versions) { id } } } } }
}
"""


def _object_lists():
    for type_ in schema._schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            inner, listed = field.type, False
            while isinstance(inner, GraphQLNonNull | GraphQLList):
                listed = listed or isinstance(inner, GraphQLList)
                inner = inner.of_type
            if listed and not hasattr(inner, "serialize"):  # objects, not scalars or enums
                paged = "first" in field.args or "last" in field.args
                yield type_.name, name, paged


def test_every_plain_list_of_the_schema_has_a_bound():
    declared = {*static_list_bounds(), *CATALOGUE_LISTS}
    plain = {
        (owner, name)
        for owner, name, paged in _object_lists()
        if not paged and not is_counted_elsewhere(owner, name)
    }
    assert plain, "the schema has plain lists"
    assert plain - declared == set()
    assert declared - plain == set(), "a bound for a list the schema no longer has"


@strawberry.type
class Thing:
    name: str


@strawberry.type
class OtherQuery:
    @strawberry.field
    def things(self) -> list[Thing]:
        return []


def test_a_list_without_a_bound_is_refused_not_counted_as_free():
    other = strawberry.Schema(query=OtherQuery)
    operation = parse("{ things { name } }").definitions[0]
    with pytest.raises(UnboundedList):
        count_nodes(other._schema, operation, {}, None, budget=10_000, list_bounds=ListBounds(None))


async def test_the_catalogue_bounds_are_its_largest_product_and_step():
    await make_product((("pdf",), ("pdf", "png"), ()))
    await make_product((("pdf",), ("pdf",), ("pdf",), ("pdf",)))
    bounds = await catalogue_bounds()
    assert bounds == CatalogueBounds(
        steps_per_product=4, document_types_per_step=2, document_types_per_product=4
    )


async def _world():
    # three steps of two document types each: a dossier has 3 steps and 6 documents
    product = await make_product((("pdf", "png"), ("pdf", "png"), ("pdf", "png")))
    await make_dossier(await make_client(), product)
    return product


async def test_nested_lists_cost_what_they_can_read(client):
    await _world()
    agent = await make_agent()
    # 100 x (1 dossier + 3 steps + 3 x (2 + 3 requested) documents + 15 x 5 versions) =
    # 9,400: within the budget (each step may hold 3 documents requested on the fly)
    data = await gql(client, NESTED, {"versions": 5}, token=agent.token)
    assert len(data["dossiers"]["nodes"]) == 1
    assert len(data["dossiers"]["nodes"][0]["steps"]) == 3
    assert get_settings().max_nodes == 10_000
    # one more version a document: 10,900, refused before anything is read
    with count_statements() as statements:
        body = await gql(client, NESTED, {"versions": 6}, token=agent.token, expect_errors=True)
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body.get("data") is None
    assert [s for s in statements if "dossiers" in s] == []


async def test_a_larger_product_raises_the_cost_at_once(client):
    product = await _world()
    admin = await make_admin()
    assert await gql(client, NESTED, {"versions": 5}, token=admin.token)
    extra = await Step.create(code="EXTRA", label="Extra")
    steps = [
        {"stepId": str(s.step_id)}
        for s in await ProductStep.filter(product_id=product.id).order_by("position")
    ] + [{"stepId": str(extra.id)}]
    done = await gql(
        client,
        """mutation($input: SetProductStepsInput!) {
             setProductSteps(input: $input) { userErrors { code } } }""",
        {"input": {"productId": str(product.id), "steps": steps}},
        token=admin.token,
    )
    assert done["setProductSteps"]["userErrors"] == []
    # 100 x (1 + 4 + 20 + 100) = 12,500: the fourth step counts from the next operation
    body = await gql(client, NESTED, {"versions": 5}, token=admin.token, expect_errors=True)
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]


async def test_marking_all_read_answers_a_bounded_page(client):
    account = await make_client()
    await Notification.bulk_create(
        [
            Notification(user_id=account.obj.id, template_code="t", title=f"n{i}", message="m")
            for i in range(130)
        ]
    )
    data = await gql(
        client,
        """mutation { markNotificationsRead(input: {all: true}) {
             notifications { id } markedCount unreadCount userErrors { code } } }""",
        token=account.token,
    )
    payload = data["markNotificationsRead"]
    assert payload["userErrors"] == []
    assert len(payload["notifications"]) == 100
    assert payload["markedCount"] == 130
    assert payload["unreadCount"] == 0
    assert await Notification.filter(user_id=account.obj.id, read_at=None).count() == 0
