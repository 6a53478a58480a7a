"""`POST /webhooks/twilio/status`: Twilio's status callbacks (delivery receipts).

Twilio posts here each time a message's status changes (queued, sent, delivered, read,
failed, undelivered, with its ErrorCode), at the `StatusCallback` URL each message named
(`?delivery=<id>`, app.services.delivery.status_callback). The request is Twilio's only
if its X-Twilio-Signature is (app.http.twilio_webhook.verified_form): anything else is
refused with 403 before anything is read or changed. What it changes is
app.services.receipts' (ranked, idempotent). A known or unknown message alike is answered
204 (Twilio needs no more); a failure on our side answers 503 and changes nothing.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.http.twilio_webhook import Refused, verified_form
from app.services.receipts import Outcome, Receipt, apply_receipt

logger = logging.getLogger("app.http.twilio_status")


async def twilio_status(request: Request) -> Response:
    try:
        form = await verified_form(request)
    except Refused as refused:
        logger.warning("twilio status callback refused (%s)", refused.response.status_code)
        return refused.response
    receipt = Receipt.from_form(form, request.query_params.get("delivery"))
    try:
        outcome = await apply_receipt(receipt)
    except Exception:
        logger.exception("twilio status callback for %s not recorded", receipt.message_sid)
        return PlainTextResponse("Temporarily unavailable.", 503)
    if outcome == Outcome.UNKNOWN:
        logger.info("twilio status callback for an unknown message %s", receipt.message_sid)
    return Response(status_code=204)
