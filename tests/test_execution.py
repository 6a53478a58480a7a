"""The schema's executor (app/schema/execution.py) answers exactly as graphql-core's.

Its shortcuts — simple resolvers called directly (`lean_resolvers`), values known never
to be awaitable, plain scalar fields read without a resolver call — must not change a
single byte of a result, nor any error (message, path, the null it leaves behind). Each
case runs the same operation over the same data through a schema on strawberry's default
executor and one on ours, and compares.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import strawberry

from app.models import Product
from app.schema.execution import Executor, is_awaitable, lean_resolvers


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    id: strawberry.ID
    name: str
    note: str | None
    count: int
    colour: Colour
    at: datetime
    price: Decimal

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    def times(self, n: int = 2) -> int:
        return self.count * n

    @strawberry.field
    def path(self, info: strawberry.Info) -> str:
        return ".".join(str(key) for key in info.path.as_list())

    @strawberry.field
    def fails(self) -> str | None:
        raise ValueError(f"no {self.name}")


class Row:
    """A plain object as a resolver hands it over; `broken` rows lie about their types."""

    def __init__(self, i: int, **override):
        self.id = uuid.UUID(int=i)
        self.name = f"item {i}"
        self.note = None if i % 2 else f"note {i}"
        self.count = i
        self.colour = Colour.RED if i % 2 else Colour.BLUE
        self.at = datetime(2026, 1, 1, i % 24, tzinfo=UTC)
        self.price = Decimal("12.50")
        self.__dict__.update(override)


ROWS = [Row(i) for i in range(5)]
BROKEN = [
    Row(1, name=None),  # null in a non-null field
    Row(2, count="many"),  # a value its scalar refuses
    Row(3, colour="green"),  # not an enum member
    Row(4, at="yesterday"),
]
del BROKEN[3].__dict__["price"]  # a missing attribute


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return ROWS  # type: ignore[return-value]

    @strawberry.field
    def broken(self) -> list[Item | None]:
        return BROKEN  # type: ignore[return-value]

    @strawberry.field
    async def later(self) -> list[Item]:
        return ROWS  # type: ignore[return-value]

    @strawberry.field
    def viewer(self, info: strawberry.Info) -> str:
        return f"{info.field_name} of {info.context['who']}"

    @strawberry.field
    def product(self) -> str:
        model = Product(code="c", name="n")
        assert not is_awaitable(model)  # a model answers at once
        return model.name


OPERATIONS = [
    "{ items { id name note count colour at price shout times(n: 3) path fails } }",
    "{ viewer }",
    "{ later { id name note colour } }",
    "{ broken { id name count colour at price } }",
    "{ items { ...F } } fragment F on Item { a: name b: name id }",
    "{ product }",
]


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_our_executor_answers_exactly_as_graphql_core(operation: str) -> None:
    plain = strawberry.Schema(query=Query)
    ours = strawberry.Schema(query=Query, execution_context_class=Executor)
    # items, broken, viewer, product, shout, path, fails; not `later` (async), `times` (n)
    assert lean_resolvers(ours) == 7
    context = {"who": "me"}
    expected = await plain.execute(operation, context_value=context)
    got = await ours.execute(operation, context_value=context)
    assert got.data == expected.data
    assert [(e.message, e.path) for e in got.errors or []] == [
        (e.message, e.path) for e in expected.errors or []
    ]
    if "broken" in operation:  # the cases above do fail, and each one is reported
        assert len(got.errors or []) == 4
    if "fails" in operation:  # a resolver's exception: its field null, the error located
        assert len(got.errors or []) == 5


def test_plain_values_are_not_awaitable_and_awaitables_still_are() -> None:
    async def coroutine():
        return 1

    pending = coroutine()
    try:
        assert is_awaitable(pending)
    finally:
        pending.close()
    for value in (None, 1, "x", [1], uuid.uuid4(), Colour.RED, Decimal(1), Product()):
        assert not is_awaitable(value)
