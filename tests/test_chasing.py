"""Reminders for missing documents and escalation of overdue steps, with a controlled clock.

The worker's passes take `now=`: a dossier is opened at t0 (its first step starts then)
and each pass is run at the instant it would run in production. What the client receives
is read back from the notifications and, for e-mail, from a real SMTP server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.consumers import install_consumers
from app.domain import schedule
from app.models import Dossier, Event, Notification, StepInstance, StepReminder
from app.models.enums import EventType, NotificationChannel, ReminderStatus
from app.services import chasing, deadlines
from app.services.delivery import deliver_due
from app.settings import Settings, get_settings
from tests.chasing_support import (
    at,
    channels,
    current_step,
    documents_of,
    events_of,
    missing_in,
    notifications_for,
    open_at,
    product_with,
    reminders_sent,
    slots,
    with_phone,
)
from tests.conftest import BACKEND
from tests.documents_support import make_pdf, review, upload
from tests.factories import make_agent, make_client
from tests.helpers import count_statements, gql
from tests.notifications_support import SmtpPeer, parts, peer_settings

IN_APP, EMAIL, SMS = NotificationChannel.IN_APP, NotificationChannel.EMAIL, NotificationChannel.SMS
H = timedelta(hours=1)
ROOT = Path(__file__).resolve().parents[1]

TIMELINE = """
query Timeline($id: ID!) {
  dossier(id: $id) {
    timeline(last: 100) {
      __typename kind actorType
      ... on DocumentReminderEntry { dueAt stepInstance { id } documents { id status } }
    }
  }
}
"""
CHANGE_STATUS = """
mutation Change($input: ChangeDossierStatusInput!) {
  changeDossierStatus(input: $input) { dossier { status } userErrors { code } }
}
"""
ASSIGN = """
mutation Assign($input: AssignStepInput!) {
  assignStep(input: $input) { stepInstance { id } userErrors { code } }
}
"""
MOVE = """
mutation Move($input: MoveStepDueDateInput!) {
  moveStepDueDate(input: $input) { stepInstance { id dueAt } userErrors { field code message } }
}
"""


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


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def remind(now: datetime, **kwargs) -> int:
    return (await chasing.send_document_reminders(now=now, **kwargs)).sent


async def escalate(now: datetime, **kwargs) -> int:
    return (await chasing.escalate_overdue_steps(now=now, **kwargs)).sent


async def change_status(client, agent, dossier, action: str) -> None:
    variables = {"input": {"dossierId": str(dossier.id), "action": action, "reason": "Because"}}
    result = (await gql(client, CHANGE_STATUS, variables, token=agent.token))["changeDossierStatus"]
    assert result["userErrors"] == []


async def statuses(dossier, position: int = 1) -> dict[str, tuple[str, str | None]]:
    """slot -> (status, skip reason) of the planned notices of the dossier's step at
    `position` (two steps may well have slots of the same name)."""
    rows = await StepReminder.filter(dossier_id=dossier.id, step_instance__position=position)
    return {r.slot: (r.status.value, r.skip_reason) for r in rows}


# --- the schedule --------------------------------------------------------------------------


async def test_the_whole_reminder_schedule_for_one_dossier(client, smtp):
    """Two documents, a 96 h step: reminders at +48 h (two days after the start), +72 h
    (a day before the due date) and +96 h (the due date), each once, each listing what is
    still missing then, on the client's channels; each one in the timeline."""
    owner = await with_phone(await make_client())
    product = await product_with([(("pdf", "png"), 96), (("pdf",), None)])
    t0 = at(datetime.now(UTC))
    dossier = await open_at(owner, product, t0)
    due = t0 + 96 * H
    assert await slots(dossier) == [
        ("DOCUMENTS", "start+48h", t0 + 48 * H, "PENDING"),
        ("DOCUMENTS", f"due-24h@{stamp(due)}", t0 + 72 * H, "PENDING"),
        ("DOCUMENTS", f"due@{stamp(due)}", due, "PENDING"),
        ("ESCALATION", f"overdue+24h@{stamp(due)}", due + 24 * H, "PENDING"),
    ]

    assert await remind(t0 + 48 * H - timedelta(seconds=1)) == 0  # not yet
    assert await remind(t0 + 48 * H) == 1
    assert await remind(t0 + 48 * H + timedelta(minutes=1)) == 0  # never twice a slot
    (first,) = await reminders_sent(dossier)
    assert first.payload["slot"] == "start+48h"
    assert first.actor_type.value == "SYSTEM"
    assert await missing_in(first) == ["Step 1 PDF", "Step 1 PNG"]
    assert [row["status"] for row in first.payload["missing"]] == ["PENDING", "PENDING"]
    # ONE message listing everything missing, on every channel the client has
    (notice,) = await notifications_for("document_reminder", user_id=owner.obj.id)
    assert notice.dossier_id == dossier.id  # type: ignore[attr-defined]
    assert "Step 1 PDF, Step 1 PNG" in notice.message
    assert await channels(notice) == {
        IN_APP: f"user:{owner.obj.id}",
        EMAIL: owner.email,
        SMS: "+33612345678",
    }
    await deliver_due(settings=peer_settings(smtp))
    (email,) = smtp.accepted
    assert email["To"] == owner.email
    text, html = parts(email)
    assert "- Step 1 PDF" in text
    assert "- Step 1 PNG" in text
    assert "<strong>Step 1 PNG</strong>" in html

    # the client sends the PDF: the day-before-due reminder asks only for the photo
    pdf, _png = await documents_of(dossier)
    assert (await upload(client, owner.token, str(pdf.id), make_pdf(), "id.pdf"))[
        "userErrors"
    ] == []
    assert await remind(t0 + 72 * H) == 1
    assert await remind(t0 + 80 * H) == 0
    # and on the due date again
    assert await remind(due) == 1
    assert await remind(due + 30 * 24 * H) == 0  # nothing left on the schedule

    sent = await reminders_sent(dossier)
    assert [e.payload["slot"] for e in sent] == [
        "start+48h",
        f"due-24h@{stamp(due)}",
        f"due@{stamp(due)}",
    ]
    assert [await missing_in(e) for e in sent] == [
        ["Step 1 PDF", "Step 1 PNG"],
        ["Step 1 PNG"],
        ["Step 1 PNG"],
    ]
    assert all(e.payload["dueAt"] == due.isoformat() for e in sent)
    assert await Notification.filter(template_code="document_reminder").count() == 3
    assert {status for status, _ in (await statuses(dossier)).values()} == {"SENT", "PENDING"}
    # (the escalation slot is the other job's)

    timeline = (await gql(client, TIMELINE, {"id": str(dossier.id)}, token=owner.token))["dossier"][
        "timeline"
    ]
    entries = [e for e in timeline if e["kind"] == "DOCUMENT_REMINDER_SENT"]
    assert len(entries) == 3
    assert {e["__typename"] for e in entries} == {"DocumentReminderEntry"}
    assert [len(e["documents"]) for e in entries] == [2, 1, 1]
    assert entries[1]["documents"][0]["status"] == "PENDING"
    assert entries[0]["actorType"] == "SYSTEM"
    assert utc(entries[0]["dueAt"]) == due


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


