"""Replies into the chat (issue 20, item 3): POST /webhooks/twilio/inbound signed as Twilio
signs it (the twilio package's RequestValidator), media fetched from the Twilio stand-in,
the message pushed live to the agent's chat subscription."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.models import (
    ChannelConsent,
    InboundMessage,
    Message,
    Notification,
    NotificationDelivery,
    SharedFile,
)
from app.models.enums import ConsentStatus, NotificationChannel, NotificationStatus
from app.services.delivery import deliver_due
from app.settings import get_settings
from app.subscriptions import topics
from tests.documents_support import make_png
from tests.factories import make_admin, make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.notifications_support import (
    TWILIO_SID,
    TWILIO_TOKEN,
    TwilioPeer,
    add_media,
    inbound_params,
    peer_settings,
    pending_deliveries,
    post_inbound,
    serve_twilio,
)
from tests.ws_support import Feed, wait_until, ws_session

SMS, WHATSAPP = NotificationChannel.SMS, NotificationChannel.WHATSAPP
PHONE = "+33612345678"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

MESSAGE_ADDED = """
subscription Added($dossierId: ID!) {
  messageAdded(dossierId: $dossierId) {
    node { id content senderType senderName channel sharedFiles { fileName mimeType } }
  }
}
"""
SEND = """
mutation Send($dossierId: ID!, $content: String!) {
  sendMessage(input: {dossierId: $dossierId, content: $content}) {
    message { id } userErrors { code message }
  }
}
"""
INBOUND = """
query Inbound { inboundMessages(first: 10) { nodes { fromNumber body channel outcome } } }
"""


@pytest.fixture(scope="session")
async def twilio_server():
    peer = TwilioPeer()
    server, task = await serve_twilio(peer)
    yield peer
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def twilio(twilio_server, monkeypatch, app):
    """The stand-in, and the app's settings pointed at it (webhook token, media address):
    the served app's own and the process's (another test may have renewed the latter)."""
    twilio_server.reset()
    for settings in {id(s): s for s in (get_settings(), app.state.settings)}.values():
        monkeypatch.setattr(settings, "twilio_account_sid", TWILIO_SID)
        monkeypatch.setattr(settings, "twilio_auth_token", TWILIO_TOKEN)
        monkeypatch.setattr(settings, "twilio_api_base", twilio_server.url)
    yield twilio_server
    twilio_server.reset()


async def test_a_whatsapp_photo_arrives_live_in_the_agents_chat(twilio, live_server, app):
    owner, agent = await make_client(phone=PHONE), await make_agent()
    dossier = await make_dossier(owner)
    photo = add_media(twilio, make_png(), "image/png")
    hub = app.state.hub
    variables = {"dossierId": str(dossier.id)}
    async with (
        ws_session(live_server.ws_url, agent.token) as agent_ws,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{live_server.port}") as http,
    ):
        feed = Feed(agent_ws, MESSAGE_ADDED, variables).start()
        channel = topics.dossier_messages(dossier.id)
        await wait_until(lambda: hub.subscriber_count(channel) == 1, what="the subscriber")
        try:
            answer = await post_inbound(
                http,
                inbound_params(
                    "+33 6 12 34 56 78",
                    "Voici ma photo",
                    whatsapp=True,
                    media=[(photo, "image/png")],
                ),
            )
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/xml")
            assert answer.text == EMPTY_TWIML
            node = (await feed.next())["messageAdded"]["node"]
        finally:
            await feed.stop()
    assert node["content"] == "Voici ma photo"
    assert (node["senderType"], node["senderName"]) == ("USER", owner.obj.full_name)
    assert node["channel"] == "WHATSAPP"
    assert node["sharedFiles"] == [{"fileName": "whatsapp-1.png", "mimeType": "image/png"}]
    # fetched with the account's credentials, stored as the dossier's file
    assert [r.status for r in twilio.media_requests] == [200]
    assert twilio.media_requests[0].authorization == twilio.expected_authorization()
    (stored,) = await SharedFile.filter(dossier_id=dossier.id)
    assert stored.shared_by_id is None
    assert stored.file_size_bytes == len(make_png())
    # writing first on WhatsApp is an opt-in, and opens the window
    consent = await ChannelConsent.get(profile_id=owner.obj.id, channel=WHATSAPP)
    assert consent.status == ConsentStatus.OPTED_IN
    assert consent.last_inbound_at is not None

    # notified as any client message
    async def notified() -> bool:
        return await Notification.filter(
            agent_id=agent.obj.id, template_code="message_received"
        ).exists()

    await wait_until(notified, what="the agent's notification")


async def test_an_agents_answer_goes_back_by_whatsapp_while_the_window_is_open(client, twilio):
    owner, agent = await make_client(phone=PHONE), await make_agent()
    dossier = await make_dossier(owner)
    answer = await post_inbound(client, inbound_params(PHONE, "Quand ?", whatsapp=True))
    assert answer.status_code == 200

    sent = await gql(
        client, SEND, {"dossierId": str(dossier.id), "content": "Mardi à 10 h."}, token=agent.token
    )
    assert sent["sendMessage"]["userErrors"] == []
    settings = peer_settings(twilio=twilio)
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert (await deliver_due(settings=settings, now=later)).sent >= 1
    (request,) = [r for r in twilio.sent if r.form["To"].startswith("whatsapp:")]
    assert request.form["To"] == f"whatsapp:{PHONE}"
    assert "Mardi à 10 h." in request.form["Body"]
    assert dossier.reference in request.form["Body"]

    # a day later the window is closed: the next answer stays in the app (and e-mail)
    twilio.reset()
    await ChannelConsent.filter(profile_id=owner.obj.id).update(
        last_inbound_at=datetime.now(UTC) - timedelta(hours=25)
    )
    await gql(client, SEND, {"dossierId": str(dossier.id), "content": "Rappel"}, token=agent.token)
    await deliver_due(settings=settings, now=later)
    assert [r for r in twilio.sent if r.form["To"].startswith("whatsapp:")] == []


async def test_a_forged_inbound_is_refused_and_writes_nothing(client, twilio):
    owner = await make_client(phone=PHONE)
    await make_dossier(owner)
    params = inbound_params(PHONE, "Bonjour", whatsapp=True)
    forged = [
        await post_inbound(client, params, token="not-the-token"),
        await post_inbound(client, params, signature=""),
        await post_inbound(client, params, path="/webhooks/twilio/inbound?x=1", token="nope"),
    ]
    assert [r.status_code for r in forged] == [403, 403, 403]
    assert await InboundMessage.all().count() == 0
    assert await Message.all().count() == 0
    assert not await ChannelConsent.filter(profile_id=owner.obj.id).exists()


async def test_a_retried_inbound_creates_nothing_twice(client, twilio):
    owner = await make_client(phone=PHONE)
    dossier = await make_dossier(owner)
    photo = add_media(twilio, make_png(), "image/png")
    params = inbound_params(PHONE, "Ma carte", whatsapp=True, media=[(photo, "image/png")])
    answers = [await post_inbound(client, params) for _ in range(2)]
    answers += await asyncio.gather(*(post_inbound(client, params) for _ in range(2)))
    assert [a.status_code for a in answers] == [200] * 4
    assert await Message.filter(dossier_id=dossier.id).count() == 1
    assert await InboundMessage.all().count() == 1
    assert await SharedFile.filter(dossier_id=dossier.id).count() == 1


async def test_an_sms_from_an_unknown_number_is_kept_for_admins_only(client, twilio):
    owner = await make_client(phone=PHONE)
    dossier = await make_dossier(owner)
    admin, agent = await make_admin(), await make_agent()
    answer = await post_inbound(client, inbound_params("+33700000001", "Qui êtes-vous ?"))
    assert answer.status_code == 200
    assert answer.text == EMPTY_TWIML

    assert await Message.filter(dossier_id=dossier.id).count() == 0
    listed = (await gql(client, INBOUND, token=admin.token))["inboundMessages"]["nodes"]
    assert listed == [
        {
            "fromNumber": "+33700000001",
            "body": "Qui êtes-vous ?",
            "channel": "SMS",
            "outcome": "UNKNOWN_SENDER",
        }
    ]
    for account in (agent, owner):
        body = await gql(client, INBOUND, token=account.token, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_stop_then_no_more_messages_and_start_again(client, twilio):
    owner = await make_client(phone=PHONE)
    await make_dossier(owner)
    settings = peer_settings(twilio=twilio)

    assert (await post_inbound(client, inbound_params(PHONE, "Arrêt"))).status_code == 200
    consent = await ChannelConsent.get(profile_id=owner.obj.id, channel=SMS)
    assert (consent.status, consent.opted_out_via) == (ConsentStatus.OPTED_OUT, "KEYWORD")
    assert await Message.all().count() == 0  # a keyword is no chat message
    (stopped,) = await pending_deliveries(
        1, SMS, profile_id=owner.obj.id, recipient=lambda _i: PHONE
    )
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert (await deliver_due(settings=settings, now=later)).skipped == 1
    assert twilio.requests == []
    assert (await NotificationDelivery.get(id=stopped.id)).status == NotificationStatus.FAILED

    assert (await post_inbound(client, inbound_params(PHONE, "start"))).status_code == 200
    await pending_deliveries(1, SMS, profile_id=owner.obj.id, recipient=lambda _i: PHONE)
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert (await deliver_due(settings=settings, now=later)).sent == 1
    assert [r.form["To"] for r in twilio.sent] == [PHONE]
