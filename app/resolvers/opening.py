from __future__ import annotations

import strawberry

from app.context import Info
from app.errors import DomainError
from app.schema.common import parse_id, row_as, user_errors
from app.schema.dossiers import DossierType
from app.schema.identity import ProfileType
from app.schema.opening import OpenDossierInput, OpenDossierPayload
from app.schema.payments import OrderType, PaymentErrorCode, PaymentUserError
from app.services.payments.manual import open_dossier_for_client


@strawberry.type
class OpeningMutation:
    @strawberry.mutation(
        description="Open a dossier for a client who paid by bank transfer or cash, or whose "
        "fee is waived (agents): the client is found by e-mail or created and invited, the "
        "order recorded PAID with its method and who recorded it."
    )
    async def open_dossier(self, info: Info, input: OpenDossierInput) -> OpenDossierPayload:
        agent = await info.context.require_agent()
        try:
            opened = await open_dossier_for_client(
                agent,
                client_email=input.client_email,
                client_name=input.client_name,
                product_id=parse_id(input.product_id, what="product"),
                method=input.payment_method,
                reference=input.reference,
                note=input.note,
            )
        except DomainError as error:
            return OpenDossierPayload(
                user_errors=user_errors(error, PaymentUserError, PaymentErrorCode)
            )
        return OpenDossierPayload(
            dossier=row_as(DossierType, opened.dossier),
            order=row_as(OrderType, opened.order),
            client=row_as(ProfileType, opened.profile),
            invited=opened.invited,
        )