async def test_slots_that_fall_together_make_one_message():
    """A worker that was down (or slots at the same instant): one message per dossier,
    the latest slot sends, those before it are closed as covered."""
    owner = await make_client()
    product = await product_with([(("pdf",), 72)])  # start+48h == due-24h
    t0 = at(datetime.now(UTC))
    dossier = await open_at(owner, product, t0)
    assert await remind(t0 + 100 * H) == 1
    (event,) = await reminders_sent(dossier)
    assert event.payload["slot"] == f"due@{stamp(t0 + 72 * H)}"
    assert event.payload["overdue"] is True
    assert sorted((await statuses(dossier)).values()) == [
        ("PENDING", None),  # the escalation
        ("SENT", None),
        ("SKIPPED", "COVERED"),
        ("SKIPPED", "COVERED"),
    ]
    assert await Notification.filter(template_code="document_reminder").count() == 1


async def test_a_step_without_estimate_is_reminded_after_its_start_only():
    owner = await make_client()
    dossier = await open_at(owner, await product_with([(("pdf",), None)]), at(datetime.now(UTC)))
    step = await current_step(dossier)
    assert step.due_at is None
    assert [(kind, slot) for kind, slot, _, _ in await slots(dossier)] == [
        ("DOCUMENTS", "start+48h")
    ]


# --- the stop conditions -------------------------------------------------------------------


