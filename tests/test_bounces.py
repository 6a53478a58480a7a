"""E-mail bounces (issue 20): the e-mail goes out through the aiosmtpd peer with its VERP
envelope sender; the receiving MTA's DSN (RFC 3464 multipart/report, built as Postfix
writes them, our message attached) is posted to our bounce path the way SendGrid's Inbound
Parse posts raw MIME; the delivery fails, the address is flagged, and the SMS goes out
through the Twilio stand-in."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest

from app.models import Credential, NotificationDelivery, Profile
from app.models.enums import EventType, NotificationChannel, NotificationStatus
from app.services import bounces
from app.services.delivery import deliver_due
from app.settings import get_settings
from tests.factories import make_admin, make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.notifications_support import (
    TwilioPeer,
    channels_of,
    emit,
    notifications_of,
    peer_settings,
    pending_deliveries,
    serve_twilio,
)

EMAIL = NotificationChannel.EMAIL
SMS = NotificationChannel.SMS
PHONE = "+33698765432"
BOUNCES = "bounces@partners-vrai.test"
SECRET = "bounce-hook-secret-0123456789"

PROFILE = """
query($id: ID!) {
  clientDeliveries(clientId: $id, first: 20) {
    nodes { channel status errorCode providerStatus reason failoverOf failoverReason }
  }
}
"""
ME = "query { me { ... on Profile { emailBounce { address bouncedAt reason } } } }"


@pytest.fixture(scope="module")
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


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setattr(get_settings(), "email_bounce_webhook_secret", SECRET)
    monkeypatch.setattr(get_settings(), "email_bounce_address", BOUNCES)


def dsn(
    envelope_sender: str,
    recipient: str,
    original: bytes,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
) -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464), to the envelope
    sender of the message it returns."""
    boundary = f"{uuid.uuid4().hex}.mx.example.net"
    date = "Mon, 4 Mar 2030 10:00:00 +0000"
    diagnostic = diagnostic.format(r=recipient)
    lines = [
        "Return-Path: <>",
        f"Delivered-To: {envelope_sender}",
        f"Date: {date}",
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)",
        "Subject: Undelivered Mail Returned to Sender",
        f"To: {envelope_sender}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 7bit",
        f"Message-Id: <{uuid.uuid4().hex}@mx.example.net>",
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "This is the mail system at host mx.example.net.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients.",
        "",
        f"<{recipient}>: host mx.example.net said: {diagnostic}",
        "",
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example.net",
        "X-Postfix-Queue-ID: 4Q7Z1c2vX9z3xyz",
        f"X-Postfix-Sender: rfc822; {envelope_sender}",
        f"Arrival-Date: {date}",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        f"Original-Recipient: rfc822;{recipient}",
        f"Action: {action}",
        f"Status: {status}",
        "Remote-MTA: dns; mx.example.net",
        f"Diagnostic-Code: {diagnostic}",
        "",
        f"--{boundary}",
        "Content-Description: Undelivered Message",
        "Content-Type: message/rfc822",
        "",
    ]
    head = "\r\n".join(lines).encode() + b"\r\n"
    return (
        head
        + original.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        + (f"\r\n--{boundary}--\r\n".encode())
    )


def basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"bounces:{secret}".encode()).decode()


async def post_inbound(client, raw: bytes, envelope_to: str, *, secret: str = SECRET):
    """As SendGrid's Inbound Parse posts a message with "POST the raw, full MIME message"."""
    return await client.post(
        "/webhooks/email/bounces",
        files={
            "email": (None, raw),
            "envelope": (None, json.dumps({"to": [envelope_to], "from": ""})),
            "to": (None, envelope_to),
            "from": (None, "MAILER-DAEMON@mx.example.net"),
        },
        headers={"authorization": basic(secret)},
    )


async def sent_email(smtp, twilio, *, client=None):
    client = client or await make_client(phone=PHONE)
    (row,) = await pending_deliveries(
        1, EMAIL, profile_id=client.obj.id, recipient=lambda _: client.email
    )
    settings = peer_settings(smtp=smtp, twilio=twilio, email_bounce_address=BOUNCES)
    assert (await deliver_due(settings=settings)).sent == 1
    (envelope,) = smtp.envelopes
    return client, row, settings, envelope


