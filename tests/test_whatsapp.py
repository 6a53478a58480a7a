"""WhatsApp that is allowed (issue 20, item 1), against the Twilio stand-in over HTTP:
the opt-in first, free text inside the 24-hour window, the Content template outside it,
SMS instead (the reason recorded) when WhatsApp may not be used.
Clock: each pass gets `now=`; the window is moved by when the client last wrote."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from app.models import ChannelConsent, NotificationDelivery
from app.models.enums import NotificationChannel, NotificationStatus
from app.services.delivery import deliver_due
from app.services.phone import consents
from app.settings import Settings, WhatsappContent
from tests.factories import make_agent, make_client
from tests.helpers import gql
from tests.notifications_support import (
    TWILIO_WHATSAPP_FROM,
    TwilioPeer,
    peer_settings,
    pending_deliveries,
    serve_twilio,
)

SMS, WHATSAPP = NotificationChannel.SMS, NotificationChannel.WHATSAPP
SENT, FAILED = NotificationStatus.SENT, NotificationStatus.FAILED
PHONE = "+33612345678"
CONTENT_SID = "HX" + "0123456789abcdef" * 2
# as WHATSAPP_TEMPLATES='{"document_reminder": {"fr": {"content_sid": …, "variables": …}}}'
TEMPLATES = {
    "document_reminder": {
        "fr": WhatsappContent(
            content_sid=CONTENT_SID, variables=["name", "dossier_ref", "action_url"]
        )
    }
}

OPT_IN = """
mutation OptIn($clientId: ID) {
  recordWhatsappOptIn(input: {clientId: $clientId}) {
    consent { clientId channel status optedInVia optedInAt optedInByAgentId }
    userErrors { code field message }
  }
}
"""


@pytest.fixture(scope="session")
async def twilio_server():
    peer = TwilioPeer()
    server, task = await serve_twilio(peer)
    yield peer
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def twilio(twilio_server):
    twilio_server.reset()
    yield twilio_server
    twilio_server.reset()


async def _reminder(client, locale: str = "fr") -> NotificationDelivery:
    (delivery,) = await pending_deliveries(
        1,
        WHATSAPP,
        profile_id=client.obj.id,
        recipient=lambda _i: PHONE,
        template="document_reminder",
        locale=locale,
    )
    return delivery


async def test_a_client_opts_in_in_the_app_and_an_agent_records_a_verbal_consent(client):
    me, other = await make_client(phone=PHONE), await make_client(phone="+33698765432")
    agent = await make_agent()

    mine = (await gql(client, OPT_IN, {}, token=me.token))["recordWhatsappOptIn"]
    assert mine["userErrors"] == []
    assert mine["consent"]["clientId"] == str(me.obj.id)
    assert (mine["consent"]["status"], mine["consent"]["optedInVia"]) == ("OPTED_IN", "APP")
    assert mine["consent"]["optedInByAgentId"] is None

    # a client cannot opt someone else in: answered like a missing client
    body = await gql(
        client, OPT_IN, {"clientId": str(other.obj.id)}, token=me.token, expect_errors=True
    )
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    verbal = (await gql(client, OPT_IN, {"clientId": str(other.obj.id)}, token=agent.token))[
        "recordWhatsappOptIn"
    ]["consent"]
    assert (verbal["optedInVia"], verbal["optedInByAgentId"]) == ("AGENT", str(agent.obj.id))

    # an agent must say who; a client without a phone cannot be written to
    errors = (await gql(client, OPT_IN, {}, token=agent.token))["recordWhatsappOptIn"]
    assert [e["code"] for e in errors["userErrors"]] == ["REQUIRED"]
    phoneless = await make_client()
    errors = (await gql(client, OPT_IN, {"clientId": str(phoneless.obj.id)}, token=agent.token))[
        "recordWhatsappOptIn"
    ]
    assert [e["code"] for e in errors["userErrors"]] == ["NO_PHONE"]
    assert not await ChannelConsent.filter(profile_id=phoneless.obj.id).exists()


async def test_a_reminder_goes_by_template_outside_the_window_and_as_text_inside(twilio):
    client = await make_client(phone=PHONE)
    await consents.opt_in(client.obj.id, WHATSAPP, consents.ConsentSource.APP)
    settings = peer_settings(twilio=twilio, whatsapp_templates=TEMPLATES)
    now = datetime.now(UTC) + timedelta(seconds=5)

    # the client never wrote: outside the window, the approved template
    first = await _reminder(client)
    assert (await deliver_due(settings=settings, now=now)).sent == 1
    (request,) = twilio.sent
    assert request.form["To"] == f"whatsapp:{PHONE}"
    assert request.form["From"] == f"whatsapp:{TWILIO_WHATSAPP_FROM}"
    assert request.form["ContentSid"] == CONTENT_SID
    assert json.loads(request.form["ContentVariables"]) == {
        "1": "Camille",
        "2": "R0",
        "3": "http://app.test/dossiers/1",
    }
    assert "Body" not in request.form
    assert (await NotificationDelivery.get(id=first.id)).status == SENT

    # the client wrote an hour ago: inside the window, free text
    await consents.wrote_to_us(client.obj.id, WHATSAPP, now=now - timedelta(hours=1))
    twilio.reset()
    await _reminder(client)
    assert (await deliver_due(settings=settings, now=now)).sent == 1
    (request,) = twilio.sent
    assert "ContentSid" not in request.form
    assert request.form["Body"]
    assert request.form["To"] == f"whatsapp:{PHONE}"

    # 25 hours later the window has closed again: the template
    twilio.reset()
    await _reminder(client)
    assert (await deliver_due(settings=settings, now=now + timedelta(hours=24))).sent == 1
    assert twilio.sent[0].form["ContentSid"] == CONTENT_SID


async def test_a_missing_template_falls_back_to_sms_with_the_reason(twilio):
    client = await make_client(phone=PHONE)
    await consents.opt_in(client.obj.id, WHATSAPP, consents.ConsentSource.APP)
    settings = peer_settings(twilio=twilio, whatsapp_templates=TEMPLATES)
    delivery = await _reminder(client, locale="en")  # only French is mapped

    report = await deliver_due(settings=settings)
    assert (report.sent, report.skipped) == (0, 1)
    assert twilio.requests == []
    skipped = await NotificationDelivery.get(id=delivery.id)
    assert skipped.status == FAILED
    assert "no WhatsApp template for document_reminder in en" in skipped.last_error
    assert "sent by SMS instead" in skipped.last_error
    assert skipped.provider_response == {"skipped": "NO_WHATSAPP_TEMPLATE", "fallback": "SMS"}

    assert (await deliver_due(settings=settings)).sent == 1  # the SMS queued instead
    (request,) = twilio.sent
    assert request.form["To"] == PHONE
    assert "Body" in request.form
    sms = await NotificationDelivery.get(notification_id=delivery.notification_id, channel=SMS)
    assert sms.status == SENT


async def test_no_opt_in_means_no_whatsapp(twilio):
    client = await make_client(phone=PHONE)
    settings = peer_settings(twilio=twilio, whatsapp_templates=TEMPLATES)
    delivery = await _reminder(client)

    await deliver_due(settings=settings)
    await deliver_due(settings=settings)
    assert [r.form["To"] for r in twilio.requests] == [PHONE]  # by SMS only
    skipped = await NotificationDelivery.get(id=delivery.id)
    assert skipped.status == FAILED
    assert skipped.last_error.startswith("the client has not opted in to WhatsApp")


async def test_an_opted_out_client_gets_nothing_on_that_channel(twilio):
    client = await make_client(phone=PHONE)
    await consents.opt_in(client.obj.id, WHATSAPP, consents.ConsentSource.APP)
    await consents.opt_out(client.obj.id, WHATSAPP, consents.ConsentSource.KEYWORD)
    await consents.opt_out(client.obj.id, SMS, consents.ConsentSource.KEYWORD)
    settings = peer_settings(twilio=twilio, whatsapp_templates=TEMPLATES)
    whatsapp = await _reminder(client)
    (sms,) = await pending_deliveries(1, SMS, profile_id=client.obj.id, recipient=lambda _i: PHONE)

    assert (await deliver_due(settings=settings)).skipped == 2
    assert (await deliver_due(settings=settings)).claimed == 0  # no fallback: SMS is out too
    assert twilio.requests == []
    rows = {d.id: d for d in await NotificationDelivery.filter(id__in=[whatsapp.id, sms.id])}
    assert rows[whatsapp.id].provider_response["skipped"] == "WHATSAPP_OPTED_OUT"
    assert rows[sms.id].provider_response["skipped"] == "SMS_OPTED_OUT"


def test_the_template_mapping_is_read_from_json(monkeypatch):
    raw = json.dumps({"document_reminder": {"fr": {"content_sid": CONTENT_SID, "variables": []}}})
    monkeypatch.setenv("WHATSAPP_TEMPLATES", raw)
    assert Settings().whatsapp_templates["document_reminder"]["fr"].content_sid == CONTENT_SID
    monkeypatch.setenv("WHATSAPP_TEMPLATES", '{"x": {"fr": {"content_sid": "not-a-sid"}}}')
    with pytest.raises(ValueError, match="content_sid"):
        Settings()


def test_opt_out_keywords_are_whole_messages_in_any_case_and_accent():
    for text in ("STOP", "stop", " Stop. ", "ARRET", "Arrêt", "arrêt !", "UNSUBSCRIBE"):
        assert consents.is_opt_out(text), text
    for text in ("Stop sending me the same reminder", "arrête de m'écrire", "", "STOPPED"):
        assert not consents.is_opt_out(text), text
    assert consents.is_opt_in("start")
    assert consents.is_opt_in("Démarrer")
