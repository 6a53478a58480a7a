"""Helpers for the due date, progress and chasing tests: products with durations, dossiers
opened at a chosen instant, and reading back what the worker sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from app.models import (
    Document,
    DocumentType,
    Dossier,
    Event,
    Notification,
    NotificationDelivery,
    Order,
    Product,
    ProductStep,
    Profile,
    StepInstance,
    StepReminder,
)
from app.models.enums import EventType, NotificationChannel, OrderStatus
from app.services.workflow.steps import open_dossier
from tests.factories import Account, make_product, unique

PHONE = "+33612345678"


def at(moment: datetime) -> datetime:
    """A clean instant (whole seconds) to start dossiers at."""
    return moment.replace(microsecond=0)


async def product_with(
    steps: Sequence[tuple[Sequence[str], int | None]], *, optional: Sequence[int] = ()
) -> Product:
    """A product whose i-th step asks for one document type per entry of steps[i][0] (its
    allowed extensions) and is estimated to take steps[i][1] hours (None: no estimate).
    Step positions in `optional` are not required."""
    product = await make_product(steps=[documents for documents, _ in steps])
    tag = unique("T").upper()
    for position, (documents, hours) in enumerate(steps, start=1):
        product_step = await ProductStep.get(product_id=product.id, position=position)
        product_step.estimated_duration_hours = hours
        product_step.is_required = position not in optional
        await product_step.save()
        # Readable labels ("Step 1 PDF") and codes that sort in the order given.
        for document_type in await DocumentType.filter(required_step_id=product_step.step_id):
            extensions = ",".join(document_type.allowed_extensions)
            index = list(documents).index(extensions)
            document_type.label = f"Step {position} {extensions.upper()}"
            document_type.code = f"{tag}_{position}_{index}"
            await document_type.save()
    return product


async def open_at(client: Account, product: Product, started: datetime) -> Dossier:
    """A paid order and the dossier it opened, its first step started at `started`."""
    order = await Order.create(
        user_id=client.obj.id,
        product_id=product.id,
        amount=product.price_amount,
        currency=product.currency,
        status=OrderStatus.PAID,
        paid_at=started,
    )
    return await open_dossier(order, now=started)


async def with_phone(account: Account, phone: str = PHONE) -> Account:
    await Profile.filter(id=account.obj.id).update(phone=phone)
    return account


async def current_step(dossier: Dossier) -> StepInstance:
    fresh = await Dossier.get(id=dossier.id)
    return await StepInstance.get(id=fresh.current_step_instance_id)


async def documents_of(dossier: Dossier) -> list[Document]:
    """The current step's documents, in their type's code order (creation order)."""
    step = await current_step(dossier)
    return list(await Document.filter(step_instance_id=step.id).order_by("created_at", "id"))


async def labels(documents: Sequence[Document]) -> list[str]:
    types = {
        t.id: t.label
        for t in await DocumentType.filter(id__in=[d.document_type_id for d in documents])
    }
    return [types[d.document_type_id] for d in documents]


async def events_of(dossier: Dossier, event_type: EventType) -> list[Event]:
    return list(
        await Event.filter(
            entity_type="dossier", entity_id=dossier.id, event_type=event_type
        ).order_by("created_at", "id")
    )


async def reminders_sent(dossier: Dossier) -> list[Event]:
    return await events_of(dossier, EventType.DOCUMENT_REMINDER_SENT)


async def missing_in(event: Event) -> list[str]:
    return [row["label"] for row in event.payload["missing"]]


async def notifications_for(template: str, **owner) -> list[Notification]:
    return list(
        await Notification.filter(template_code=template, **owner).order_by("created_at", "id")
    )


async def channels(notification: Notification) -> dict[NotificationChannel, str]:
    rows = await NotificationDelivery.filter(notification_id=notification.id)
    return {NotificationChannel(d.channel): d.recipient for d in rows}


async def slots(dossier: Dossier) -> list[tuple[str, str, datetime, str]]:
    """(kind, slot, scheduled for, status) of the dossier's planned notices, in time order."""
    rows = await StepReminder.filter(dossier_id=dossier.id).order_by("scheduled_for", "slot")
    return [(r.kind.value, r.slot, r.scheduled_for, r.status.value) for r in rows]


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)