async def test_the_envelope_sender_is_a_signed_address_per_delivery(smtp, twilio):
    _client, row, _settings, envelope = await sent_email(smtp, twilio)

    local, _, domain = envelope.mail_from.partition("@")
    assert domain == "partners-vrai.test"
    assert local.startswith(f"bounces+{row.id.hex}-")
    assert len(local) <= 64  # RFC 5321's limit on a local part
    assert bounces.delivery_of(envelope.mail_from) == row.id
    (message,) = smtp.accepted
    assert message["From"] == get_settings().smtp_from  # the From header is unchanged
    # nobody can make another delivery's address: the token is an HMAC
    forged = envelope.mail_from.replace(row.id.hex, uuid.uuid4().hex)
    assert bounces.delivery_of(forged) is None


async def test_a_hard_bounce_fails_the_email_flags_the_address_and_texts_instead(
    client, smtp, twilio, hook
):
    customer, row, settings, envelope = await sent_email(smtp, twilio)
    agent = await make_agent()
    report = dsn(envelope.mail_from, customer.email, envelope.content)

    answer = await post_inbound(client, report, envelope.mail_from)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcome": "applied"}
    failed = await NotificationDelivery.get(id=row.id)
    assert (failed.status, failed.error_code) == (NotificationStatus.FAILED, "5.1.1")
    assert failed.provider_status == "bounced"
    assert "User unknown" in failed.last_error
    assert failed.failed_at is not None
    profile = await Profile.get(id=customer.obj.id)
    assert profile.email_bounced_address == customer.email
    assert profile.email_bounced_at is not None
    assert profile.email_bounce_reason.startswith("5.1.1")
    mine = await gql(client, ME, token=customer.token)
    assert mine["me"]["emailBounce"]["address"] == customer.email

    # the next channel, once: the SMS, through Twilio
    (sms,) = await NotificationDelivery.filter(failover_of_id=row.id)
    assert (sms.channel, sms.recipient) == (SMS, PHONE)
    assert (await deliver_due(settings=settings)).sent == 1
    (text,) = twilio.sent
    assert text.form["To"] == PHONE

    # the same DSN again (a provider's retry): nothing changes, no second SMS
    again = await post_inbound(client, report, envelope.mail_from)
    assert again.json() == {"outcome": "unchanged"}
    assert await NotificationDelivery.filter(notification_id=row.notification_id).count() == 2

    data = await gql(client, PROFILE, {"id": customer.id}, token=agent.token)
    nodes = {n["channel"]: n for n in data["clientDeliveries"]["nodes"]}
    assert (nodes["EMAIL"]["status"], nodes["EMAIL"]["errorCode"]) == ("FAILED", "5.1.1")
    assert nodes["SMS"]["failoverOf"] is not None
    assert "bounced" in nodes["SMS"]["failoverReason"]


async def test_a_bounced_address_is_not_used_again_until_it_changes(client, smtp, twilio, hook):
    customer, _row, _settings, envelope = await sent_email(smtp, twilio)
    await post_inbound(
        client, dsn(envelope.mail_from, customer.email, envelope.content), envelope.mail_from
    )
    dossier = await make_dossier(customer)

    event = await emit("dossier", dossier.id, EventType.DOSSIER_COMPLETED)

    (notification,) = await notifications_of(event)
    assert set(await channels_of(notification)) == {NotificationChannel.IN_APP, SMS}

    await Credential.filter(profile_id=customer.obj.id).update(email="camille.new@example.com")
    event = await emit("dossier", dossier.id, EventType.DOSSIER_CANCELLED)
    (notification,) = await notifications_of(event)
    assert (await channels_of(notification))[EMAIL] == "camille.new@example.com"


