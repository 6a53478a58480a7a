"""Delivery receipts (issue 20): the worker sends through the Twilio stand-in, which then
posts status callbacks to the StatusCallback URL each message named, signed as Twilio signs
them (the `twilio` package's RequestValidator), in the order a test asks; agents read the
outcome through `clientDeliveries`."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest

from app.models import NotificationDelivery
from app.models.enums import NotificationChannel, NotificationStatus
from app.services.delivery import deliver_due
from app.services.phone import consents
from app.settings import get_settings
from tests.factories import make_agent, make_client
from tests.helpers import error_codes, gql
from tests.notifications_support import (
    TWILIO_TOKEN,
    TwilioPeer,
    peer_settings,
    pending_deliveries,
    send_statuses,
    serve_twilio,
    status_callback_form,
    twilio_signed,
)

EMAIL = NotificationChannel.EMAIL
SMS = NotificationChannel.SMS
WHATSAPP = NotificationChannel.WHATSAPP
PHONE = "+33612345678"

DELIVERIES = """
query($id: ID!, $channel: NotificationChannel) {
  clientDeliveries(clientId: $id, channel: $channel, first: 20) {
    totalCount
    nodes {
      id channel status recipientAddress sentAt deliveredAt readAt failedAt
      errorCode providerStatus reason failoverOf failoverReason
      notification { id templateCode }
    }
  }
}
"""


@pytest.fixture(scope="module")
async def twilio_server():
    peer = TwilioPeer()
    server, task = await serve_twilio(peer)
    yield peer
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def twilio(twilio_server, monkeypatch):
    """The stand-in, emptied, and the app holding the same auth token (callbacks verify)."""
    twilio_server.reset()
    monkeypatch.setattr(get_settings(), "twilio_auth_token", TWILIO_TOKEN)
    yield twilio_server
    twilio_server.reset()


async def sent_one(twilio, channel=WHATSAPP, *, client=None, **extra):
    """A client with a phone and one notification sent on `channel` through the stand-in."""
    client = client or await make_client(phone=PHONE)
    if channel == WHATSAPP:  # the client wrote first: opted in, inside the 24-hour window
        await consents.wrote_to_us(client.obj.id, WHATSAPP)
    (row,) = await pending_deliveries(
        1, channel, profile_id=client.obj.id, recipient=lambda _: PHONE
    )
    settings = peer_settings(twilio=twilio, **extra)
    assert (await deliver_due(settings=settings)).sent == 1
    stored = await NotificationDelivery.get(id=row.id)
    return client, stored, settings


async def state(row) -> dict:
    fresh = await NotificationDelivery.get(id=row.id)
    return {
        k: getattr(fresh, k)
        for k in (
            "status",
            "sent_at",
            "delivered_at",
            "read_at",
            "failed_at",
            "error_code",
            "provider_status",
            "provider_message_id",
            "last_error",
        )
    }


async def test_each_message_names_its_status_callback(twilio):
    _client, row, settings = await sent_one(twilio, SMS)

    (request,) = twilio.requests
    base = settings.public_api_url.rstrip("/")
    assert request.form["StatusCallback"] == f"{base}/webhooks/twilio/status?delivery={row.id}"
    assert row.provider_message_id in twilio.accepted_messages

    await sent_one(twilio, SMS, twilio_status_callbacks=False)
    assert "StatusCallback" not in twilio.requests[-1].form  # receipts can be turned off


async def test_receipts_move_a_delivery_to_delivered_then_read_and_repeats_change_nothing(
    client, twilio
):
    customer, row, _ = await sent_one(twilio)
    sid = row.provider_message_id
    agent = await make_agent()
    assert (await state(row))["status"] == NotificationStatus.SENT

    assert await send_statuses(twilio, sid, "sent", "delivered", via=client) == [204, 204]
    delivered = await state(row)
    assert delivered["status"] == NotificationStatus.DELIVERED
    assert delivered["delivered_at"] is not None
    assert delivered["provider_status"] == "delivered"

    assert await send_statuses(twilio, sid, "delivered", via=client) == [204]  # twice
    assert await state(row) == delivered  # nothing changed, not even the time

    await send_statuses(twilio, sid, "read", via=client)
    read = await state(row)
    assert read["status"] == NotificationStatus.READ
    assert read["delivered_at"] == delivered["delivered_at"]
    assert read["read_at"] is not None

    # late and repeated: a "sent", a "delivered", a "read" again, then a contradictory
    # failure: none overwrites READ
    await send_statuses(twilio, sid, "sent", "delivered", "read", ("failed", "30008"), via=client)
    assert await state(row) == read

    # what the agent sees of the client's notices, per notification and channel
    data = await gql(client, DELIVERIES, {"id": customer.id}, token=agent.token)
    (node,) = data["clientDeliveries"]["nodes"]
    assert node["id"] == str(row.id)
    assert (node["channel"], node["status"], node["errorCode"]) == ("WHATSAPP", "READ", None)
    assert node["deliveredAt"]
    assert node["readAt"]
    assert node["sentAt"]
    assert node["recipientAddress"] == PHONE
    assert node["notification"]["templateCode"] == "dossier_completed"
    assert data["clientDeliveries"]["totalCount"] == 1
    empty = await gql(
        client, DELIVERIES, {"id": customer.id, "channel": "EMAIL"}, token=agent.token
    )
    assert empty["clientDeliveries"]["nodes"] == []
    # a client may not read it (their own notifications carry their deliveries)
    refused = await gql(
        client, DELIVERIES, {"id": customer.id}, token=customer.token, expect_errors=True
    )
    assert error_codes(refused) == ["FORBIDDEN"]


async def test_receipts_out_of_order_end_in_the_highest_state_with_each_time(client, twilio):
    _customer, row, _ = await sent_one(twilio)
    sid = row.provider_message_id

    assert (
        await send_statuses(twilio, sid, "read", "delivered", "sent", "queued", via=client)
        == [204] * 4
    )

    after = await state(row)
    assert after["status"] == NotificationStatus.READ
    assert after["read_at"] is not None
    assert after["delivered_at"] is not None  # told later, recorded all the same
    assert after["delivered_at"] >= after["read_at"]


async def test_delivered_after_undelivered_wins_and_keeps_the_code(client, twilio):
    _customer, row, _ = await sent_one(twilio, SMS)
    sid = row.provider_message_id

    await send_statuses(twilio, sid, ("undelivered", "30008"), via=client)  # not permanent
    undelivered = await state(row)
    assert (undelivered["status"], undelivered["error_code"]) == (
        NotificationStatus.UNDELIVERED,
        "30008",
    )
    assert not await NotificationDelivery.filter(failover_of_id=row.id).exists()

    await send_statuses(twilio, sid, "delivered", via=client)
    after = await state(row)
    assert after["status"] == NotificationStatus.DELIVERED
    assert after["error_code"] == "30008"


async def test_a_forged_callback_is_refused_and_changes_nothing(client, twilio):
    _customer, row, _ = await sent_one(twilio, SMS)
    sid = row.provider_message_id
    before = await state(row)
    url = twilio.accepted_messages[sid]["StatusCallback"]
    form = status_callback_form(twilio, sid, "delivered")
    body = urlencode(form)
    plain = {"content-type": "application/x-www-form-urlencoded"}
    other = await NotificationDelivery.create(
        notification_id=row.notification_id, channel=EMAIL, recipient="x@example.com"
    )

    answers = [
        await client.post(url, content=body, headers=plain),  # unsigned
        await client.post(  # signed with another token
            url,
            content=body,
            headers={**plain, "x-twilio-signature": twilio_signed(url, form, "not-the-token")},
        ),
        await client.post(  # a genuine signature, another delivery's URL
            url.replace(str(row.id), str(other.id)),
            content=body,
            headers={**plain, "x-twilio-signature": twilio_signed(url, form)},
        ),
        await client.post(  # a genuine signature, the status changed on the way
            url,
            content=body.replace("delivered", "read"),
            headers={**plain, "x-twilio-signature": twilio_signed(url, form)},
        ),
    ]

    assert [a.status_code for a in answers] == [403] * 4
    assert await state(row) == before
    assert await send_statuses(twilio, sid, "delivered", via=client, token="forged") == [403]
    assert await state(row) == before


async def test_a_receipt_for_another_message_of_the_delivery_is_ignored(client, twilio):
    _customer, row, _ = await sent_one(twilio, SMS)
    before = await state(row)
    # the same StatusCallback URL (this delivery) but another sid: not the message we keep
    twilio.accepted_messages["SM" + "0" * 32] = twilio.accepted_messages[row.provider_message_id]

    assert await send_statuses(twilio, "SM" + "0" * 32, "delivered", via=client) == [204]

    assert await state(row) == before


async def test_a_permanent_failure_fails_over_to_the_next_channel_once(client, twilio):
    customer = await make_client(phone=PHONE)
    agent = await make_agent()
    _customer, whatsapp, settings = await sent_one(twilio, WHATSAPP, client=customer)

    # not on WhatsApp (63003): the same notification goes by SMS, once
    codes = await send_statuses(
        twilio, whatsapp.provider_message_id, ("failed", "63003"), ("failed", "63003"), via=client
    )
    assert codes == [204, 204]
    failed = await state(whatsapp)
    assert (failed["status"], failed["error_code"]) == (NotificationStatus.FAILED, "63003")
    assert failed["failed_at"] is not None
    (sms,) = await NotificationDelivery.filter(failover_of_id=whatsapp.id)
    assert (sms.channel, sms.recipient, sms.status) == (SMS, PHONE, NotificationStatus.PENDING)
    assert sms.notification_id == whatsapp.notification_id
    assert "63003" in sms.failover_reason

    assert (await deliver_due(settings=settings)).sent == 1
    assert twilio.sent[-1].form["To"] == PHONE  # an SMS, not whatsapp:…
    sms = await NotificationDelivery.get(id=sms.id)

    # the SMS fails for good too (unreachable handset): a failover never fails over
    await send_statuses(twilio, sms.provider_message_id, ("undelivered", "30003"), via=client)
    assert (await NotificationDelivery.get(id=sms.id)).status == NotificationStatus.UNDELIVERED
    assert await NotificationDelivery.filter(notification_id=whatsapp.notification_id).count() == 2

    data = await gql(client, DELIVERIES, {"id": customer.id}, token=agent.token)
    nodes = {n["channel"]: n for n in data["clientDeliveries"]["nodes"]}
    assert nodes["SMS"]["failoverOf"] == str(whatsapp.id)
    assert "63003" in nodes["SMS"]["failoverReason"]
    assert (nodes["SMS"]["status"], nodes["SMS"]["errorCode"]) == ("UNDELIVERED", "30003")
    assert (nodes["WHATSAPP"]["status"], nodes["WHATSAPP"]["errorCode"]) == ("FAILED", "63003")
    assert "63003" in nodes["WHATSAPP"]["reason"]


async def test_an_invalid_number_refused_at_send_fails_over_to_email(twilio):
    customer = await make_client(phone=PHONE)
    (row,) = await pending_deliveries(1, SMS, profile_id=customer.obj.id, recipient=lambda _: PHONE)
    twilio.plan = [400]  # Twilio's 21211: invalid 'To' number
    settings = peer_settings(twilio=twilio)

    assert (await deliver_due(settings=settings)).failed == 1

    failed = await NotificationDelivery.get(id=row.id)
    assert (failed.status, failed.error_code) == (NotificationStatus.FAILED, "21211")
    # the number is what failed: not WhatsApp on the same number, the e-mail
    (email,) = await NotificationDelivery.filter(failover_of_id=row.id)
    assert (email.channel, email.recipient) == (EMAIL, customer.email)


async def test_a_receipt_before_the_send_is_recorded_keeps_both(client, twilio):
    """Twilio can call back before the worker wrote down the send: the receipt moves the
    delivery on, the worker's record only adds what the send returned."""
    from app.services.receipts import Receipt, apply_receipt

    customer = await make_client(phone=PHONE)
    (row,) = await pending_deliveries(1, SMS, profile_id=customer.obj.id, recipient=lambda _: PHONE)
    twilio.hold()  # the stand-in accepts the message but is slow to answer
    settings = peer_settings(twilio=twilio)
    worker = asyncio.create_task(deliver_due(settings=settings))
    for _ in range(250):
        if twilio.requests:
            break
        await asyncio.sleep(0.02)
    # a receipt naming the delivery (the sid is not known to us yet)
    outcome = await apply_receipt(
        Receipt(message_sid="SM" + "f" * 32, status="delivered", delivery_id=row.id)
    )
    assert outcome.value == "applied"
    assert (await NotificationDelivery.get(id=row.id)).status == NotificationStatus.DELIVERED
    twilio.release()
    await worker

    stored = await NotificationDelivery.get(id=row.id)
    assert stored.status == NotificationStatus.DELIVERED  # not back to SENT
    assert stored.provider_message_id == "SM" + "f" * 32
