"""Dossiers an agent opens for a client without online payment (issue 17, item 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from app.schema.enums import PaymentMethod
from app.schema.identity import ProfileType
from app.schema.payments import OrderType, PaymentUserError

if TYPE_CHECKING:
    from app.schema.dossiers import DossierType


@strawberry.input
class OpenDossierInput:
    client_email: str
    client_name: str = strawberry.field(description="Used when the client is new.")
    product_id: strawberry.ID
    payment_method: PaymentMethod = strawberry.field(
        description="BANK_TRANSFER, CASH or WAIVED (online payments use a payment link)."
    )
    reference: str | None = strawberry.field(
        default=None, description="The transfer's or receipt's reference (a transfer needs one)."
    )
    note: str | None = strawberry.field(default=None, description="For agents only.")


@strawberry.type
class OpenDossierPayload:
    dossier: Annotated[DossierType, strawberry.lazy("app.schema.dossiers")] | None = None
    order: OrderType | None = None
    client: ProfileType | None = None
    invited: bool | None = strawberry.field(
        default=None,
        description="A new client: they were e-mailed an invitation to choose a password.",
    )
    user_errors: list[PaymentUserError] = strawberry.field(default_factory=list)
