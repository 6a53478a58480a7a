"""Case numbers (issue 19): every dossier has a reference `PV-<year>-<six digits>`, numbered
per year and never given twice, shown in the API, in notifications and e-mail subjects, and
accepted wherever a dossier id is, with the id's authorisation (no existence oracle)."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from app import clock
from app.consumers import install_consumers
from app.models import Dossier, Event, Message, Notification
from app.services import outbox
from app.services.delivery import deliver_due
from tests.conftest import BACKEND
from tests.factories import make_agent, make_client, make_dossier
from tests.helpers import error_codes, gql
from tests.migration_support import postgres_scratch, run_script, sqlite_scratch
from tests.notifications_support import peer_settings

ONE = "query One($id: ID!) { dossier(id: $id) { id reference client { id } } }"
BY_REFERENCE = """
query Find($reference: String) {
  dossiers(filter: {reference: $reference}) { totalCount nodes { id reference } }
}
"""
SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id dossierId } userErrors { code message } }
}
"""
MARK_READ = """
mutation Read($input: MarkDossierMessagesReadInput!) {
  markDossierMessagesRead(input: $input) { markedCount dossier { id } userErrors { code } }
}
"""
CHANGE_STATUS = """
mutation Hold($input: ChangeDossierStatusInput!) {
  changeDossierStatus(input: $input) { dossier { id status } userErrors { code } }
}
"""
EVENTS = """
query Log($id: ID) { events(entityType: "dossier", entityId: $id) { nodes { entityId } } }
"""
REFERENCE = re.compile(r"^PV-(\d{4})-(\d{6})$")


async def test_dossiers_are_numbered_per_year_in_order():
    client = await make_client()
    first, second = await make_dossier(client), await make_dossier(client)
    year = clock.now().year
    assert (first.reference, second.reference) == (f"PV-{year}-000001", f"PV-{year}-000002")

    clock.travel(timedelta(days=370))  # the next year (or the one after) starts again at 1
    later = await make_dossier(client)
    assert later.reference == f"PV-{clock.now().year}-000001"
    assert clock.now().year > year
    again = await make_dossier(client)
    assert again.reference == f"PV-{clock.now().year}-000002"


async def test_a_number_is_never_given_twice_even_after_a_deletion():
    client = await make_client()
    dossier = await make_dossier(client)
    await Dossier.filter(id=dossier.id).delete()
    assert (await make_dossier(client)).reference.endswith("-000002")


