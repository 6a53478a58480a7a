"""A refunded payment: the order REFUNDED, its dossier cancelled (unless it already
ended); records ORDER_REFUNDED."""

from __future__ import annotations

from typing import Any

from app.models import Dossier, Order
from app.models.enums import DossierStatus, EventType, OrderStatus
from app.services import events
from app.services.payments.errors import UnmatchedEvent
from app.services.payments.orders import locked_order
from app.services.workflow.machine import transition


async def refund(payment_intent_id: str | None, metadata: dict[str, Any]) -> None:
    order = None
    if payment_intent_id:
        order = (
            await Order.filter(stripe_payment_intent_id=payment_intent_id)
            .select_for_update()
            .first()
        )
    if order is None and metadata.get("order_id"):
        order = await locked_order(metadata["order_id"])
    if order is None:
        raise UnmatchedEvent("refund for an unknown payment")
    if order.status != OrderStatus.PAID:
        return
    order.status = OrderStatus.REFUNDED
    await order.save(update_fields=["status", "updated_at"])
    await events.record("order", order.id, EventType.ORDER_REFUNDED)
    dossier_id = order.dossier_id
    if dossier_id:
        dossier = await Dossier.filter(id=dossier_id).select_for_update().get()
        if dossier.status not in (DossierStatus.CANCELLED, DossierStatus.COMPLETED):
            await transition(dossier, DossierStatus.CANCELLED, reason="Payment refunded")
