"""`POST /webhooks/twilio/inbound`: an SMS or WhatsApp message sent to our Twilio numbers.

Configured in Twilio's console as the "A message comes in" webhook (HTTP POST) of the SMS
number and of the WhatsApp sender, at PUBLIC_API_URL + this path. The request is verified
(`verified_form`: 403 and nothing done otherwise), then handled once per MessageSid
(app.services.phone.inbound). The answer is an empty TwiML `<Response/>`: we send nothing
back in the reply itself (an agent answers in the chat). A database outage answers 503 so
that Twilio retries.
"""

from __future__ import annotations

import logging

from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.http.twilio_webhook import Refused, verified_form
from app.services import outbox
from app.services.phone import inbound

logger = logging.getLogger("app.http.twilio_inbound")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


async def twilio_inbound(request: Request) -> Response:
    try:
        form = await verified_form(request)
    except Refused as refused:
        logger.warning("twilio inbound refused (%s)", refused.response.status_code)
        return refused.response
    settings = request.app.state.settings
    later = BackgroundTasks()
    defer = later.add_task if settings.dispatch_after_response else None
    try:
        async with outbox.collecting(defer=defer):
            received = await inbound.receive(
                form, storage=request.app.state.storage, settings=settings
            )
    except Exception:
        logger.exception(
            "twilio inbound %s not processed; Twilio will retry", form.get("MessageSid")
        )
        return PlainTextResponse("Temporarily unavailable.", 503)
    logger.info(
        "twilio inbound %s: %s",
        (form.get("MessageSid") or ["?"])[0],
        "duplicate" if received.duplicate else (received.outcome or "ignored"),
    )
    return Response(EMPTY_TWIML, media_type="text/xml", background=later)