async def test_the_reference_is_in_the_api_and_finds_the_dossier(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    assert REFERENCE.match(dossier.reference)

    for given in (dossier.reference, dossier.reference.lower(), f" {dossier.reference} "):
        data = await gql(client, ONE, {"id": given}, token=owner.token)
        assert data["dossier"] == {
            "id": str(dossier.id),
            "reference": dossier.reference,
            "client": {"id": str(owner.obj.id)},
        }
    agent = await make_agent()
    found = await gql(
        client, BY_REFERENCE, {"reference": dossier.reference.lower()}, token=agent.token
    )
    assert found["dossiers"] == {
        "totalCount": 1,
        "nodes": [{"id": str(dossier.id), "reference": dossier.reference}],
    }


async def test_a_foreign_or_unknown_reference_answers_like_an_unknown_id(client):
    owner, stranger = await make_client(), await make_client()
    dossier = await make_dossier(owner)
    year = clock.now().year
    answers = []
    for given in (
        dossier.reference,  # someone else's
        f"PV-{year}-999999",  # no such dossier
        "PV-20-1",  # not even shaped like one
        "00000000-0000-0000-0000-000000000000",  # an unknown id
    ):
        body = await gql(client, ONE, {"id": given}, token=stranger.token, expect_errors=True)
        answers.append((error_codes(body), [e["message"] for e in body["errors"]], body["data"]))
    assert all(answer == answers[-1] for answer in answers), answers
    assert answers[0][0] == ["NOT_FOUND"]

    # the filter too: a client's list never shows another's dossier by its number
    mine = await gql(client, BY_REFERENCE, {"reference": dossier.reference}, token=stranger.token)
    assert mine["dossiers"]["totalCount"] == 0


async def test_mutations_and_the_audit_log_take_a_reference(client):
    owner = await make_client()
    agent = await make_agent()
    dossier = await make_dossier(owner)

    sent = await gql(
        client,
        SEND,
        {"input": {"dossierId": dossier.reference, "content": "Bonjour"}},
        token=owner.token,
    )
    assert sent["sendMessage"]["message"]["dossierId"] == str(dossier.id)
    assert await Message.filter(dossier_id=dossier.id).count() == 1
    read = await gql(
        client, MARK_READ, {"input": {"dossierId": dossier.reference}}, token=agent.token
    )
    assert read["markDossierMessagesRead"] == {
        "markedCount": 1,
        "dossier": {"id": str(dossier.id)},
        "userErrors": [],
    }
    held = await gql(
        client,
        CHANGE_STATUS,
        {"input": {"dossierId": dossier.reference.lower(), "action": "HOLD", "reason": "x"}},
        token=agent.token,
    )
    assert held["changeDossierStatus"]["dossier"] == {"id": str(dossier.id), "status": "ON_HOLD"}
    log = await gql(client, EVENTS, {"id": dossier.reference}, token=agent.token)
    assert {n["entityId"] for n in log["events"]["nodes"]} == {str(dossier.id)}

    # another client sending to that number gets what an unknown id gets
    stranger = await make_client()
    for given in (dossier.reference, "PV-1999-000001"):
        body = await gql(
            client,
            SEND,
            {"input": {"dossierId": given, "content": "hi"}},
            token=stranger.token,
            expect_errors=True,
        )
        assert error_codes(body) == ["NOT_FOUND"]
    assert await Message.filter(dossier_id=dossier.id).count() == 1


@pytest.fixture
def _consumers():
    install_consumers()


@pytest.mark.usefixtures("_consumers")
async def test_notifications_carry_the_reference_in_context_and_subject(smtp):
    owner = await make_client()
    await make_agent()
    dossier = await make_dossier(owner)  # DOSSIER_CREATED, STEP_STARTED: not yet dispatched
    await Event.all().update(created_at=datetime.now(UTC) - timedelta(minutes=1))
    await outbox.dispatch()

    notifications = await Notification.filter(dossier_id=dossier.id)
    assert notifications
    for notification in notifications:
        assert notification.payload["context"]["reference"] == dossier.reference
    assert (await deliver_due(settings=peer_settings(smtp=smtp))).sent >= 1
    assert smtp.accepted
    for mail in smtp.accepted:
        assert dossier.reference in mail["Subject"], mail["Subject"]


MIGRATION_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from datetime import UTC, datetime, timedelta
    from tortoise import Tortoise, connections
    from tortoise.migrations.api.migrate import migrate
    from app.db import tortoise_config

    URL = sys.argv[1]

    async def main():
        await migrate(config=tortoise_config(URL), target="models.0021_requests_and_shares")
        await Tortoise.close_connections()
        await Tortoise.init(config=tortoise_config(URL))
        db = connections.get("default")
        postgres = db.capabilities.dialect == "postgres"
        mark = (lambda n: f"${n}") if postgres else (lambda n: "?")

        async def insert(table, **values):
            marks = ", ".join(mark(i) for i in range(1, len(values) + 1))
            await db.execute_query(
                f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})", list(values.values())
            )

        now = datetime(2025, 6, 1, tzinfo=UTC)
        ids = {k: str(uuid.uuid4()) for k in ("p", "pr")}
        stamps = {"created_at": now, "updated_at": now}
        await insert("profiles", id=ids["p"], full_name="Hélène Old", status="ACTIVE",
                     locale="fr", **stamps)
        await insert("products", id=ids["pr"], code="OLD", name="Old", dossier_type="OTHER",
                     price_amount=1, currency="eur", active=True, initial_status="CREATED",
                     **stamps)
        # two in 2024 (same time: the id breaks the tie), one in 2025
        same = datetime(2024, 12, 31, 23, 0, tzinfo=UTC)
        dossiers = [("b" * 8 + "-0000-4000-8000-" + "0" * 12, same),
                    ("a" * 8 + "-0000-4000-8000-" + "0" * 12, same),
                    ("c" * 8 + "-0000-4000-8000-" + "0" * 12, datetime(2025, 1, 1, tzinfo=UTC))]
        for id_, at in dossiers:
            await insert("dossiers", id=id_, type="OTHER", status="IN_PROGRESS", metadata="{}",
                         product_id=ids["pr"], user_id=ids["p"], created_at=at, updated_at=at)
        await Tortoise.close_connections()
        await migrate(config=tortoise_config(URL))
        await Tortoise.close_connections()
        await Tortoise.init(config=tortoise_config(URL))
        from app.models import Dossier
        from app.services.references import next_reference
        refs = [d.reference for d in await Dossier.all().order_by("reference")]
        ordered = [str(d.id)[0] for d in await Dossier.all().order_by("reference")]
        print(",".join(refs), "".join(ordered), await next_reference())
        await Tortoise.close_connections()

    asyncio.run(main())
    """
)


async def test_the_migration_numbers_existing_dossiers_by_creation():
    if BACKEND.is_postgres:
        async with postgres_scratch("test_refs_") as url:
            out = run_script(MIGRATION_SCRIPT, url)
    else:
        out = run_script(MIGRATION_SCRIPT, sqlite_scratch("refs-"))
    refs, order, following = out
    assert refs == "PV-2024-000001,PV-2024-000002,PV-2025-000001"
    assert order == "abc"  # created_at, then id
    year = clock.now().year
    assert following == f"PV-{year}-{'000002' if year == 2025 else '000001'}"
