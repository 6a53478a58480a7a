"""Events -> notifications: the rules (who, which channels, which template), the chat
throttle, idempotency, both languages, and the notifications/events API.

Events are recorded as services record them (inside `outbox.collecting()` and a
transaction, EVENT CONVENTIONS) on dossiers made by the factories; the outbox dispatches
them to the notifications consumer after commit.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.transactions import in_transaction

from app.consumers import install_consumers
from app.models import (
    Document,
    Event,
    Message,
    Notification,
    NotificationDelivery,
    Order,
    PaymentReminder,
    Profile,
    StepInstance,
)
from app.models.enums import (
    ActorType,
    AgentRole,
    EventType,
    Locale,
    NotificationChannel,
    NotificationStatus,
    OrderStatus,
)
from app.services import events, notifications, outbox, reminders
from app.services.delivery import deliver_due
from app.services.payments.failures import schedule_reminders
from app.settings import get_settings
from tests.factories import make_admin, make_agent, make_client, make_dossier, make_product
from tests.helpers import count_statements, error_codes, gql
from tests.notifications_support import (
    FULL_CONTEXT,
    SmtpPeer,
    TwilioPeer,
    channels_of,
    emit,
    notifications_of,
    parts,
    peer_settings,
    serve_twilio,
    viewer,
)

E = EventType
IN_APP, EMAIL, SMS, WHATSAPP = (
    NotificationChannel.IN_APP,
    NotificationChannel.EMAIL,
    NotificationChannel.SMS,
    NotificationChannel.WHATSAPP,
)
PHONE = "+33612345678"


@pytest.fixture(autouse=True)
def _consumers():
    install_consumers()  # what create_app and the worker do


@pytest.fixture(scope="module")
def smtp_server():
    peer = SmtpPeer().start()
    yield peer
    peer.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.reset()
    return smtp_server


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
    return twilio_server


async def with_phone(account, phone: str = PHONE, locale: Locale | None = None):
    changes = {"phone": phone}
    if locale is not None:
        changes["locale"] = locale
    await Profile.filter(id=account.obj.id).update(**changes)
    return account


async def first_document(dossier) -> Document:
    return await Document.filter(dossier_id=dossier.id).order_by("created_at").first()


async def dossier_event(dossier, event_type: EventType, *, actor=None, **payload) -> Event:
    """A dossier-scoped event as the workflow/document services record it."""
    if event_type.value.startswith("DOCUMENT_"):
        document = await first_document(dossier)
        return await emit(
            "document",
            document.id,
            event_type,
            actor=actor,
            payload={"dossierId": str(dossier.id), "documentId": str(document.id), **payload},
        )
    return await emit("dossier", dossier.id, event_type, actor=actor, payload=payload)


async def send_message(dossier, account, content: str, *, at: datetime | None = None) -> Event:
    """A chat message and its MESSAGE_SENT event (entity "message", payload dossierId)."""
    who = await viewer(account)
    async with outbox.collecting(), in_transaction():
        message = await Message.create(
            dossier_id=dossier.id,
            sender_type=who.actor_type,
            sender_id=who.actor_id,
            content=content,
        )
        event = await events.record(
            "message",
            message.id,
            E.MESSAGE_SENT,
            actor=who,
            payload={"dossierId": str(dossier.id), "senderType": who.actor_type.value},
        )
        if at is not None:  # as if sent at that moment
            await Event.filter(id=event.id).update(created_at=at)
    return event


async def for_recipient(account) -> list[Notification]:
    column = "agent_id" if account.obj.__class__.__name__ == "Agent" else "user_id"
    return list(await Notification.filter(**{column: account.obj.id}).order_by("created_at", "id"))


# --- the rules -----------------------------------------------------------------------------


CLIENT_RULES = [
    (E.DOSSIER_CREATED, "dossier_created", {IN_APP, EMAIL}),
    (E.STEP_STARTED, "step_started", {IN_APP, EMAIL}),
    (E.DOCUMENT_APPROVED, "document_approved", {IN_APP, EMAIL}),
    (E.DOCUMENT_REJECTED, "document_rejected", {IN_APP, EMAIL}),
    (E.DOCUMENT_CHANGES_REQUESTED, "document_changes_requested", {IN_APP, EMAIL, SMS}),
    (E.DOSSIER_COMPLETED, "dossier_completed", {IN_APP, EMAIL, SMS}),
    (E.DOSSIER_CANCELLED, "dossier_cancelled", {IN_APP, EMAIL}),
]


@pytest.mark.parametrize(("event_type", "template", "channels"), CLIENT_RULES)
async def test_dossier_events_notify_the_client(event_type, template, channels):
    client = await with_phone(await make_client())
    dossier = await make_dossier(client, await make_product(steps=(("pdf",), ())))
    agent = await make_agent()

    event = await dossier_event(
        dossier, event_type, actor=await viewer(agent), reason="Illegible scan"
    )

    (notification,) = [n for n in await notifications_of(event) if n.user_id]  # type: ignore[attr-defined]
    assert notification.user_id == client.obj.id  # type: ignore[attr-defined]
    assert notification.dossier_id == dossier.id  # type: ignore[attr-defined]
    assert notification.template_code == template
    assert notification.action_url.startswith(
        f"{get_settings().public_app_url}/dossiers/{dossier.id}"
    )
    deliveries = await channels_of(notification)
    assert set(deliveries) == channels
    assert deliveries[IN_APP] == f"user:{client.obj.id}"
    assert deliveries[EMAIL] == client.email
    if SMS in channels:
        assert deliveries[SMS] == PHONE
    assert not await Notification.filter(agent_id=agent.obj.id).exists()  # the actor


async def test_no_phone_no_text_message():
    client = await make_client()  # no phone
    dossier = await make_dossier(client)

    event = await dossier_event(dossier, E.DOSSIER_COMPLETED)

    (notification,) = await notifications_of(event)
    assert set(await channels_of(notification)) == {IN_APP, EMAIL}


async def test_the_phone_channel_is_a_setting(monkeypatch):
    monkeypatch.setenv("NOTIFICATION_PHONE_CHANNEL", "WHATSAPP")
    get_settings.cache_clear()
    try:
        client = await with_phone(await make_client())
        dossier = await make_dossier(client)
        event = await dossier_event(dossier, E.DOCUMENT_CHANGES_REQUESTED, reason="Blurry")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    (notification,) = await notifications_of(event)
    assert set(await channels_of(notification)) == {IN_APP, EMAIL, WHATSAPP}


async def test_a_document_upload_tells_every_active_agent_when_nobody_is_assigned():
    client = await make_client()
    dossier = await make_dossier(client)
    agent, admin = await make_agent(), await make_admin()
    retired = await make_agent(active=False)

    event = await dossier_event(dossier, E.DOCUMENT_UPLOADED, actor=await viewer(client))

    told = {n.agent_id for n in await notifications_of(event)}  # type: ignore[attr-defined]
    assert told >= {agent.obj.id, admin.obj.id}
    assert retired.obj.id not in told
    assert not await Notification.filter(user_id=client.obj.id).exists()
    (mine,) = await for_recipient(agent)
    assert mine.template_code == "document_uploaded"
    assert set(await channels_of(mine)) == {IN_APP, EMAIL}
    assert (await channels_of(mine))[EMAIL] == agent.email
    document = await first_document(dossier)
    assert mine.action_url.endswith(f"/dossiers/{dossier.id}/documents/{document.id}")


async def test_a_document_upload_tells_only_the_assigned_agent():
    client = await make_client()
    dossier = await make_dossier(client)
    assigned, other = await make_agent(), await make_agent()
    await StepInstance.filter(id=dossier.current_step_instance_id).update(
        assigned_to_id=assigned.obj.id
    )

    event = await dossier_event(dossier, E.DOCUMENT_UPLOADED, actor=await viewer(client))

    assert [n.agent_id for n in await notifications_of(event)] == [assigned.obj.id]  # type: ignore[attr-defined]
    assert await for_recipient(other) == []


async def test_a_new_dossier_tells_the_client_and_the_admins_in_app():
    client = await make_client()
    dossier = await make_dossier(client)
    admin, agent = await make_admin(), await make_agent()

    event = await dossier_event(dossier, E.DOSSIER_CREATED)

    by_template = {n.template_code: n for n in await notifications_of(event)}
    assert set(by_template) == {"dossier_created", "dossier_opened"}
    assert by_template["dossier_opened"].agent_id == admin.obj.id  # type: ignore[attr-defined]
    assert set(await channels_of(by_template["dossier_opened"])) == {IN_APP}
    assert await for_recipient(agent) == []


async def test_payment_events_notify_the_client_of_the_order():
    client = await make_client()
    product = await make_product()
    order = await Order.create(
        user_id=client.obj.id,
        product_id=product.id,
        amount=150_000,
        currency="eur",
        status=OrderStatus.PENDING,
    )

    failed = await emit("order", order.id, E.PAYMENT_FAILED, payload={"reason": "card_declined"})
    paid = await emit(
        "order", order.id, E.PAYMENT_SUCCEEDED, payload={"amount": 150_000, "currency": "eur"}
    )

    (failure,) = await notifications_of(failed)
    (success,) = await notifications_of(paid)
    assert (failure.template_code, success.template_code) == (
        "payment_failed",
        "payment_succeeded",
    )
    assert failure.user_id == success.user_id == client.obj.id  # type: ignore[attr-defined]
    assert failure.action_url.endswith(f"/orders/{order.id}")
    assert success.title == "Paiement reçu"
    assert "1\u202f500,00\u00a0€" in success.message
    assert set(await channels_of(success)) == {IN_APP, EMAIL}


async def test_payment_link_email_reaches_the_prospect(client, smtp):
    admin = await make_admin()
    product = await make_product()
    data = await gql(
        client,
        """mutation($input: CreatePaymentLinkInput!) {
          createPaymentLink(input: $input) { paymentLink { url } userErrors { code } } }""",
        {
            "input": {
                "productId": str(product.id),
                "prospectEmail": "Pat.Prospect@Example.com",
                "prospectName": "Pat Prospect",
            }
        },
        token=admin.token,
    )
    url = data["createPaymentLink"]["paymentLink"]["url"]

    (notification,) = await Notification.filter(template_code="payment_link")
    assert notification.user_id is None  # type: ignore[attr-defined]
    assert notification.agent_id is None  # type: ignore[attr-defined]
    assert await channels_of(notification) == {EMAIL: "pat.prospect@example.com"}
    assert notification.action_url == url.split("?")[0]  # the row never holds the secret
    assert "token=" not in notification.action_url

    assert (await deliver_due(settings=peer_settings(smtp=smtp))).sent == 1

    (message,) = smtp.accepted
    assert message["To"] == "pat.prospect@example.com"
    assert message["Subject"] == "Votre inscription : Product"
    assert message["Content-Language"] == "fr"
    delivery = await NotificationDelivery.get(notification_id=notification.id)
    assert message["Message-ID"] == f"<{delivery.id}@partners-vrai.test>"
    text, html = parts(message)
    assert "Bonjour Pat Prospect" in text
    assert url in text
    assert f'href="{url.replace("&", "&amp;")}"' in html
    assert "100,00\u00a0€" in text


async def test_payment_reminders_go_only_on_their_channel_one_entry_per_slot(smtp, twilio):
    client = await with_phone(await make_client())
    product = await make_product()
    order = await Order.create(
        user_id=client.obj.id,
        product_id=product.id,
        amount=product.price_amount,
        currency=product.currency,
        status=OrderStatus.PENDING,
    )
    await schedule_reminders(order)  # slots x (EMAIL, SMS)
    first_slot = datetime.now(UTC) + timedelta(hours=get_settings().payment_reminder_hours[0])

    assert await reminders.send_due_reminders(now=first_slot + timedelta(minutes=1)) == 2

    (notification,) = await for_recipient(client)
    assert notification.template_code == "payment_reminder"
    deliveries = await channels_of(notification)
    assert deliveries == {EMAIL: client.email, SMS: PHONE}  # no IN_APP delivery, no other
    sent = await PaymentReminder.filter(order_id=order.id, sent_at__not_isnull=True)
    links = {r.sent_via: reminders.tracked_url(r) for r in sent}

    report = await deliver_due(settings=peer_settings(smtp=smtp, twilio=twilio))

    assert report.sent == 2
    (email,) = smtp.accepted
    assert links[EMAIL] in parts(email)[0]
    (text,) = twilio.requests
    assert links[SMS] in text.form["Body"]
    assert links[EMAIL] not in text.form["Body"]


async def test_events_without_a_rule_make_nothing():
    client = await make_client()
    dossier = await make_dossier(client)
    for event_type in (E.DOSSIER_STATUS_CHANGED, E.STEP_COMPLETED, E.MESSAGES_READ):
        await dossier_event(dossier, event_type)
    await emit("product", uuid.uuid4(), E.PRODUCT_CREATED)
    assert await Notification.all().count() == 0


async def test_a_redispatched_event_never_notifies_twice():
    client = await make_client()
    dossier = await make_dossier(client)
    await make_agent()
    event = await dossier_event(dossier, E.DOCUMENT_UPLOADED, actor=await viewer(client))
    before = await Notification.all().count()
    assert before >= 1

    await Event.filter(id=event.id).update(processed_at=None)  # as if the commit was lost
    assert await outbox.dispatch([event.id]) == 1
    await notifications.consume([await Event.get(id=event.id)])  # and once more, directly

    assert await Notification.all().count() == before
    assert await NotificationDelivery.all().count() == before * 2


async def test_the_relay_notifies_what_no_request_dispatched():
    client = await make_client()
    await make_dossier(client)  # records DOSSIER_CREATED, STEP_STARTED... not dispatched
    assert await Notification.all().count() == 0
    await Event.all().update(created_at=datetime.now(UTC) - timedelta(minutes=1))

    await outbox.dispatch()  # the worker's relay

    templates = {n.template_code for n in await for_recipient(client)}
    assert {"dossier_created", "step_started"} <= templates


# --- chat: one notification per burst ------------------------------------------------------


async def test_a_burst_of_client_messages_makes_one_notification_per_agent(smtp):
    client = await make_client()
    dossier = await make_dossier(client)
    first, second = await make_agent(), await make_agent()

    for n in range(3):
        await send_message(dossier, client, f"Hello, message {n}")
    assert (await deliver_due(settings=peer_settings(smtp=smtp))).sent == 2

    mails = sorted(smtp.accepted, key=lambda m: m["To"])
    assert sorted(m["To"] for m in mails) == sorted([first.email, second.email])  # one each
    text, _html = parts(mails[0])
    assert "3 messages" in text
    assert "« Hello, message 2 »" in text  # quotes the latest

    for agent in (first, second):
        (notification,) = await for_recipient(agent)
        assert notification.template_code == "message_received"
        assert notification.title.startswith("3 nouveaux messages de Client")
        assert notification.action_url.endswith(f"/dossiers/{dossier.id}/messages")
        assert set(await channels_of(notification)) == {IN_APP, EMAIL}
        assert len(notification.payload["eventIds"]) == 3
    assert await for_recipient(client) == []


async def test_concurrent_dispatchers_keep_one_notification_per_burst():
    client = await make_client()
    dossier = await make_dossier(client)
    agent = await make_agent()
    who = await viewer(client)
    recorded = []
    async with in_transaction():  # recorded, not dispatched: two relays race for them
        for n in range(6):
            message = await Message.create(
                dossier_id=dossier.id,
                sender_type=ActorType.USER,
                sender_id=who.actor_id,
                content=f"m{n}",
            )
            recorded.append(
                await events.record(
                    "message",
                    message.id,
                    E.MESSAGE_SENT,
                    actor=who,
                    payload={"dossierId": str(dossier.id)},
                )
            )

    await asyncio.gather(*(outbox.dispatch([e.id]) for e in recorded))

    (notification,) = await for_recipient(agent)
    assert notification.title.startswith("6 nouveaux messages")
    assert len(await NotificationDelivery.filter(notification_id=notification.id)) == 2


async def test_an_agent_reply_tells_the_client_only():
    client = await make_client()
    dossier = await make_dossier(client)
    agent, other = await make_agent(), await make_agent()

    await send_message(dossier, agent, "We received your file. " * 30)

    (notification,) = await for_recipient(client)
    assert notification.title == f"Nouveau message de {agent.obj.name}"
    assert notification.message.startswith("We received your file.")
    assert notification.message.endswith("…")  # a bounded preview
    assert await for_recipient(agent) == []
    assert await for_recipient(other) == []


async def test_a_burst_ends_when_read_or_after_silence(client):
    customer = await make_client()
    dossier = await make_dossier(customer)
    agent = await make_agent()
    await send_message(dossier, customer, "one")
    await send_message(dossier, customer, "two")
    assert len(await for_recipient(agent)) == 1

    # the agent reads the notification: the next message starts a new burst
    await gql(client, MARK_READ, {"input": {"all": True}}, token=agent.token)
    await send_message(dossier, customer, "three")
    assert len(await for_recipient(agent)) == 2

    # reading the chat itself (MESSAGES_READ) also ends the burst
    await dossier_event(dossier, E.MESSAGES_READ, actor=await viewer(agent))
    assert all(n.read_at for n in await for_recipient(agent))
    await send_message(dossier, customer, "four")
    assert len(await for_recipient(agent)) == 3

    # a message after the burst window (silence) starts a new one, even unread
    window = get_settings().message_notification_burst_minutes
    await send_message(
        dossier, customer, "five", at=datetime.now(UTC) + timedelta(minutes=window + 1)
    )
    notices = await for_recipient(agent)
    assert len(notices) == 4
    assert [n.read_at is None for n in notices] == [False, False, True, True]


# --- languages -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", notifications.TEMPLATE_CODES)
@pytest.mark.parametrize("locale", ["fr", "en"])
def test_every_template_renders_in_both_languages(code, locale):
    rendered = notifications.render(code, locale, {**FULL_CONTEXT, "reason": "<b>x</b>"})
    for part in (rendered.title, rendered.message, rendered.sms, rendered.text):
        assert part.strip()
        assert "{{" not in part
    assert f'<html lang="{locale}">' in rendered.html
    assert "<b>x</b>" not in rendered.html  # HTML escapes what it interpolates
    assert FULL_CONTEXT["action_url"] in rendered.html


@pytest.mark.parametrize(
    ("locale", "currency", "amount"),
    [
        ("fr", "eur", "1\u202f500,00\u00a0€"),
        ("en", "eur", "€1,500.00"),
        # Babel's (CLDR's) symbols: the hand-written table said "$" and "1,500.00 CHF".
        ("fr", "usd", "1\u202f500,00\u00a0$US"),
        ("en", "chf", "CHF\u00a01,500.00"),
        ("en", "jpy", "¥150,000"),  # no minor unit: 150000 is ¥150,000
    ],
)
def test_amounts_are_written_the_locale_s_way(locale, currency, amount):
    context = {**FULL_CONTEXT, "amount": 150_000, "currency": currency}
    rendered = notifications.render("payment_succeeded", locale, context)
    assert amount in rendered.message
    assert amount in rendered.text


@pytest.mark.parametrize(("locale", "day"), [("fr", "12 mars 2030"), ("en", "March 12, 2030")])
def test_dates_are_written_the_locale_s_way(locale, day):
    rendered = notifications.render("payment_link", locale, FULL_CONTEXT)  # 2030-03-12T10:00Z
    assert day in rendered.text
    assert day in rendered.html


async def test_french_and_english_recipients_get_their_language(smtp, twilio):
    french = await with_phone(await make_client(), "+33611111111")
    english = await with_phone(await make_client(), "+33622222222", Locale.EN)
    for account in (french, english):
        dossier = await make_dossier(account)
        await dossier_event(dossier, E.DOCUMENT_CHANGES_REQUESTED, reason="Le scan <est> flou")

    (fr_notice,) = await for_recipient(french)
    (en_notice,) = await for_recipient(english)
    assert fr_notice.title.startswith("Modifications demandées : ")
    assert en_notice.title.startswith("Changes requested: ")
    assert fr_notice.message.endswith(": Le scan <est> flou")

    assert (await deliver_due(settings=peer_settings(smtp=smtp, twilio=twilio))).sent == 4

    mails = {m["To"]: m for m in smtp.accepted}
    fr_mail, en_mail = mails[french.email], mails[english.email]
    assert fr_mail["Content-Language"] == "fr"
    assert en_mail["Content-Language"] == "en"
    fr_text, fr_html = parts(fr_mail)
    en_text, en_html = parts(en_mail)
    assert fr_text.startswith(f"Bonjour {french.obj.full_name},")
    assert "Motif : Le scan <est> flou" in fr_text
    assert "Motif : Le scan &lt;est&gt; flou" in fr_html
    assert '<html lang="fr">' in fr_html
    assert en_text.startswith(f"Hello {english.obj.full_name},")
    assert "Reason: Le scan <est> flou" in en_text
    assert '<html lang="en">' in en_html
    assert "Upload a new version" in en_html
    texts = {r.form["To"]: r.form["Body"] for r in twilio.requests}
    assert "doit être modifié" in texts["+33611111111"]
    assert "needs changes" in texts["+33622222222"]


async def test_agents_get_their_own_language():
    client = await make_client()
    dossier = await make_dossier(client)
    agent = await make_agent()
    await make_agent()
    from app.models import Agent

    await Agent.filter(id=agent.obj.id).update(locale=Locale.EN)

    await dossier_event(dossier, E.DOCUMENT_UPLOADED, actor=await viewer(client))

    (notification,) = await for_recipient(agent)
    assert notification.title.startswith("Document uploaded: ")


# --- the API ---------------------------------------------------------------------------------

NOTIFICATIONS = """
query($first: Int, $after: String, $unreadOnly: Boolean) {
  notifications(first: $first, after: $after, unreadOnly: $unreadOnly) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id title message templateCode actionUrl read readAt createdAt dossierId eventType
      deliveries { channel status attempts sentAt }
    }
  }
  unreadNotificationCount
}
"""

MARK_READ = """
mutation($input: MarkNotificationsReadInput!) {
  markNotificationsRead(input: $input) {
    notifications { id read }
    unreadCount
    userErrors { field message code }
  }
}
"""

EVENTS = """
query($entityType: String, $entityId: ID, $eventTypes: [EventType!], $first: Int,
      $after: String) {
  events(entityType: $entityType, entityId: $entityId, eventTypes: $eventTypes,
         first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id entityType entityId eventType actorType actorId payload createdAt }
  }
}
"""


async def notified_clients(n_events: int = 3):
    """Two clients with notifications of their own."""
    alice, bob = await make_client(), await make_client()
    for account in (alice, bob):
        dossier = await make_dossier(account)
        for _ in range(n_events):
            await dossier_event(dossier, E.DOCUMENT_APPROVED)
    return alice, bob


async def test_a_client_lists_only_their_own_notifications(client):
    alice, bob = await notified_clients()

    data = await gql(client, NOTIFICATIONS, {"first": 2}, token=alice.token)

    page = data["notifications"]
    assert page["totalCount"] == 3
    assert data["unreadNotificationCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    mine = {str(n.id) for n in await for_recipient(alice)}
    node = page["nodes"][0]
    assert node["id"] in mine
    assert node["eventType"] == "DOCUMENT_APPROVED"
    assert node["read"] is False
    assert {d["channel"] for d in node["deliveries"]} == {"IN_APP", "EMAIL"}
    assert {d["status"] for d in node["deliveries"] if d["channel"] == "IN_APP"} == {"SENT"}
    rest = await gql(
        client, NOTIFICATIONS, {"after": page["pageInfo"]["endCursor"]}, token=alice.token
    )
    ids = [n["id"] for n in page["nodes"]] + [n["id"] for n in rest["notifications"]["nodes"]]
    assert set(ids) == mine
    created = [n["createdAt"] for n in page["nodes"] + rest["notifications"]["nodes"]]
    assert created == sorted(created, reverse=True)  # newest first
    theirs = {str(n.id) for n in await for_recipient(bob)}
    assert not theirs & set(ids)


async def test_marking_read_touches_only_your_own(client):
    alice, bob = await notified_clients()
    a1, a2, _ = await for_recipient(alice)
    b1, *_ = await for_recipient(bob)

    data = await gql(
        client,
        MARK_READ,
        {"input": {"ids": [str(a1.id), str(b1.id), "not-an-id", str(uuid.uuid4())]}},
        token=alice.token,
    )

    payload = data["markNotificationsRead"]
    assert payload["userErrors"] == []
    assert payload["notifications"] == [{"id": str(a1.id), "read": True}]
    assert payload["unreadCount"] == 2
    assert (await Notification.get(id=b1.id)).read_at is None  # bob's is untouched
    bobs = await gql(client, NOTIFICATIONS, {}, token=bob.token)
    assert bobs["unreadNotificationCount"] == 3
    unread = await gql(client, NOTIFICATIONS, {"unreadOnly": True}, token=alice.token)
    assert {n["id"] for n in unread["notifications"]["nodes"]} == {
        str(n.id) for n in (await for_recipient(alice))[1:]
    }
    assert str(a2.id) in {n["id"] for n in unread["notifications"]["nodes"]}

    everything = await gql(client, MARK_READ, {"input": {"all": True}}, token=alice.token)
    assert len(everything["markNotificationsRead"]["notifications"]) == 2
    assert everything["markNotificationsRead"]["unreadCount"] == 0
    assert (await gql(client, NOTIFICATIONS, {}, token=bob.token))["unreadNotificationCount"] == 3


async def test_mark_read_input_errors(client):
    alice = await make_client()
    empty = await gql(client, MARK_READ, {"input": {}}, token=alice.token)
    assert [e["code"] for e in empty["markNotificationsRead"]["userErrors"]] == ["REQUIRED"]
    many = [str(uuid.uuid4()) for _ in range(notifications.MAX_MARK_IDS + 1)]
    too_many = await gql(client, MARK_READ, {"input": {"ids": many}}, token=alice.token)
    assert [e["code"] for e in too_many["markNotificationsRead"]["userErrors"]] == ["TOO_MANY_IDS"]


async def test_agents_have_their_own_notifications(client):
    customer = await make_client()
    dossier = await make_dossier(customer)
    agent = await make_agent()
    await dossier_event(dossier, E.DOCUMENT_UPLOADED, actor=await viewer(customer))
    await dossier_event(dossier, E.DOCUMENT_APPROVED, actor=await viewer(agent))

    as_agent = await gql(client, NOTIFICATIONS, {}, token=agent.token)
    as_client = await gql(client, NOTIFICATIONS, {}, token=customer.token)

    assert [n["templateCode"] for n in as_agent["notifications"]["nodes"]] == ["document_uploaded"]
    assert [n["templateCode"] for n in as_client["notifications"]["nodes"]] == ["document_approved"]


async def test_notifications_need_a_login(client):
    body = await gql(client, NOTIFICATIONS, {}, expect_errors=True)
    assert "UNAUTHENTICATED" in error_codes(body)
    body = await gql(client, MARK_READ, {"input": {"all": True}}, expect_errors=True)
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_the_notification_list_costs_the_same_for_2_or_20(client):
    alice = await make_client()
    dossier = await make_dossier(alice)
    await dossier_event(dossier, E.DOCUMENT_APPROVED)
    await dossier_event(dossier, E.DOCUMENT_APPROVED)
    with count_statements() as small:
        await gql(client, NOTIFICATIONS, {}, token=alice.token)
    for _ in range(18):
        await dossier_event(dossier, E.DOCUMENT_APPROVED)
    with count_statements() as large:
        data = await gql(client, NOTIFICATIONS, {"first": 20}, token=alice.token)
    assert len(data["notifications"]["nodes"]) == 20
    assert len(large) == len(small)


async def test_agents_read_the_audit_log_newest_first(client):
    customer = await make_client()
    dossier = await make_dossier(customer)
    agent = await make_agent()
    await dossier_event(dossier, E.DOSSIER_CANCELLED, actor=await viewer(agent), reason="x")

    data = await gql(
        client,
        EVENTS,
        {"entityType": "dossier", "entityId": str(dossier.id), "first": 2},
        token=agent.token,
    )

    log = data["events"]
    expected = await Event.filter(entity_type="dossier", entity_id=dossier.id).order_by(
        "-created_at", "-id"
    )
    assert log["totalCount"] == len(expected) >= 3
    assert [n["id"] for n in log["nodes"]] == [str(e.id) for e in expected[:2]]
    newest = log["nodes"][0]
    assert newest["eventType"] == "DOSSIER_CANCELLED"
    assert newest["actorType"] == "AGENT"
    assert newest["actorId"] == agent.id
    assert newest["payload"] == {"reason": "x"}
    rest = await gql(
        client,
        EVENTS,
        {
            "entityType": "dossier",
            "entityId": str(dossier.id),
            "after": log["pageInfo"]["endCursor"],
        },
        token=agent.token,
    )
    assert [n["id"] for n in rest["events"]["nodes"]] == [str(e.id) for e in expected[2:]]
    only = await gql(client, EVENTS, {"eventTypes": ["DOSSIER_CANCELLED"]}, token=agent.token)
    assert [n["eventType"] for n in only["events"]["nodes"]] == ["DOSSIER_CANCELLED"]
    nothing = await gql(client, EVENTS, {"entityId": "nope"}, token=agent.token)
    assert nothing["events"]["totalCount"] == 0


async def test_clients_cannot_read_the_audit_log(client):
    customer = await make_client()
    body = await gql(client, EVENTS, {}, token=customer.token, expect_errors=True)
    assert error_codes(body) == ["FORBIDDEN"]
    body = await gql(client, EVENTS, {}, expect_errors=True)
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_only_active_admins_hear_of_new_dossiers():
    client = await make_client()
    dossier = await make_dossier(client)
    active = await make_admin()
    inactive = await make_agent(AgentRole.ADMIN, active=False)
    event = await dossier_event(dossier, E.DOSSIER_CREATED)
    told = {n.agent_id for n in await notifications_of(event) if n.agent_id}  # type: ignore[attr-defined]
    assert told == {active.obj.id}
    assert inactive.obj.id not in told
    assert (await Event.get(id=event.id)).actor_type == ActorType.SYSTEM
    assert (
        await NotificationDelivery.get(notification__agent_id=active.obj.id)
    ).status == NotificationStatus.SENT
