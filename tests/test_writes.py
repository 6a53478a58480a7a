"""The batched writer (app/db.py `Writes`) means the same on PostgreSQL and SQLite.

On PostgreSQL a batch is one statement whose parts all see the same snapshot; on SQLite
its parts run one after the other. A batch whose outcome would differ is refused when it
is built, before anything is written; every other batch writes the same rows on both.
"""

from __future__ import annotations

import uuid

import pytest

from app.db import BatchConflict, Writes, insert_together
from app.models import Product
from app.models.enums import DossierKind


def product(code: str, **extra) -> Product:
    return Product(
        id=uuid.uuid4(),
        code=code,
        name=code.title(),
        price_amount=1000,
        currency="eur",
        dossier_type=DossierKind.OTHER,
        **extra,
    )


async def test_a_batch_of_inserts_and_updates_applies_in_full(database_url):
    existing = product("existing")
    await existing.save()
    other = product("other")
    await other.save()
    writes = Writes()
    new = product("new")
    writes.insert(new)
    writes.update(Product, {"id": existing.id}, name="Renamed", price_amount=2000)
    writes.update(Product, {"id": other.id}, active=False)
    await writes.run()
    assert (await Product.get(id=new.id)).name == "New"
    renamed = await Product.get(id=existing.id)
    assert (renamed.name, renamed.price_amount) == ("Renamed", 2000)
    assert (await Product.get(id=other.id)).active is False
    assert not writes  # emptied: a second run writes nothing again
    await writes.run()
    assert await Product.filter(code="new").count() == 1


async def test_an_update_of_a_row_inserted_in_the_batch_is_refused(database_url):
    writes = Writes()
    new = product("fresh")
    writes.insert(new)
    with pytest.raises(BatchConflict, match="inserted in the same batch"):
        writes.update(Product, {"id": new.id}, name="Changed")
    # by another condition that the new row meets, too
    with pytest.raises(BatchConflict):
        writes.update(Product, {"code": "fresh"}, name="Changed")
    await writes.run()  # what was accepted still goes out
    assert (await Product.get(id=new.id)).name == "Fresh"


async def test_an_insert_matching_an_earlier_update_is_refused(database_url):
    writes = Writes()
    writes.update(Product, {"code": "late", "active": True}, name="Changed")
    with pytest.raises(BatchConflict, match="matches an UPDATE"):
        writes.insert(product("late"))
    writes.insert(product("late-but-other"))  # cannot match the condition: accepted
    await writes.run()
    assert await Product.filter(code="late").count() == 0
    assert await Product.filter(code="late-but-other").count() == 1


async def test_two_updates_that_may_reach_one_row_are_refused(database_url):
    row = product("twice")
    await row.save()
    writes = Writes()
    writes.update(Product, {"id": row.id}, name="First")
    with pytest.raises(BatchConflict, match="two UPDATEs"):
        writes.update(Product, {"id": row.id}, price_amount=5)
    with pytest.raises(BatchConflict):  # not told apart by a field both compare
        writes.update(Product, {"code": "twice"}, price_amount=5)
    await writes.run()
    saved = await Product.get(id=row.id)
    assert (saved.name, saved.price_amount) == ("First", 1000)


async def test_updates_told_apart_only_by_a_field_the_first_sets_are_refused(database_url):
    writes = Writes()
    writes.update(Product, {"active": True}, active=False)
    # on SQLite the first UPDATE's rows would then match the second's condition
    with pytest.raises(BatchConflict):
        writes.update(Product, {"active": False}, name="Inactive")


async def test_a_refused_batch_writes_nothing(database_url):
    row = product("untouched")
    await row.save()
    writes = Writes()
    writes.update(Product, {"id": row.id}, name="Changed")
    with pytest.raises(BatchConflict):
        writes.update(Product, {"id": row.id}, name="Again")
    assert (await Product.get(id=row.id)).name == "Untouched"  # nothing ran yet


async def test_insert_together_writes_every_row(database_url):
    rows = [product("one"), product("two"), product("three")]
    await insert_together(*rows)
    assert await Product.filter(code__in=["one", "two", "three"]).count() == 3
    assert all(r._saved_in_db for r in rows)
    created = sorted(rows, key=lambda r: r.created_at)
    assert [r.code for r in created] == ["one", "two", "three"]  # stamped in order
