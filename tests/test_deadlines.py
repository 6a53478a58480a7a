"""Due dates, overdue flags, moving a due date, `dossier.progress` and `overdueDossiers`,
through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.consumers import install_consumers
from app.models import DocumentVersion, Event, Notification, ProductStep, StepReminder
from app.models.enums import EventType
from tests.chasing_support import (
    at,
    current_step,
    documents_of,
    open_at,
    product_with,
    utc,
)
from tests.documents_support import make_pdf, make_png, review, upload
from tests.factories import make_agent, make_client
from tests.helpers import count_statements, error_codes, gql

H = timedelta(hours=1)

STEPS = """
query Steps($id: ID!) {
  dossier(id: $id) {
    status
    steps {
      id position startedAt dueAt isOverdue estimatedDurationHours
      documents { id status dueAt isOverdue }
    }
  }
}
"""
PROGRESS = """
query Progress($id: ID!) {
  dossier(id: $id) {
    status
    progress {
      stepsDone stepsTotal documentsApproved documentsTotal dueAt isOverdue
      currentStep { id position }
      nextActions {
        label status allowedExtensions maxFileSizeMb reason dueAt isOverdue
        document { id status } documentType { code label }
      }
    }
  }
}
"""
MANY = """
query Many($first: Int) {
  dossiers(first: $first) {
    nodes { id progress {
      stepsDone stepsTotal documentsApproved documentsTotal isOverdue
      currentStep { id }
      nextActions { label status reason allowedExtensions document { id dueAt isOverdue } }
    } }
  }
}
"""
MOVE = """
mutation Move($input: MoveStepDueDateInput!) {
  moveStepDueDate(input: $input) {
    stepInstance { id dueAt isOverdue documents { dueAt } }
    dossier { id progress { dueAt } }
    userErrors { field code message }
  }
}
"""
TIMELINE = """
query Timeline($id: ID!) {
  dossier(id: $id) {
    timeline(last: 50) {
      kind actorType actor { ... on Agent { id } }
      ... on DueDateChangeEntry { reason previousDueAt dueAt stepInstance { id } }
    }
  }
}
"""
OVERDUE = """
query Overdue($first: Int, $after: String, $mine: Boolean) {
  overdueDossiers(first: $first, after: $after, mine: $mine) {
    totalCount
    edges { cursor node {
      id dueAt overdueSeconds
      dossier { id status }
      step { id position isOverdue }
      assignedTo { id }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
QUEUE = """
query { reviewQueue(first: 10) { nodes { waitingSince waitingSeconds version { id } } } }
"""
COMPLETE = """
mutation Complete($input: CompleteStepInput!) {
  completeStep(input: $input) { dossier { status } userErrors { code } }
}
"""
SKIP = """
mutation Skip($input: SkipStepInput!) {
  skipStep(input: $input) { dossier { status } userErrors { code } }
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


@pytest.fixture(autouse=True)
def _consumers():
    install_consumers()


def now() -> datetime:
    return at(datetime.now(UTC))


async def progress(client, token, dossier) -> dict:
    return (await gql(client, PROGRESS, {"id": str(dossier.id)}, token=token))["dossier"][
        "progress"
    ]


async def hold(client, agent, dossier, action: str = "HOLD") -> None:
    variables = {"input": {"dossierId": str(dossier.id), "action": action, "reason": "Wait"}}
    result = (await gql(client, CHANGE_STATUS, variables, token=agent.token))["changeDossierStatus"]
    assert result["userErrors"] == []


# --- due dates -----------------------------------------------------------------------------


async def test_a_started_step_is_due_after_its_estimate_and_its_documents_share_it(client):
    owner = await make_client()
    product = await product_with([(("pdf", "png"), 72), ((), None)])
    t0 = now()
    dossier = await open_at(owner, product, t0)
    view = (await gql(client, STEPS, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    first, second = view["steps"]
    assert utc(first["startedAt"]) == t0
    assert utc(first["dueAt"]) == t0 + 72 * H
    assert first["estimatedDurationHours"] == 72
    assert first["isOverdue"] is False
    assert [utc(d["dueAt"]) for d in first["documents"]] == [t0 + 72 * H] * 2
    assert [d["isOverdue"] for d in first["documents"]] == [False, False]
    # not started yet, and no estimate: no due date
    assert second["dueAt"] is None
    assert second["estimatedDurationHours"] is None
    assert second["isOverdue"] is False


async def test_overdue_flags_follow_the_clock_the_documents_and_the_dossier(client):
    owner, agent = await make_client(), await make_agent()
    product = await product_with([(("pdf", "png"), 24)])
    dossier = await open_at(owner, product, now() - 30 * H)  # due 6 h ago
    pdf, _png = await documents_of(dossier)

    def flags(view):
        (step,) = view["steps"]
        return step["isOverdue"], [d["isOverdue"] for d in step["documents"]]

    view = (await gql(client, STEPS, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    assert flags(view) == (True, [True, True])
    # a document sent is no longer the client's to do; the step still is overdue
    await upload(client, owner.token, str(pdf.id), make_pdf(), "a.pdf")
    view = (await gql(client, STEPS, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    assert flags(view) == (True, [False, True])
    assert (await progress(client, owner.token, dossier))["isOverdue"] is True
    # on hold: nothing is overdue
    await hold(client, agent, dossier)
    view = (await gql(client, STEPS, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    assert flags(view) == (False, [False, False])
    assert (await progress(client, owner.token, dossier))["isOverdue"] is False


async def test_the_estimate_is_copied_when_the_dossier_is_created(client):
    owner, agent = await make_client(), await make_agent()
    product = await product_with([((), 24), ((), 48)])
    dossier = await open_at(owner, product, now())
    # the catalogue changes afterwards: the running dossier keeps its estimate
    await ProductStep.filter(product_id=product.id, position=2).update(estimated_duration_hours=1)
    first = await current_step(dossier)
    done = await gql(
        client, COMPLETE, {"input": {"stepInstanceId": str(first.id)}}, token=agent.token
    )
    assert done["completeStep"]["userErrors"] == []
    second = await current_step(dossier)
    assert second.estimated_duration_hours == 48
    assert second.due_at == second.started_at + 48 * H


# --- moving a due date ---------------------------------------------------------------------


async def test_an_agent_moves_a_due_date_with_a_reason(client):
    owner, agent = await make_client(), await make_agent()
    t0 = now()
    dossier = await open_at(owner, await product_with([(("pdf",), 72)]), t0)
    step = await current_step(dossier)
    new_due = t0 + 10 * 24 * H

    result = await gql(
        client,
        MOVE,
        {
            "input": {
                "stepInstanceId": str(step.id),
                "dueAt": new_due.isoformat(),
                "reason": "The consulate is closed",
            }
        },
        token=agent.token,
    )
    payload = result["moveStepDueDate"]
    assert payload["userErrors"] == []
    assert utc(payload["stepInstance"]["dueAt"]) == new_due
    assert [utc(d["dueAt"]) for d in payload["stepInstance"]["documents"]] == [new_due]
    assert utc(payload["dossier"]["progress"]["dueAt"]) == new_due

    (event,) = await Event.filter(event_type=EventType.STEP_DUE_DATE_CHANGED)
    assert event.entity_type == "dossier"
    assert event.entity_id == dossier.id
    assert event.actor_id == agent.obj.id
    assert event.payload["reason"] == "The consulate is closed"
    assert utc(event.payload["previousDueAt"]) == t0 + 72 * H
    # in the timeline, with who and why
    timeline = (await gql(client, TIMELINE, {"id": str(dossier.id)}, token=owner.token))["dossier"][
        "timeline"
    ]
    (entry,) = [e for e in timeline if e["kind"] == "DUE_DATE_CHANGED"]
    assert entry["reason"] == "The consulate is closed"
    assert entry["actor"] == {"id": agent.id}
    assert utc(entry["previousDueAt"]) == t0 + 72 * H
    assert utc(entry["dueAt"]) == new_due
    # the client is told
    (told,) = await Notification.filter(template_code="step_due_date_changed")
    assert told.user_id == owner.obj.id  # type: ignore[attr-defined]
    # the reminders follow: start+48h stays, those of the old due date are replaced
    pending = {
        r.slot: r.scheduled_for
        for r in await StepReminder.filter(step_instance_id=step.id, status="PENDING")
    }
    stamp = new_due.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert pending == {
        "start+48h": t0 + 48 * H,
        f"due-24h@{stamp}": new_due - 24 * H,
        f"due@{stamp}": new_due,
        f"overdue+24h@{stamp}": new_due + 24 * H,
    }


async def test_moving_a_due_date_is_refused_when_it_makes_no_sense(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await open_at(owner, await product_with([((), 24), ((), 24)]), now())
    first, second = sorted(await _steps(dossier), key=lambda s: s.position)
    later = (now() + 24 * H).isoformat()

    async def move(step_id, due, reason="Because", token=agent.token):
        variables = {"input": {"stepInstanceId": step_id, "dueAt": due, "reason": reason}}
        return (await gql(client, MOVE, variables, token=token))["moveStepDueDate"]

    def codes(payload):
        return [(e["code"], e["field"]) for e in payload["userErrors"]]

    assert codes(await move(str(first.id), later, reason="  ")) == [("REQUIRED", ["reason"])]
    past = (now() - H).isoformat()
    assert codes(await move(str(first.id), past)) == [("INVALID_DUE_DATE", ["dueAt"])]
    naive = (now() + 24 * H).replace(tzinfo=None).isoformat()
    assert codes(await move(str(first.id), naive)) == [("INVALID_DUE_DATE", ["dueAt"])]
    assert codes(await move(str(second.id), later)) == [("NOT_CURRENT_STEP", ["stepInstanceId"])]
    # a client may not; a malformed or unknown id is not found
    variables = {"input": {"stepInstanceId": str(first.id), "dueAt": later, "reason": "x"}}
    body = await gql(client, MOVE, variables, token=owner.token, expect_errors=True)
    assert error_codes(body) == ["FORBIDDEN"]
    for bad in ("nope", "00000000-0000-0000-0000-000000000000"):
        variables = {"input": {"stepInstanceId": bad, "dueAt": later, "reason": "x"}}
        body = await gql(client, MOVE, variables, token=agent.token, expect_errors=True)
        assert error_codes(body) == ["NOT_FOUND"]
    # a cancelled dossier's dates stay as they are
    await hold(client, agent, dossier, "CANCEL")
    assert codes(await move(str(first.id), later)) == [("DOSSIER_NOT_ACTIVE", ["stepInstanceId"])]
    assert await Event.filter(event_type=EventType.STEP_DUE_DATE_CHANGED).count() == 0


async def _steps(dossier):
    from app.models import StepInstance

    return list(await StepInstance.filter(dossier_id=dossier.id))


# --- progress ------------------------------------------------------------------------------


async def test_progress_through_a_dossier_s_life(client):
    """Step 1 asks for a PDF and a photo, step 2 for a PDF, step 3 for nothing."""
    owner, agent = await make_client(), await make_agent()
    product = await product_with([(("pdf", "png"), 72), (("pdf",), 48), ((), None)])
    t0 = now()
    dossier = await open_at(owner, product, t0)
    pdf, png = await documents_of(dossier)

    p = await progress(client, owner.token, dossier)
    assert (p["stepsDone"], p["stepsTotal"]) == (0, 3)
    assert (p["documentsApproved"], p["documentsTotal"]) == (0, 3)  # step 2's counted already
    assert p["currentStep"]["position"] == 1
    assert utc(p["dueAt"]) == t0 + 72 * H
    assert p["nextActions"] == [
        {
            "label": "Step 1 PDF",
            "status": "PENDING",
            "allowedExtensions": ["pdf"],
            "maxFileSizeMb": 5,
            "reason": None,
            "dueAt": p["dueAt"],
            "isOverdue": False,
            "document": {"id": str(pdf.id), "status": "PENDING"},
            "documentType": {
                "code": p["nextActions"][0]["documentType"]["code"],
                "label": "Step 1 PDF",
            },
        },
        {
            "label": "Step 1 PNG",
            "status": "PENDING",
            "allowedExtensions": ["png"],
            "maxFileSizeMb": 5,
            "reason": None,
            "dueAt": p["dueAt"],
            "isOverdue": False,
            "document": {"id": str(png.id), "status": "PENDING"},
            "documentType": {
                "code": p["nextActions"][1]["documentType"]["code"],
                "label": "Step 1 PNG",
            },
        },
    ]

    def actions(p):
        return [(a["label"], a["status"], a["reason"]) for a in p["nextActions"]]

    # upload the PDF: only the photo is left to do
    sent_pdf = await upload(client, owner.token, str(pdf.id), make_pdf(), "a.pdf")
    assert actions(await progress(client, owner.token, dossier)) == [
        ("Step 1 PNG", "PENDING", None)
    ]
    sent_png = await upload(
        client, owner.token, str(png.id), make_png(), "p.png", content_type="image/png"
    )
    p = await progress(client, owner.token, dossier)
    assert p["nextActions"] == []  # all in, waiting for the agent
    # the agent approves one and sends the photo back with a reason
    await review(client, agent.token, sent_pdf["version"]["id"], "APPROVED")
    await review(client, agent.token, sent_png["version"]["id"], "CHANGES_REQUESTED", "Too dark")
    p = await progress(client, owner.token, dossier)
    assert (p["documentsApproved"], p["documentsTotal"]) == (1, 3)
    assert actions(p) == [("Step 1 PNG", "CHANGES_REQUESTED", "Too dark")]
    # a new photo, approved: step 2 starts
    again = await upload(
        client, owner.token, str(png.id), make_png(3, 3), "q.png", content_type="image/png"
    )
    await review(client, agent.token, again["version"]["id"], "APPROVED")
    p = await progress(client, owner.token, dossier)
    assert (p["stepsDone"], p["stepsTotal"]) == (1, 3)
    assert (p["documentsApproved"], p["documentsTotal"]) == (2, 3)
    assert p["currentStep"]["position"] == 2
    assert actions(p) == [("Step 2 PDF", "PENDING", None)]
    step2 = await current_step(dossier)
    assert utc(p["dueAt"]) == step2.started_at + 48 * H
    # step 2's PDF, rejected once then approved: step 3 (nothing to send)
    (doc2,) = await documents_of(dossier)
    first = await upload(client, owner.token, str(doc2.id), make_pdf("x"), "x.pdf")
    await review(client, agent.token, first["version"]["id"], "REJECTED", "Wrong document")
    assert actions(await progress(client, owner.token, dossier)) == [
        ("Step 2 PDF", "REJECTED", "Wrong document")
    ]
    second = await upload(client, owner.token, str(doc2.id), make_pdf("y"), "y.pdf")
    await review(client, agent.token, second["version"]["id"], "APPROVED")
    p = await progress(client, owner.token, dossier)
    assert (p["stepsDone"], p["documentsApproved"], p["documentsTotal"]) == (2, 3, 3)
    assert p["currentStep"]["position"] == 3
    assert p["dueAt"] is None
    assert p["nextActions"] == []
    # the agent completes the last step: done
    step3 = await current_step(dossier)
    await gql(client, COMPLETE, {"input": {"stepInstanceId": str(step3.id)}}, token=agent.token)
    data = (await gql(client, PROGRESS, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    assert data["status"] == "COMPLETED"
    p = data["progress"]
    assert (p["stepsDone"], p["stepsTotal"], p["documentsApproved"], p["documentsTotal"]) == (
        3,
        3,
        3,
        3,
    )
    assert p["currentStep"] is None
    assert p["nextActions"] == []
    assert p["isOverdue"] is False


async def test_skipped_steps_leave_the_count_and_a_held_dossier_has_nothing_to_do(client):
    owner, agent = await make_client(), await make_agent()
    product = await product_with([(("pdf",), 24), (("pdf", "png"), 24)], optional=[2])
    dossier = await open_at(owner, product, now())
    assert (await progress(client, owner.token, dossier))["documentsTotal"] == 3
    step2 = sorted(await _steps(dossier), key=lambda s: s.position)[1]
    skipped = await gql(
        client, SKIP, {"input": {"stepInstanceId": str(step2.id)}}, token=agent.token
    )
    assert skipped["skipStep"]["userErrors"] == []
    p = await progress(client, owner.token, dossier)
    assert (p["stepsDone"], p["stepsTotal"], p["documentsTotal"]) == (1, 2, 1)
    assert len(p["nextActions"]) == 1
    await hold(client, agent, dossier)
    p = await progress(client, owner.token, dossier)
    assert p["nextActions"] == []  # no upload is taken while on hold
    assert p["documentsTotal"] == 1


async def test_progress_costs_the_same_for_2_or_8_dossiers(client):
    agent = await make_agent()
    product = await product_with([(("pdf", "png"), 24), (("pdf",), 24)])

    async def statements() -> int:
        with count_statements() as seen:
            data = await gql(client, MANY, {"first": 20}, token=agent.token)
        assert all(len(n["progress"]["nextActions"]) in (1, 2) for n in data["dossiers"]["nodes"])
        return len(seen)

    for _ in range(2):
        await _with_a_change_request(client, agent, product)
    few = await statements()
    for _ in range(6):
        await _with_a_change_request(client, agent, product)
    assert await statements() == few


async def _with_a_change_request(client, agent, product):
    owner = await make_client()
    dossier = await open_at(owner, product, now())
    pdf, _ = await documents_of(dossier)
    sent = await upload(client, owner.token, str(pdf.id), make_pdf(), "a.pdf")
    await review(client, agent.token, sent["version"]["id"], "CHANGES_REQUESTED", "Again")
    return dossier


async def test_a_client_sees_only_their_own_progress(client):
    owner, other = await make_client(), await make_client()
    dossier = await open_at(owner, await product_with([(("pdf",), 24)]), now())
    body = await gql(
        client, PROGRESS, {"id": str(dossier.id)}, token=other.token, expect_errors=True
    )
    assert error_codes(body) == ["NOT_FOUND"]


# --- overdue dossiers and the review queue ---------------------------------------------------


async def test_agents_list_overdue_dossiers_most_overdue_first(client):
    agent, other = await make_agent(), await make_agent()
    owner = await make_client()
    product = await product_with([(("pdf",), 24)])
    t = now()
    late_5h = await open_at(owner, product, t - 29 * H)
    late_50h = await open_at(owner, product, t - 74 * H)
    late_20h = await open_at(owner, product, t - 44 * H)
    await open_at(owner, product, t - 10 * H)  # not due yet
    await open_at(owner, await product_with([(("pdf",), None)]), t - 500 * H)  # no due date
    held = await open_at(owner, product, t - 100 * H)
    await hold(client, agent, held)

    data = (await gql(client, OVERDUE, {"first": 2}, token=agent.token))["overdueDossiers"]
    assert data["totalCount"] == 3
    assert [e["node"]["dossier"]["id"] for e in data["edges"]] == [
        str(late_50h.id),
        str(late_20h.id),
    ]
    node = data["edges"][0]["node"]
    assert 50 * 3600 <= node["overdueSeconds"] < 51 * 3600
    assert node["step"]["isOverdue"] is True
    assert node["step"]["position"] == 1
    assert node["assignedTo"] is None
    assert data["pageInfo"]["hasNextPage"] is True
    rest = (
        await gql(
            client, OVERDUE, {"first": 2, "after": data["pageInfo"]["endCursor"]}, token=agent.token
        )
    )["overdueDossiers"]
    assert [e["node"]["dossier"]["id"] for e in rest["edges"]] == [str(late_5h.id)]
    assert rest["pageInfo"]["hasNextPage"] is False

    # mine: the steps assigned to me
    step = await current_step(late_20h)
    await gql(
        client,
        ASSIGN,
        {"input": {"stepInstanceId": str(step.id), "agentId": other.id}},
        token=agent.token,
    )
    mine = (await gql(client, OVERDUE, {"mine": True}, token=other.token))["overdueDossiers"]
    assert [e["node"]["dossier"]["id"] for e in mine["edges"]] == [str(late_20h.id)]
    assert mine["edges"][0]["node"]["assignedTo"] == {"id": other.id}

    # released from hold, the held dossier is overdue again
    await hold(client, agent, held, "RELEASE")
    back = (await gql(client, OVERDUE, {"first": 10}, token=agent.token))["overdueDossiers"]
    assert str(held.id) in [e["node"]["dossier"]["id"] for e in back["edges"]]
    assert back["totalCount"] == 4

    body = await gql(client, OVERDUE, {}, token=owner.token, expect_errors=True)
    assert error_codes(body) == ["FORBIDDEN"]


async def test_the_review_queue_shows_how_long_each_version_waited(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await open_at(owner, await product_with([(("pdf",), 24)]), now())
    (document,) = await documents_of(dossier)
    sent = await upload(client, owner.token, str(document.id), make_pdf(), "a.pdf")
    await DocumentVersion.filter(id=sent["version"]["id"]).update(uploaded_at=now() - 3 * H)
    (item,) = (await gql(client, QUEUE, token=agent.token))["reviewQueue"]["nodes"]
    assert item["version"]["id"] == sent["version"]["id"]
    assert 3 * 3600 <= item["waitingSeconds"] < 3 * 3600 + 60