async def test_nothing_once_the_documents_arrive_and_again_when_changes_are_requested(client):
    owner, agent = await make_client(), await make_agent()
    product = await product_with([(("pdf",), 96), (("png",), 24)])
    t0 = at(datetime.now(UTC))
    dossier = await open_at(owner, product, t0)
    (document,) = await documents_of(dossier)
    uploaded = await upload(client, owner.token, str(document.id), make_pdf(), "a.pdf")

    assert await remind(t0 + 48 * H) == 0  # everything is in (waiting for review)
    assert (await statuses(dossier))["start+48h"] == ("SKIPPED", "NOTHING_MISSING")

    changes = await review(
        client, agent.token, uploaded["version"]["id"], "CHANGES_REQUESTED", "Blurry scan"
    )
    assert changes["userErrors"] == []
    assert await remind(t0 + 72 * H) == 1
    (event,) = await reminders_sent(dossier)
    assert event.payload["missing"] == [
        {
            "documentId": str(document.id),
            "documentTypeId": str(document.document_type_id),  # type: ignore[attr-defined]
            "code": event.payload["missing"][0]["code"],
            "label": "Step 1 PDF",
            "status": "CHANGES_REQUESTED",
            "reason": "Blurry scan",
        }
    ]

    # sent again and approved: the next step starts (its own schedule); step 1's last slot
    # is closed, step 2's first one speaks
    again = await upload(client, owner.token, str(document.id), make_pdf("2"), "b.pdf")
    assert (await review(client, agent.token, again["version"]["id"], "APPROVED"))[
        "userErrors"
    ] == []
    step2 = await current_step(dossier)
    assert step2.position == 2
    assert await remind(t0 + 96 * H) == 1
    assert (await statuses(dossier))[f"due@{stamp(t0 + 96 * H)}"] == ("SKIPPED", "STEP_DONE")
    last = (await reminders_sent(dossier))[-1]
    assert last.payload["stepInstanceId"] == str(step2.id)
    assert await missing_in(last) == ["Step 2 PNG"]


async def test_nothing_while_on_hold_and_again_once_released(client):
    owner, agent = await make_client(), await make_agent()
    t0 = at(datetime.now(UTC))
    dossier = await open_at(owner, await product_with([(("pdf",), 96)]), t0)
    await change_status(client, agent, dossier, "HOLD")
    assert await remind(t0 + 48 * H) == 0
    assert (await statuses(dossier))["start+48h"] == ("SKIPPED", "ON_HOLD")
    await change_status(client, agent, dossier, "RELEASE")
    assert await remind(t0 + 72 * H) == 1
    assert len(await reminders_sent(dossier)) == 1


@pytest.mark.parametrize("ending", ["CANCEL", "COMPLETE"])
async def test_nothing_once_the_dossier_is_cancelled_or_completed(client, ending):
    owner, agent = await make_client(), await make_agent()
    t0 = at(datetime.now(UTC))
    dossier = await open_at(owner, await product_with([(("pdf",), 24)]), t0)
    if ending == "CANCEL":
        await change_status(client, agent, dossier, "CANCEL")
    else:
        (document,) = await documents_of(dossier)
        sent = await upload(client, owner.token, str(document.id), make_pdf(), "a.pdf")
        done = await review(client, agent.token, sent["version"]["id"], "APPROVED")
        assert done["dossier"]["status"] == "COMPLETED"
    for hours in (48, 72, 200):
        assert await remind(t0 + hours * H) == 0
        assert await escalate(t0 + hours * H) == 0
    assert await reminders_sent(dossier) == []
    assert await events_of(dossier, EventType.STEP_OVERDUE) == []
    assert (
        await StepReminder.filter(dossier_id=dossier.id, status=ReminderStatus.PENDING).count() == 0
    )
    expected = "DOSSIER_CANCELLED" if ending == "CANCEL" else "DOSSIER_COMPLETED"
    assert {reason for _, reason in (await statuses(dossier)).values()} == {expected}


# --- two workers ---------------------------------------------------------------------------


async def _open_many(count: int, hours: int, t0: datetime) -> list[Dossier]:
    product = await product_with([(("pdf", "png"), hours)])
    return [await open_at(await make_client(), product, t0) for _ in range(count)]