async def test_a_soft_bounce_is_recorded_not_flagged(client, smtp, twilio, hook):
    customer, row, _settings, envelope = await sent_email(smtp, twilio)
    report = dsn(
        envelope.mail_from,
        customer.email,
        envelope.content,
        action="delayed",
        status="4.2.2",
        diagnostic="smtp; 452 4.2.2 <{r}>: Mailbox full",
    )

    answer = await post_inbound(client, report, envelope.mail_from)

    assert answer.json() == {"outcome": "applied"}
    stored = await NotificationDelivery.get(id=row.id)
    assert stored.status == NotificationStatus.SENT  # still on its way
    assert (stored.provider_status, stored.error_code) == ("delayed", "4.2.2")
    assert "Mailbox full" in stored.last_error
    profile = await Profile.get(id=customer.obj.id)
    assert profile.email_bounced_at is None
    assert not await NotificationDelivery.filter(failover_of_id=row.id).exists()
    again = await post_inbound(client, report, envelope.mail_from)
    assert again.json() == {"outcome": "unchanged"}


async def test_the_bounce_path_refuses_strangers_and_forged_tokens(client, smtp, twilio, hook):
    customer, row, _settings, envelope = await sent_email(smtp, twilio)
    report = dsn(envelope.mail_from, customer.email, envelope.content)

    wrong = await post_inbound(client, report, envelope.mail_from, secret="guess")
    unsigned = await client.post(
        "/webhooks/email/bounces", content=report, headers={"content-type": "message/rfc822"}
    )
    assert (wrong.status_code, unsigned.status_code) == (403, 403)

    # a DSN naming this delivery's id with a token we did not make changes nothing
    forged_to = f"bounces+{row.id.hex}-{'0' * 20}@partners-vrai.test"
    forged = dsn(forged_to, customer.email, envelope.content)
    answer = await post_inbound(client, forged, forged_to)
    assert answer.json() == {"outcome": "unknown"}
    # an ordinary e-mail to the bounce address is no report
    plain = b"From: someone@example.net\r\nTo: " + BOUNCES.encode() + b"\r\n\r\nHello\r\n"
    assert (await post_inbound(client, plain, BOUNCES)).json() == {"outcome": "not-a-report"}
    stored = await NotificationDelivery.get(id=row.id)
    assert stored.status == NotificationStatus.SENT
    assert (await Profile.get(id=customer.obj.id)).email_bounced_at is None

    # the bare message (a mail server's pipe), authenticated: applied
    answer = await client.post(
        "/webhooks/email/bounces",
        content=report,
        headers={"content-type": "message/rfc822", "authorization": basic(SECRET)},
    )
    assert answer.json() == {"outcome": "applied"}


async def test_without_a_secret_the_bounce_path_is_closed(client, monkeypatch):
    monkeypatch.setattr(get_settings(), "email_bounce_webhook_secret", "")
    answer = await post_inbound(client, b"x", BOUNCES, secret="")
    assert answer.status_code == 403


def test_a_bounce_address_is_made_only_when_configured():
    settings = get_settings().model_copy(update={"email_bounce_address": ""})
    assert bounces.bounce_address(uuid.uuid4(), settings) is None
    settings = get_settings().model_copy(update={"email_bounce_address": BOUNCES})
    delivery_id = uuid.uuid4()
    address = bounces.bounce_address(delivery_id, settings)
    assert address is not None
    assert bounces.delivery_of(address.upper()) == delivery_id  # MTAs may change the case


async def test_an_erasure_forgets_the_bounced_address(client, smtp, twilio, hook):
    customer, row, _settings, envelope = await sent_email(smtp, twilio)
    report = dsn(envelope.mail_from, customer.email, envelope.content)
    assert (await post_inbound(client, report, envelope.mail_from)).status_code == 200
    admin = await make_admin()

    erased = await gql(
        client,
        'mutation($id: ID!) { eraseClient(input: {profileId: $id, reason: "asked", '
        "force: true}) { userErrors { code } } }",
        {"id": customer.id},
        token=admin.token,
    )

    assert erased["eraseClient"]["userErrors"] == []
    profile = await Profile.get(id=customer.obj.id)
    assert (profile.email_bounced_address, profile.email_bounce_reason) == (None, None)
    (sms,) = await NotificationDelivery.filter(failover_of_id=row.id)
    assert sms.failover_reason is None
    assert customer.email not in ((await NotificationDelivery.get(id=row.id)).last_error or "")
