"""The delivery worker against real peers: aiosmtpd for email, a Twilio stand-in over HTTP.

Clock: every pass gets `now=`, so backoff and claim leases are checked without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.models import Notification, NotificationDelivery
from app.models.enums import NotificationChannel, NotificationStatus
from app.services import delivery
from app.services.delivery import deliver_due
from app.services.phone import consents
from tests.factories import make_client
from tests.notifications_support import (
    TWILIO_FROM,
    TWILIO_SID,
    TWILIO_WHATSAPP_FROM,
    SmtpPeer,
    TwilioPeer,
    parts,
    peer_settings,
    pending_deliveries,
    serve_twilio,
)

EMAIL = NotificationChannel.EMAIL
SMS = NotificationChannel.SMS
WHATSAPP = NotificationChannel.WHATSAPP
ROOT = Path(__file__).resolve().parent.parent
PENDING, SENT, FAILED = (
    NotificationStatus.PENDING,
    NotificationStatus.SENT,
    NotificationStatus.FAILED,
)


@pytest.fixture(scope="session")
def smtp_server():
    peer = SmtpPeer().start()
    yield peer
    peer.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.reset()
    yield smtp_server
    smtp_server.reset()


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


async def rows(deliveries) -> list[NotificationDelivery]:
    return list(await NotificationDelivery.filter(id__in=[d.id for d in deliveries]).order_by("id"))


async def one(delivery_row) -> NotificationDelivery:
    return await NotificationDelivery.get(id=delivery_row.id)


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


# --- email ---------------------------------------------------------------------------------


async def test_email_is_sent_over_smtp_and_recorded(smtp):
    client = await make_client()
    (row,) = await pending_deliveries(
        1, EMAIL, profile_id=client.obj.id, recipient=lambda _: "camille@example.com"
    )
    settings = peer_settings(smtp=smtp)

    report = await deliver_due(settings=settings)

    assert report.sent == 1
    (message,) = smtp.accepted
    assert message["To"] == "camille@example.com"
    assert message["Subject"] == "Votre dossier est terminé [PV-2030-000042]"  # its case number
    assert message["Content-Language"] == "fr"
    expected_id = f"<{row.id}@partners-vrai.test>"
    assert message["Message-ID"] == expected_id
    text, html = parts(message)
    assert "Votre dossier « Residence permit » (réf. R0) est terminé" in text
    assert '<html lang="fr">' in html
    assert 'href="http://app.test/dossiers/1"' in html
    stored = await one(row)
    assert stored.status == SENT
    assert stored.provider == "smtp"
    assert stored.provider_message_id == expected_id
    assert "Message accepted" in stored.provider_response["reply"]
    assert stored.sent_at is not None
    assert stored.attempts == 1
    assert stored.claimed_until is None


async def test_smtp_451_is_retried_with_backoff_and_sent_once(smtp):
    client = await make_client()
    (row,) = await pending_deliveries(
        1, EMAIL, profile_id=client.obj.id, recipient=lambda _: "camille@example.com"
    )
    settings = peer_settings(smtp=smtp, delivery_backoff_seconds=60)
    smtp.answer_data("451 4.3.0 Mailbox busy, try again later")
    t0 = later(1)

    first = await deliver_due(now=t0, settings=settings)

    assert (first.sent, first.retrying) == (0, 1)
    stored = await one(row)
    assert stored.status == PENDING
    assert stored.attempts == 1
    assert "451" in stored.last_error
    assert stored.provider_response["code"] == 451
    # exponential backoff with jitter: the first retry waits between 30 and 60 s
    delay = (stored.next_attempt_at - t0).total_seconds()
    assert 30 <= delay <= 60
    assert (await deliver_due(now=t0 + timedelta(seconds=29), settings=settings)).claimed == 0

    second = await deliver_due(now=t0 + timedelta(seconds=61), settings=settings)

    assert second.sent == 1
    assert len(smtp.accepted) == 1  # sent exactly once
    assert len(smtp.attempted) == 2
    # both attempts carried the same Message-ID
    assert {m["Message-ID"] for m in smtp.attempted} == {f"<{row.id}@partners-vrai.test>"}
    stored = await one(row)
    assert (stored.status, stored.attempts, stored.last_error) == (SENT, 2, None)
    assert (
        await deliver_due(now=t0 + timedelta(hours=2), settings=settings) == delivery.PassReport()
    )


async def test_smtp_550_fails_at_once_and_is_not_retried(smtp):
    client = await make_client()
    (row,) = await pending_deliveries(
        1, EMAIL, profile_id=client.obj.id, recipient=lambda _: "nobody@example.com"
    )
    settings = peer_settings(smtp=smtp)
    smtp.answer_rcpt("550 5.1.1 No such user here")

    report = await deliver_due(settings=settings)

    assert report.failed == 1
    stored = await one(row)
    assert stored.status == FAILED
    assert stored.failed_at is not None
    assert stored.attempts == 1
    assert "550" in stored.last_error
    assert stored.provider == "smtp"
    assert stored.provider_response["refused"][0]["code"] == 550
    assert smtp.accepted == []
    assert (await deliver_due(now=later(86400), settings=settings)).claimed == 0


async def test_backoff_grows_exponentially_until_the_attempt_limit(twilio):
    client = await make_client()
    (row,) = await pending_deliveries(1, SMS, profile_id=client.obj.id)
    settings = peer_settings(twilio=twilio, delivery_max_attempts=4, delivery_backoff_seconds=10)
    twilio.plan = [500] * 10
    now = later(1)
    delays = []
    for _ in range(3):
        report = await deliver_due(now=now, settings=settings)
        assert report.retrying == 1
        stored = await one(row)
        delays.append((stored.next_attempt_at - now).total_seconds())
        now = stored.next_attempt_at
    # attempt n waits between base*2^(n-1)/2 and base*2^(n-1)
    for n, delay in enumerate(delays, start=1):
        full = 10 * 2 ** (n - 1)
        assert full / 2 <= delay <= full, delays

    last = await deliver_due(now=now, settings=settings)

    assert last.failed == 1
    stored = await one(row)
    assert (stored.status, stored.attempts) == (FAILED, 4)
    assert stored.provider_response["status"] == 500
    assert len(twilio.requests) == 4


async def test_provider_down_for_a_while_then_back_loses_nothing():
    client = await make_client()
    rows_ = await pending_deliveries(
        20, EMAIL, profile_id=client.obj.id, recipient=lambda i: f"c{i}@example.com"
    )
    smtp = SmtpPeer()  # a port where nothing listens yet: connection refused
    settings = peer_settings(smtp=smtp, delivery_backoff_seconds=5, delivery_max_attempts=10)
    now = later(1)
    try:
        for _ in range(3):  # three passes while the server is down
            report = await deliver_due(now=now, settings=settings)
            assert (report.claimed, report.retrying, report.sent) == (20, 20, 0)
            now += timedelta(minutes=5)
        stored = await rows(rows_)
        assert {d.status for d in stored} == {PENDING}
        assert all("Connect" in d.last_error or "refused" in d.last_error for d in stored)

        smtp.start()
        report = await deliver_due(now=now, settings=settings)
    finally:
        smtp.stop()

    assert report.sent == 20
    assert sorted(m["To"] for m in smtp.accepted) == sorted(f"c{i}@example.com" for i in range(20))
    stored = await rows(rows_)
    assert {(d.status, d.attempts) for d in stored} == {(SENT, 4)}


# --- SMS and WhatsApp ------------------------------------------------------------------------


async def test_sms_goes_to_twilio_form_encoded_with_basic_auth(twilio):
    client = await make_client()
    (row,) = await pending_deliveries(1, SMS, profile_id=client.obj.id)
    settings = peer_settings(twilio=twilio)

    assert (await deliver_due(settings=settings)).sent == 1

    (request,) = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request.authorization == twilio.expected_authorization()
    assert request.content_type.startswith("application/x-www-form-urlencoded")
    assert request.form["To"] == "+33610000000"
    assert request.form["From"] == TWILIO_FROM
    assert "votre dossier « Residence permit » est terminé" in request.form["Body"]
    assert "http://app.test/dossiers/1" in request.form["Body"]
    stored = await one(row)
    assert stored.status == SENT
    assert stored.provider == "twilio"
    assert stored.provider_message_id.startswith("SM")
    assert stored.provider_response["status"] == 201
    assert stored.provider_response["body"]["status"] == "queued"


async def test_whatsapp_numbers_carry_the_whatsapp_prefix(twilio):
    client = await make_client()
    # WhatsApp needs an opt-in, and free text the 24-hour window: the client wrote to us
    await consents.wrote_to_us(client.obj.id, WHATSAPP)
    await pending_deliveries(1, WHATSAPP, profile_id=client.obj.id, locale="en")
    settings = peer_settings(twilio=twilio)

    assert (await deliver_due(settings=settings)).sent == 1

    (request,) = twilio.requests
    assert request.form["To"] == "whatsapp:+33610000000"
    assert request.form["From"] == f"whatsapp:{TWILIO_WHATSAPP_FROM}"
    assert 'your dossier "Residence permit" is complete' in request.form["Body"]


async def test_twilio_500_is_retried_and_400_fails_at_once(twilio):
    client = await make_client()
    retried, rejected = await pending_deliveries(2, SMS, profile_id=client.obj.id)
    settings = peer_settings(twilio=twilio)
    twilio.plan_by_to = {retried.recipient: [500], rejected.recipient: [400]}
    now = later(1)

    first = await deliver_due(now=now, settings=settings)

    assert (first.retrying, first.failed) == (1, 1)
    assert (await one(retried)).status == PENDING
    failed = await one(rejected)
    assert failed.status == FAILED
    assert failed.provider_response["status"] == 400
    assert failed.provider_response["body"]["code"] == 21211
    assert "HTTP 400" in failed.last_error
    assert failed.error_code == "21211"
    # an invalid number (21211) tries the client's next channel once: their e-mail
    (failover,) = await NotificationDelivery.filter(failover_of_id=failed.id)
    assert (failover.channel, failover.status) == (EMAIL, PENDING)

    second = await deliver_due(now=now + timedelta(hours=1), settings=settings)

    assert (second.claimed, second.sent) == (2, 2)  # the retry, and the e-mail (logged)
    assert (await one(retried)).status == SENT
    assert len(twilio.sent) == 1


async def test_a_timeout_is_transient(twilio):
    client = await make_client()
    (row,) = await pending_deliveries(1, SMS, profile_id=client.obj.id)
    twilio.hold()
    settings = peer_settings(twilio=twilio, twilio_timeout_seconds=0.2)

    report = await deliver_due(settings=settings)

    assert report.retrying == 1
    stored = await one(row)
    assert stored.status == PENDING
    assert "Timeout" in stored.last_error


# --- claims: crashes, shutdowns, several workers ------------------------------------------


async def test_a_dead_workers_claims_expire_and_are_sent_later(twilio):
    client = await make_client()
    rows_ = await pending_deliveries(3, SMS, profile_id=client.obj.id)
    settings = peer_settings(twilio=twilio, delivery_claim_seconds=120)
    t0 = later(1)
    claimed = await delivery.claim(t0, 10, settings)  # ...and the worker dies here
    assert len(claimed) == 3
    assert all(d.claimed_until == t0 + timedelta(seconds=120) for d in await rows(rows_))

    assert (await deliver_due(now=t0 + timedelta(seconds=60), settings=settings)).claimed == 0
    report = await deliver_due(now=t0 + timedelta(seconds=121), settings=settings)

    assert report.sent == 3
    assert {(d.status, d.attempts) for d in await rows(rows_)} == {(SENT, 2)}
    assert len(twilio.requests) == 3


async def test_a_cancelled_pass_hands_its_claims_back(twilio):
    client = await make_client()
    rows_ = await pending_deliveries(2, SMS, profile_id=client.obj.id)
    twilio.hold()  # the provider hangs; the worker is told to stop meanwhile
    settings = peer_settings(twilio=twilio, twilio_timeout_seconds=60)
    task = asyncio.create_task(deliver_due(settings=settings))
    for _ in range(200):
        if len(twilio.requests) == 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    stored = await rows(rows_)
    assert {(d.status, d.attempts, d.claimed_until) for d in stored} == {(PENDING, 0, None)}
    twilio.release()
    assert (await deliver_due(settings=settings)).sent == 2


async def test_two_workers_on_500_deliveries_send_each_exactly_once(twilio, backend):
    client = await make_client()
    rows_ = await pending_deliveries(500, SMS, profile_id=client.obj.id)
    settings = peer_settings(twilio=twilio, delivery_batch_size=50)

    async def worker() -> int:
        sent = 0
        while (report := await deliver_due(settings=settings)).claimed:
            sent += report.sent
        return sent

    started = asyncio.get_running_loop().time()
    counts = await asyncio.gather(worker(), worker())
    elapsed = asyncio.get_running_loop().time() - started

    assert sum(counts) == 500
    to = Counter(r.form["To"] for r in twilio.requests)
    assert len(to) == 500
    assert set(to.values()) == {1}
    assert {(d.status, d.attempts) for d in await rows(rows_)} == {(SENT, 1)}
    logging.getLogger("tests").warning(
        "two workers sent 500 SMS in %.2fs (%s) on %s", elapsed, counts, backend.name
    )


@pytest.mark.postgres
async def test_two_worker_processes_share_500_deliveries(twilio, database_url):
    """The real `python -m app worker`, twice, on one PostgreSQL: each SMS goes out once."""
    client = await make_client()
    rows_ = await pending_deliveries(500, SMS, profile_id=client.obj.id)
    root = ROOT
    processes = []
    for n in (1, 2):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TWILIO_API_BASE": twilio.url,
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": "twilio-test-token",
            "TWILIO_FROM_NUMBER": f"+1500555000{n}",  # tells which worker sent what
            "DELIVERY_BATCH_SIZE": "25",
            "SMTP_HOST": "",
        }
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app", "worker", cwd=root, env=env
            )
        )
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while await NotificationDelivery.filter(status=PENDING).exists():
            assert asyncio.get_running_loop().time() < deadline, "workers did not drain"
            await asyncio.sleep(0.2)
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), 20) for p in processes]

    assert codes == [0, 0]  # both stopped gracefully on SIGTERM
    to = Counter(r.form["To"] for r in twilio.requests)
    assert len(to) == 500
    assert set(to.values()) == {1}
    assert {(d.status, d.attempts) for d in await rows(rows_)} == {(SENT, 1)}
    by_worker = Counter(r.form["From"] for r in twilio.requests)
    logging.getLogger("tests").warning("two worker processes split 500 SMS: %s", by_worker)


# --- the log channel (embedded default) --------------------------------------------------


async def test_without_smtp_or_twilio_messages_go_to_the_log(caplog):
    client = await make_client()
    (email,) = await pending_deliveries(
        1, EMAIL, profile_id=client.obj.id, recipient=lambda _: "log@example.com"
    )
    (sms,) = await pending_deliveries(
        1, SMS, profile_id=client.obj.id, recipient=lambda _: "+33699999999"
    )
    with caplog.at_level(logging.INFO, logger="app.notifications.outbox"):
        report = await deliver_due(settings=peer_settings())

    assert report.sent == 2
    logged = caplog.text
    assert "EMAIL to log@example.com" in logged
    assert "Subject: Votre dossier est terminé" in logged
    assert "SMS to +33699999999" in logged
    for row in (email, sms):
        stored = await one(row)
        assert (stored.status, stored.provider) == (SENT, "log")


async def test_in_process_worker_runs_with_the_embedded_app(database_url):
    """On SQLite the web app's lifespan runs the worker jobs itself."""
    from app.main import create_app

    client = await make_client()
    (row,) = await pending_deliveries(1, SMS, profile_id=client.obj.id)
    settings = peer_settings(database_url="sqlite://:memory:")  # only is_sqlite is read
    app = create_app(settings, manage_db=False)
    async with app.router.lifespan_context(app):
        for _ in range(300):
            if (await one(row)).status == SENT:
                break
            await asyncio.sleep(0.01)
    assert (await one(row)).status == SENT


async def test_a_template_that_cannot_render_fails_permanently():
    client = await make_client()
    (row,) = await pending_deliveries(1, SMS, profile_id=client.obj.id, template="no_such_template")
    report = await deliver_due(settings=peer_settings())
    assert report.failed == 1
    stored = await one(row)
    assert stored.status == FAILED
    assert "no_such_template" in stored.last_error
    assert await Notification.filter(id=stored.notification_id).exists()