async def test_concurrent_passes_never_send_a_slot_twice():
    """Six passes at once, again and again, over twelve dossiers whose three reminder
    slots are all due: exactly one reminder per dossier (PostgreSQL: real concurrent
    transactions, FOR UPDATE SKIP LOCKED; SQLite: one writer at a time)."""
    t0 = at(datetime.now(UTC))
    dossiers = await _open_many(12, 96, t0)
    now = t0 + 100 * H
    total = 0
    for _ in range(20):
        reports = await asyncio.gather(
            *(chasing.send_document_reminders(now=now, limit=5) for _ in range(6))
        )
        total += sum(r.sent for r in reports)
        if not await StepReminder.filter(
            kind="DOCUMENTS", status=ReminderStatus.PENDING, scheduled_for__lte=now
        ).exists():
            break
    assert total == 12
    for dossier in dossiers:
        assert len(await reminders_sent(dossier)) == 1
    assert await Notification.filter(template_code="document_reminder").count() == 12
    assert await StepReminder.filter(status=ReminderStatus.SENT).count() == 12
    assert await StepReminder.filter(skip_reason="COVERED").count() == 24


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime

    async def main():
        from app.db import database
        from app.models import StepReminder
        from app.services import chasing

        now = datetime.fromisoformat(sys.argv[1])
        sent = 0
        async with database():
            for _ in range(400):
                report = await chasing.send_document_reminders(now=now, limit=3)
                sent += report.sent
                left = await StepReminder.filter(
                    kind="DOCUMENTS", status="PENDING", scheduled_for__lte=now
                ).exists()
                if not left:
                    break
                await asyncio.sleep(0.005)
        print(sent)

    asyncio.run(main())
    """
)


@pytest.mark.postgres
async def test_two_worker_processes_never_send_a_slot_twice(database_url):
    """Two real processes running the reminder pass against one PostgreSQL database."""
    t0 = at(datetime.now(UTC))
    dossiers = await _open_many(30, 96, t0)
    now = (t0 + 73 * H).isoformat()  # two slots due per dossier
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            now,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 60)
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
    counts = [int(out.decode().strip()) for out, _ in outputs]
    assert sum(counts) == 30
    for dossier in dossiers:
        assert len(await reminders_sent(dossier)) == 1
    assert await StepReminder.filter(status=ReminderStatus.SENT).count() == 30


# --- escalation ----------------------------------------------------------------------------


async def test_an_overdue_step_is_escalated_once_to_every_active_agent_then_the_assignee(
    client,
):
    first, second = await make_agent(), await make_agent()
    retired = await make_agent(active=False)
    owner = await make_client()
    t0 = at(datetime.now(UTC))
    dossier = await open_at(owner, await product_with([(("pdf",), 24)]), t0)

    assert await escalate(t0 + 48 * H - timedelta(seconds=1)) == 0  # due + 24 h margin
    assert await escalate(t0 + 48 * H) == 1
    assert await escalate(t0 + 49 * H) == 0
    assert await escalate(t0 + 30 * 24 * H) == 0  # once
    (event,) = await events_of(dossier, EventType.STEP_OVERDUE)
    assert event.payload["overdueHours"] == 24
    assert event.payload["dueAt"] == (t0 + 24 * H).isoformat()
    told = await notifications_for("step_overdue")
    assert sorted(str(n.agent_id) for n in told) == sorted([first.id, second.id])  # type: ignore[attr-defined]
    assert not await Notification.filter(agent_id=retired.obj.id).exists()
    assert not await Notification.filter(
        user_id=owner.obj.id, template_code="step_overdue"
    ).exists()
    assert set(await channels(told[0])) == {IN_APP, EMAIL}

    # assigned, and given a new due date: overdue again later, only the assignee hears
    step = await current_step(dossier)
    assigned = await gql(
        client,
        ASSIGN,
        {"input": {"stepInstanceId": str(step.id), "agentId": first.id}},
        token=second.token,
    )
    assert assigned["assignStep"]["userErrors"] == []
    new_due = at(datetime.now(UTC)) + 5 * H
    moved = await gql(
        client,
        MOVE,
        {
            "input": {
                "stepInstanceId": str(step.id),
                "dueAt": new_due.isoformat(),
                "reason": "Holiday",
            }
        },
        token=second.token,
    )
    assert moved["moveStepDueDate"]["userErrors"] == []
    assert await escalate(new_due + 23 * H) == 0
    assert await escalate(new_due + 24 * H) == 1
    later = (await events_of(dossier, EventType.STEP_OVERDUE))[-1]
    assert later.payload["assignedToId"] == first.id
    recipients = [str(n.agent_id) for n in await notifications_for("step_overdue")]  # type: ignore[attr-defined]
    assert recipients.count(first.id) == 2
    assert recipients.count(second.id) == 1


async def test_no_escalation_when_the_step_is_done_or_the_dossier_on_hold(client):
    owner, agent = await make_client(), await make_agent()
    t0 = at(datetime.now(UTC))
    done = await open_at(owner, await product_with([(("pdf",), 24), ((), 24)]), t0)
    (document,) = await documents_of(done)
    sent = await upload(client, owner.token, str(document.id), make_pdf(), "a.pdf")
    await review(client, agent.token, sent["version"]["id"], "APPROVED")
    held = await open_at(owner, await product_with([(("pdf",), 24)]), t0)
    await change_status(client, agent, held, "HOLD")

    assert await escalate(t0 + 48 * H) == 0
    assert (await statuses(done))[f"overdue+24h@{stamp(t0 + 24 * H)}"] == (
        "SKIPPED",
        "STEP_DONE",
    )
    assert (await statuses(held))[f"overdue+24h@{stamp(t0 + 24 * H)}"] == ("SKIPPED", "ON_HOLD")
    assert await Event.filter(event_type=EventType.STEP_OVERDUE).count() == 0


# --- planning ------------------------------------------------------------------------------


async def test_steps_started_before_plans_existed_are_planned_without_a_burst():
    owner = await make_client()
    t0 = at(datetime.now(UTC))
    dossier = await open_at(owner, await product_with([(("pdf",), 24)]), t0)
    await StepReminder.filter(dossier_id=dossier.id).delete()  # as an older database has it

    now = t0 + 50 * H  # every slot is past
    assert await chasing.plan_missing(now=now) == 1
    assert await chasing.plan_missing(now=now) == 0
    # past reminders are not planned (no late burst); the overdue escalation still is
    assert [(kind, status) for kind, _, _, status in await slots(dossier)] == [
        ("ESCALATION", "PENDING")
    ]
    assert await remind(now) == 0
    assert await escalate(now) == 1


def test_the_schedule_is_a_setting():
    assert schedule.parse_schedule(["due", "start+2d", "due-1d", "start+48h"]) == [
        schedule.Slot("due", -24),
        schedule.Slot("due", 0),
        schedule.Slot("start", 48),
    ]
    for bad in (["start"], ["start-1d"], ["soon"], ["due+1w"]):
        with pytest.raises(ValidationError):
            Settings(document_reminder_schedule=bad)
    with pytest.raises(ValidationError):
        Settings(overdue_escalation_hours=-1)

    custom = get_settings().model_copy(
        update={
            "document_reminder_schedule": ["start+6h", "due-2h", "due+1d"],
            "overdue_escalation_hours": 0,
        }
    )
    t0 = datetime(2030, 1, 1, 9, tzinfo=UTC)
    step = StepInstance(started_at=t0, due_at=t0 + 10 * H)
    assert [(k.value, s, when - t0) for k, s, when in deadlines.planned_slots(step, custom)] == [
        ("DOCUMENTS", "due-2h@2030-01-01T19:00:00Z", 8 * H),
        ("DOCUMENTS", "due+24h@2030-01-01T19:00:00Z", 34 * H),
        ("DOCUMENTS", "start+6h", 6 * H),
        ("ESCALATION", "overdue+0h@2030-01-01T19:00:00Z", 10 * H),
    ]


async def test_the_worker_runs_the_chasing_jobs():
    from app.worker import JOBS

    names = {job.name: job.run for job in JOBS}
    assert names["document-reminders"] is chasing.send_document_reminders
    assert names["overdue-escalation"] is chasing.escalate_overdue_steps
    assert names["reminder-planning"] is chasing.plan_missing
    # a real pass with the real clock runs (nothing is due)
    assert (await names["document-reminders"]()).sent == 0


@pytest.mark.skipif(
    not BACKEND.is_postgres, reason="on SQLite a batch's UPDATEs go one by one (app.db.Writes)"
)
@pytest.mark.parametrize("job", ["documents", "escalation", "planning"])
async def test_a_pass_costs_its_batch_not_each_dossier(job):
    """The statements of a pass do not grow with the dossiers it serves: what it decides
    is read and written for the whole batch at once (a worker on a busy firm's queue)."""
    await make_agent()
    owner = await make_client()
    product = await product_with([(("pdf",), 24)])

    async def one_pass(dossiers: int, started: datetime) -> tuple[int, int]:
        opened = [await open_at(owner, product, started) for _ in range(dossiers)]
        now = started + 50 * H  # every slot of these dossiers is due
        if job == "planning":
            await StepReminder.filter(dossier_id__in=[d.id for d in opened]).delete()
        with count_statements() as statements:
            if job == "documents":
                done = await remind(now)
            elif job == "escalation":
                done = await escalate(now)
            else:
                done = await chasing.plan_missing(now=now)
        return done, len(statements)

    t0 = at(datetime.now(UTC)) - 400 * H
    few, few_statements = await one_pass(2, t0)
    many, many_statements = await one_pass(6, t0 + 200 * H)
    assert (few, many) == (2, 6)
    assert many_statements == few_statements
