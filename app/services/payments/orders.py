"""The order rows: those a viewer may see, and one locked for the Stripe event that
changes it."""

from __future__ import annotations

import uuid
from typing import Any

from app.domain.viewer import Viewer
from app.errors import NotFound
from app.models import Order


def visible_orders(viewer: Viewer):
    if viewer.is_agent:
        return Order.all()
    if viewer.profile is not None:
        return Order.filter(user_id=viewer.profile.id)
    raise NotFound("No such order.")


async def locked_order(order_id: Any, *, with_product: bool = False) -> Order | None:
    """The order row, locked until the transaction ends; `with_product`: its product read
    in the same statement (only the order is locked)."""
    try:
        oid = uuid.UUID(str(order_id))
    except ValueError:
        return None
    queryset = Order.filter(id=oid)
    if with_product:
        queryset = queryset.select_related("product").select_for_update(of=("orders",))
    else:
        queryset = queryset.select_for_update()
    return await queryset.first()
