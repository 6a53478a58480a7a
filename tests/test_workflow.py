"""The dossier state machine and step engine, through the API: the whole journey, every
illegal move refused with nothing changed, hold/release/cancel, complete/skip/assign, the
timeline."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from app.errors import DomainError
from app.models import Document, Dossier, DossierStatusHistory, Event, StepInstance
from app.models.enums import DocumentStatus, DossierStatus
from app.services.workflow import machine
from tests.documents_support import dossier_view, make_pdf, make_png, review, upload
from tests.factories import make_agent, make_client, make_dossier, make_product
from tests.helpers import error_codes, gql

CHANGE_STATUS = """
mutation Change($input: ChangeDossierStatusInput!) {
  changeDossierStatus(input: $input) {
    dossier { id status }
    userErrors { field message code }
  }
}
"""
COMPLETE = """
mutation Complete($input: CompleteStepInput!) {
  completeStep(input: $input) {
    stepInstance { id completedAt skippedAt }
    dossier { id status completedAt currentStep { id } }
    userErrors { field message code }
  }
}
"""
SKIP = """
mutation Skip($input: SkipStepInput!) {
  skipStep(input: $input) {
    stepInstance { id completedAt skippedAt }
    dossier { id status completedAt currentStep { id } }
    userErrors { field message code }
  }
}
"""
ASSIGN = """
mutation Assign($input: AssignStepInput!) {
  assignStep(input: $input) {
    stepInstance { id assignedTo { id } }
    userErrors { field message code }
  }
}
"""
TIMELINE = """
query Timeline($id: ID!, $last: Int, $before: DateTime) {
  dossier(id: $id) {
    timeline(last: $last, before: $before) {
      __typename kind at actorType actorId
      actor { __typename ... on Agent { id } ... on Profile { id } }
      ... on StatusChangeEntry { oldStatus newStatus reason }
      ... on StepEntry { reason stepInstance { id position } assignedTo { id } }
      ... on DocumentUploadEntry { version { id versionNumber } document { id } }
      ... on DocumentReviewEntry { review { status reason } document { id } }
      ... on MessageEntry { messageId content }
    }
  }
}
"""


def _docs_by_code(view: dict) -> dict[str, dict]:
    return {d["documentType"]["code"]: d for d in view["currentStep"]["documents"]}


async def _event_types(dossier_id) -> list[str]:
    """The dossier's events in order (dossier-scoped, or carrying its id in the payload)."""
    rows = await Event.all().order_by("created_at", "id")
    return [
        e.event_type.value
        for e in rows
        if str(e.entity_id) == str(dossier_id)
        or (e.payload or {}).get("dossierId") == str(dossier_id)
    ]


# --- the journey ----------------------------------------------------------------------


async def test_a_dossier_from_creation_to_completed(client):
    """Three steps; step 1 has two documents (one gets a change request and a re-upload),
    step 2 one document that is rejected then re-uploaded, step 3 one document."""
    owner, agent = await make_client(), await make_agent()
    product = await make_product(steps=(("pdf", "png"), ("pdf",), ("pdf",)))
    dossier = await make_dossier(owner, product)
    did = str(dossier.id)

    view = await dossier_view(client, owner.token, did)
    assert view["status"] == "IN_PROGRESS"
    assert view["currentStep"]["position"] == 1
    assert [s["startedAt"] is not None for s in view["steps"]] == [True, False, False]
    docs = view["currentStep"]["documents"]
    assert [d["status"] for d in docs] == ["PENDING", "PENDING"]
    pdf_doc, png_doc = sorted(docs, key=lambda d: d["documentType"]["code"])
    # make_product creates the pdf type first: its code sorts first
    # --- step 1: two uploads -> UNDER_REVIEW only when both are in
    first = await upload(client, owner.token, pdf_doc["id"], make_pdf("passport"), "passport.pdf")
    assert first["userErrors"] == []
    assert first["version"]["versionNumber"] == 1
    assert first["version"]["mimeType"] == "application/pdf"
    assert first["document"]["status"] == "UPLOADED"
    assert first["dossier"]["status"] == "IN_PROGRESS"  # the photo is still missing
    photo = await upload(
        client, owner.token, png_doc["id"], make_png(), "photo.png", content_type="image/png"
    )
    assert photo["userErrors"] == []
    assert photo["dossier"]["status"] == "UNDER_REVIEW"

    # --- agent: approve the pdf, request changes on the photo
    approved = await review(client, agent.token, first["version"]["id"], "APPROVED")
    assert approved["userErrors"] == []
    assert approved["document"]["status"] == "APPROVED"
    assert approved["dossier"]["status"] == "UNDER_REVIEW"
    changes = await review(
        client, agent.token, photo["version"]["id"], "CHANGES_REQUESTED", "Blurry photo", "dpi?"
    )
    assert changes["userErrors"] == []
    assert changes["review"]["reason"] == "Blurry photo"
    assert changes["document"]["status"] == "CHANGES_REQUESTED"
    assert changes["dossier"]["status"] == "CHANGES_REQUESTED"

    # --- client re-uploads the photo: version 2, back UNDER_REVIEW
    again = await upload(
        client, owner.token, png_doc["id"], make_png(4, 4), "photo2.png", content_type="image/png"
    )
    assert again["userErrors"] == []
    assert again["version"]["versionNumber"] == 2
    assert again["dossier"]["status"] == "UNDER_REVIEW"
    # the old version can no longer be reviewed
    stale = await review(client, agent.token, photo["version"]["id"], "APPROVED")
    assert [e["code"] for e in stale["userErrors"]] == ["VERSION_NOT_CURRENT"]
    done1 = await review(client, agent.token, again["version"]["id"], "APPROVED")
    assert done1["userErrors"] == []
    # step 1 completed, step 2 started, waiting on the client again
    assert done1["dossier"]["status"] == "IN_PROGRESS"
    assert done1["dossier"]["currentStep"]["position"] == 2

    # --- step 2: uploaded, REJECTED (wrong document), uploaded again, approved
    view = await dossier_view(client, owner.token, did)
    assert view["steps"][0]["completedAt"] is not None
    assert view["steps"][1]["startedAt"] is not None
    (doc2,) = view["currentStep"]["documents"]
    assert doc2["status"] == "PENDING"
    up2 = await upload(client, owner.token, doc2["id"], make_pdf("bill"), "bill.pdf")
    assert up2["dossier"]["status"] == "UNDER_REVIEW"
    rejected = await review(client, agent.token, up2["version"]["id"], "REJECTED", "Not a bill")
    assert rejected["document"]["status"] == "REJECTED"
    assert rejected["dossier"]["status"] == "CHANGES_REQUESTED"
    up2b = await upload(client, owner.token, doc2["id"], make_pdf("real bill"), "bill.pdf")
    assert up2b["version"]["versionNumber"] == 2
    assert up2b["dossier"]["status"] == "UNDER_REVIEW"
    done2 = await review(client, agent.token, up2b["version"]["id"], "APPROVED")
    assert done2["dossier"]["currentStep"]["position"] == 3
    assert done2["dossier"]["status"] == "IN_PROGRESS"

    # --- step 3, the last: approval completes the dossier
    view = await dossier_view(client, owner.token, did)
    (doc3,) = view["currentStep"]["documents"]
    up3 = await upload(client, owner.token, doc3["id"], make_pdf("signed"), "signed.pdf")
    done3 = await review(client, agent.token, up3["version"]["id"], "APPROVED")
    assert done3["userErrors"] == []
    assert done3["dossier"]["status"] == "COMPLETED"
    assert done3["dossier"]["completedAt"] is not None
    assert done3["dossier"]["currentStep"] is None

    view = await dossier_view(client, owner.token, did)
    assert view["status"] == "COMPLETED"
    assert view["currentStep"] is None
    assert all(s["completedAt"] for s in view["steps"])
    assert not any(s["skippedAt"] for s in view["steps"])
    moves = [(h["oldStatus"], h["newStatus"]) for h in view["statusHistory"]]
    assert moves == [
        (None, "CREATED"),
        ("CREATED", "IN_PROGRESS"),
        ("IN_PROGRESS", "UNDER_REVIEW"),  # both step-1 documents uploaded
        ("UNDER_REVIEW", "CHANGES_REQUESTED"),  # photo: changes requested
        ("CHANGES_REQUESTED", "UNDER_REVIEW"),  # photo re-uploaded
        ("UNDER_REVIEW", "IN_PROGRESS"),  # step 1 done, step 2 waits on the client
        ("IN_PROGRESS", "UNDER_REVIEW"),
        ("UNDER_REVIEW", "CHANGES_REQUESTED"),  # rejected
        ("CHANGES_REQUESTED", "UNDER_REVIEW"),
        ("UNDER_REVIEW", "IN_PROGRESS"),  # step 2 done
        ("IN_PROGRESS", "UNDER_REVIEW"),
        ("UNDER_REVIEW", "COMPLETED"),
    ]
    # who moved it: the client's uploads, the agent's reviews
    by = [(h["newStatus"], h["changedByType"], h["changedById"]) for h in view["statusHistory"]]
    assert by[2] == ("UNDER_REVIEW", "USER", owner.id)
    assert by[3] == ("CHANGES_REQUESTED", "AGENT", agent.id)
    assert by[-1] == ("COMPLETED", "AGENT", agent.id)

    types = await _event_types(did)
    assert types[:3] == ["DOSSIER_STATUS_CHANGED", "DOSSIER_CREATED", "STEP_STARTED"]
    assert types.count("DOCUMENT_UPLOADED") == 6
    assert types.count("DOCUMENT_APPROVED") == 4
    assert types.count("DOCUMENT_CHANGES_REQUESTED") == 1
    assert types.count("DOCUMENT_REJECTED") == 1
    assert types.count("STEP_STARTED") == 3
    assert types.count("STEP_COMPLETED") == 3
    assert types[-2:] == ["STEP_COMPLETED", "DOSSIER_COMPLETED"]
    # an event of the review carries what a notification needs
    rejected_event = await Event.filter(event_type="DOCUMENT_REJECTED").get()
    assert rejected_event.entity_type == "document"
    assert rejected_event.entity_id == uuid.UUID(doc2["id"])
    assert rejected_event.payload["dossierId"] == did
    assert rejected_event.payload["versionId"] == up2["version"]["id"]
    assert rejected_event.payload["reason"] == "Not a bill"
    uploaded_event = (
        await Event.filter(event_type="DOCUMENT_UPLOADED").order_by("created_at").first()
    )
    assert uploaded_event.payload["versionNumber"] == 1

    # a completed dossier is closed: no upload, no status change but nothing to do
    late = await upload(client, owner.token, doc3["id"], make_pdf("late"), "late.pdf")
    assert [e["code"] for e in late["userErrors"]] == ["DOSSIER_NOT_ACTIVE"]

    # the timeline has it all, in time order
    data = await gql(client, TIMELINE, {"id": did, "last": 100}, token=owner.token)
    entries = data["dossier"]["timeline"]
    stamps = [datetime.fromisoformat(e["at"]) for e in entries]
    assert stamps == sorted(stamps)
    kinds = [e["kind"] for e in entries]
    assert kinds.count("DOCUMENT_UPLOADED") == 6
    assert kinds.count("DOCUMENT_REVIEWED") == 6
    assert kinds.count("STATUS_CHANGED") == 12
    assert kinds.count("STEP_STARTED") == 3
    assert kinds.count("STEP_COMPLETED") == 3
    assert entries[-1]["kind"] == "STATUS_CHANGED"
    assert entries[-1]["newStatus"] == "COMPLETED"
    reviewed = [e for e in entries if e["kind"] == "DOCUMENT_REVIEWED"]
    assert {e["review"]["status"] for e in reviewed} == {
        "APPROVED",
        "CHANGES_REQUESTED",
        "REJECTED",
    }
    assert all(e["actor"] == {"__typename": "Agent", "id": agent.id} for e in reviewed)
    uploads = [e for e in entries if e["kind"] == "DOCUMENT_UPLOADED"]
    assert all(e["actorType"] == "USER" and e["actorId"] == owner.id for e in uploads)
    # bounded and pageable backwards
    page = (await gql(client, TIMELINE, {"id": did, "last": 5}, token=owner.token))["dossier"]
    assert [e["at"] for e in page["timeline"]] == [e["at"] for e in entries[-5:]]
    older = await gql(
        client,
        TIMELINE,
        {"id": did, "last": 5, "before": page["timeline"][0]["at"]},
        token=owner.token,
    )
    assert [e["at"] for e in older["dossier"]["timeline"]] == [e["at"] for e in entries[-10:-5]]


async def test_timeline_includes_messages_and_assignments(client):
    from app.models import Message
    from app.models.enums import ActorType

    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    step = await StepInstance.filter(dossier_id=dossier.id, position=1).get()
    await Message.create(
        dossier_id=dossier.id, sender_type=ActorType.USER, sender_id=owner.obj.id, content="Hi"
    )
    assigned = await gql(
        client,
        ASSIGN,
        {"input": {"stepInstanceId": str(step.id), "agentId": agent.id}},
        token=agent.token,
    )
    assert assigned["assignStep"]["userErrors"] == []
    data = await gql(client, TIMELINE, {"id": str(dossier.id)}, token=owner.token)
    entries = data["dossier"]["timeline"]
    message = next(e for e in entries if e["kind"] == "MESSAGE_SENT")
    assert message["content"] == "Hi"
    assert message["actorId"] == owner.id
    assignment = next(e for e in entries if e["kind"] == "STEP_ASSIGNED")
    assert assignment["assignedTo"] == {"id": agent.id}
    assert assignment["stepInstance"]["id"] == str(step.id)
    assert entries.index(message) < entries.index(assignment)


async def test_timeline_limit_is_bounded(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    body = await gql(
        client,
        TIMELINE,
        {"id": str(dossier.id), "last": 1000},
        token=owner.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]


# --- hold, release, cancel ------------------------------------------------------------


async def _state(dossier_id) -> tuple[str, int, int]:
    dossier = await Dossier.get(id=dossier_id)
    history = await DossierStatusHistory.filter(dossier_id=dossier_id).count()
    return dossier.status.value, history, await Event.all().count()


async def _change(client, token, dossier_id, action, reason="Because"):
    data = await gql(
        client,
        CHANGE_STATUS,
        {"input": {"dossierId": str(dossier_id), "action": action, "reason": reason}},
        token=token,
    )
    return data["changeDossierStatus"]


async def test_hold_and_release_restore_the_previous_status(client):
    owner, agent = await make_client(), await make_agent()
    product = await make_product(steps=(("pdf", "pdf"), ()))
    dossier = await make_dossier(owner, product)
    view = await dossier_view(client, owner.token, dossier.id)
    a, b = view["currentStep"]["documents"]
    await upload(client, owner.token, a["id"], make_pdf(), "a.pdf")
    up = await upload(client, owner.token, b["id"], make_pdf(), "b.pdf")
    assert up["dossier"]["status"] == "UNDER_REVIEW"

    held = await _change(client, agent.token, dossier.id, "HOLD", "Waiting for the embassy")
    assert held["userErrors"] == []
    assert held["dossier"]["status"] == "ON_HOLD"
    # nothing moves while on hold: no review, no upload, no step completion
    blocked = await review(client, agent.token, up["version"]["id"], "APPROVED")
    assert [e["code"] for e in blocked["userErrors"]] == ["DOSSIER_NOT_ACTIVE"]
    blocked = await upload(client, owner.token, b["id"], make_pdf(), "b.pdf")
    assert [e["code"] for e in blocked["userErrors"]] == ["DOSSIER_NOT_ACTIVE"]
    blocked = await gql(
        client,
        COMPLETE,
        {"input": {"stepInstanceId": view["currentStep"]["id"]}},
        token=agent.token,
    )
    assert [e["code"] for e in blocked["completeStep"]["userErrors"]] == ["DOSSIER_NOT_ACTIVE"]

    released = await _change(client, agent.token, dossier.id, "RELEASE", "Embassy answered")
    assert released["userErrors"] == []
    assert released["dossier"]["status"] == "UNDER_REVIEW"
    history = await DossierStatusHistory.filter(dossier_id=dossier.id).order_by("created_at")
    assert [(h.old_status, h.new_status, h.reason) for h in history[-2:]] == [
        (DossierStatus.UNDER_REVIEW, DossierStatus.ON_HOLD, "Waiting for the embassy"),
        (DossierStatus.ON_HOLD, DossierStatus.UNDER_REVIEW, "Embassy answered"),
    ]
    assert history[-1].changed_by_id == agent.obj.id
    assert "statusBeforeHold" not in (await Dossier.get(id=dossier.id)).metadata
    ok = await review(client, agent.token, up["version"]["id"], "APPROVED")
    assert ok["userErrors"] == []


async def test_cancel_needs_a_reason_and_is_final(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    before = await _state(dossier.id)
    for reason in ("", "   "):
        refused = await _change(client, agent.token, dossier.id, "CANCEL", reason)
        assert [e["code"] for e in refused["userErrors"]] == ["REQUIRED"]
        assert refused["userErrors"][0]["field"] == ["reason"]
    too_long = await _change(client, agent.token, dossier.id, "CANCEL", "x" * 5000)
    assert [e["code"] for e in too_long["userErrors"]] == ["TOO_LONG"]
    assert await _state(dossier.id) == before

    cancelled = await _change(client, agent.token, dossier.id, "CANCEL", "Client withdrew")
    assert cancelled["dossier"]["status"] == "CANCELLED"
    event = await Event.filter(event_type="DOSSIER_CANCELLED").get()
    assert event.entity_id == dossier.id
    assert event.payload["reason"] == "Client withdrew"


# Expected outcome of each agent action from each status: the new status, or None when it
# must be refused with ILLEGAL_TRANSITION. Written out by hand (not read from the table).
ACTION_MATRIX = {
    "IN_PROGRESS": {"HOLD": "ON_HOLD", "RELEASE": None, "CANCEL": "CANCELLED"},
    "UNDER_REVIEW": {"HOLD": "ON_HOLD", "RELEASE": None, "CANCEL": "CANCELLED"},
    "CHANGES_REQUESTED": {"HOLD": "ON_HOLD", "RELEASE": None, "CANCEL": "CANCELLED"},
    "CREATED": {"HOLD": "ON_HOLD", "RELEASE": None, "CANCEL": "CANCELLED"},
    "ON_HOLD": {"HOLD": None, "RELEASE": "IN_PROGRESS", "CANCEL": "CANCELLED"},
    "COMPLETED": {"HOLD": None, "RELEASE": None, "CANCEL": None},
    "CANCELLED": {"HOLD": None, "RELEASE": None, "CANCEL": None},
}


@pytest.mark.parametrize("start", list(ACTION_MATRIX))
async def test_every_agent_action_from_every_status(client, start):
    owner, agent = await make_client(), await make_agent()
    for action, expected in ACTION_MATRIX[start].items():
        dossier = await make_dossier(owner)
        await Dossier.filter(id=dossier.id).update(
            status=start, metadata={"statusBeforeHold": "IN_PROGRESS"} if start == "ON_HOLD" else {}
        )
        before = await _state(dossier.id)
        result = await _change(client, agent.token, dossier.id, action)
        if expected is None:
            assert [e["code"] for e in result["userErrors"]] == ["ILLEGAL_TRANSITION"], (
                start,
                action,
            )
            assert start in result["userErrors"][0]["message"]
            assert result["dossier"] is None
            assert await _state(dossier.id) == before, (start, action)  # nothing changed
        else:
            assert result["userErrors"] == [], (start, action)
            assert result["dossier"]["status"] == expected
            status, history, events_count = await _state(dossier.id)
            assert (status, history) == (expected, before[1] + 1)
            assert events_count == before[2] + 1


async def test_the_table_refuses_every_move_it_does_not_list(client):
    """Straight at the state machine: each (from, to) pair outside the table raises and
    writes nothing; the table never lets the workflow hold or release, nor an agent's
    action make a workflow move."""
    owner = await make_client()
    dossier = await make_dossier(owner)
    statuses = list(DossierStatus)
    refused = 0
    for old in statuses:
        for new in statuses:
            allowed = machine.TRANSITIONS[old].get(new)
            await Dossier.filter(id=dossier.id).update(status=old)
            fresh = await Dossier.get(id=dossier.id)
            history = await DossierStatusHistory.filter(dossier_id=dossier.id).count()
            if allowed is None:
                with pytest.raises(DomainError) as caught:
                    await machine.transition(fresh, new)
                assert caught.value.code == "ILLEGAL_TRANSITION"
                assert (await Dossier.get(id=dossier.id)).status == old
                assert await DossierStatusHistory.filter(dossier_id=dossier.id).count() == history
                refused += 1
            else:
                wrong = next(c for c in machine.Cause if c != allowed)
                with pytest.raises(DomainError):
                    await machine.transition(fresh, new, cause=wrong)
    assert refused == 49 - sum(len(v) for v in machine.TRANSITIONS.values())
    assert machine.TRANSITIONS[DossierStatus.COMPLETED] == {}
    assert machine.TRANSITIONS[DossierStatus.CANCELLED] == {}
    assert (
        machine.TRANSITIONS[DossierStatus.IN_PROGRESS][DossierStatus.ON_HOLD] == machine.Cause.HOLD
    )


# --- completeStep, skipStep, assignStep ----------------------------------------------


async def test_complete_step_rules(client):
    owner, agent = await make_client(), await make_agent()
    product = await make_product(steps=(("pdf",), (), ()))
    dossier = await make_dossier(owner, product)
    steps = await StepInstance.filter(dossier_id=dossier.id).order_by("position")
    # the first step waits on a document
    refused = await gql(
        client, COMPLETE, {"input": {"stepInstanceId": str(steps[0].id)}}, token=agent.token
    )
    assert [e["code"] for e in refused["completeStep"]["userErrors"]] == ["DOCUMENTS_NOT_APPROVED"]
    # a later step is not the current one
    refused = await gql(
        client, COMPLETE, {"input": {"stepInstanceId": str(steps[1].id)}}, token=agent.token
    )
    assert [e["code"] for e in refused["completeStep"]["userErrors"]] == ["NOT_CURRENT_STEP"]
    assert (await StepInstance.get(id=steps[1].id)).completed_at is None

    doc = await Document.filter(step_instance_id=steps[0].id).get()
    up = await upload(client, owner.token, str(doc.id), make_pdf(), "a.pdf")
    await review(client, agent.token, up["version"]["id"], "APPROVED")
    view = await dossier_view(client, agent.token, dossier.id)
    assert view["currentStep"]["id"] == str(steps[1].id)
    assert view["status"] == "IN_PROGRESS"  # a step without documents waits on an agent
    # step 1 is done: completing it again is refused
    again = await gql(
        client, COMPLETE, {"input": {"stepInstanceId": str(steps[0].id)}}, token=agent.token
    )
    assert [e["code"] for e in again["completeStep"]["userErrors"]] == ["STEP_ALREADY_COMPLETED"]

    done = await gql(
        client, COMPLETE, {"input": {"stepInstanceId": str(steps[1].id)}}, token=agent.token
    )
    assert done["completeStep"]["userErrors"] == []
    assert done["completeStep"]["stepInstance"]["completedAt"] is not None
    assert done["completeStep"]["dossier"]["currentStep"]["id"] == str(steps[2].id)
    last = await gql(
        client, COMPLETE, {"input": {"stepInstanceId": str(steps[2].id)}}, token=agent.token
    )
    assert last["completeStep"]["dossier"]["status"] == "COMPLETED"
    assert last["completeStep"]["dossier"]["completedAt"] is not None
    assert last["completeStep"]["dossier"]["currentStep"] is None


async def test_skip_step_only_for_optional_steps(client):
    owner, agent = await make_client(), await make_agent()
    product = await make_product(steps=(("pdf",), ("pdf",), ()))
    dossier = await make_dossier(owner, product)
    steps = await StepInstance.filter(dossier_id=dossier.id).order_by("position")
    refused = await gql(
        client, SKIP, {"input": {"stepInstanceId": str(steps[0].id)}}, token=agent.token
    )
    assert [e["code"] for e in refused["skipStep"]["userErrors"]] == ["STEP_REQUIRED"]

    # steps 2 and 3 optional: skip 3 ahead of time, then 1 is completed, then skip 2 (current)
    from app.models import ProductStep

    await ProductStep.filter(product_id=product.id, position__in=[2, 3]).update(is_required=False)
    await StepInstance.filter(id__in=[steps[1].id, steps[2].id]).update(is_required=False)
    ahead = await gql(
        client,
        SKIP,
        {"input": {"stepInstanceId": str(steps[2].id), "reason": "Not needed"}},
        token=agent.token,
    )
    assert ahead["skipStep"]["userErrors"] == []
    assert ahead["skipStep"]["stepInstance"]["skippedAt"] is not None
    assert ahead["skipStep"]["dossier"]["currentStep"]["id"] == str(steps[0].id)  # unchanged
    again = await gql(
        client, SKIP, {"input": {"stepInstanceId": str(steps[2].id)}}, token=agent.token
    )
    assert [e["code"] for e in again["skipStep"]["userErrors"]] == ["STEP_ALREADY_COMPLETED"]

    doc = await Document.filter(step_instance_id=steps[0].id).get()
    up = await upload(client, owner.token, str(doc.id), make_pdf(), "a.pdf")
    moved = await review(client, agent.token, up["version"]["id"], "APPROVED")
    assert moved["dossier"]["currentStep"]["id"] == str(steps[1].id)
    skipped = await gql(
        client, SKIP, {"input": {"stepInstanceId": str(steps[1].id)}}, token=agent.token
    )
    payload = skipped["skipStep"]
    assert payload["userErrors"] == []
    # step 3 was skipped already: skipping the current step 2 finishes the dossier
    assert payload["dossier"]["status"] == "COMPLETED"
    assert payload["dossier"]["currentStep"] is None
    rows = await StepInstance.filter(dossier_id=dossier.id).order_by("position")
    assert [r.skipped_at is not None for r in rows] == [False, True, True]
    assert all(r.completed_at for r in rows)
    assert rows[2].started_at is None  # never started
    skipped_events = await Event.filter(event_type="STEP_SKIPPED").order_by("created_at")
    assert [e.payload["stepInstanceId"] for e in skipped_events] == [
        str(steps[2].id),
        str(steps[1].id),
    ]
    assert skipped_events[0].payload["reason"] == "Not needed"


async def test_assign_step(client):
    owner, agent, other = await make_client(), await make_agent(), await make_agent()
    inactive = await make_agent(active=False)
    dossier = await make_dossier(owner)
    step = await StepInstance.filter(dossier_id=dossier.id, position=1).get()

    async def assign(agent_id):
        data = await gql(
            client,
            ASSIGN,
            {"input": {"stepInstanceId": str(step.id), "agentId": agent_id}},
            token=agent.token,
        )
        return data["assignStep"]

    ok = await assign(other.id)
    assert ok["userErrors"] == []
    assert ok["stepInstance"]["assignedTo"] == {"id": other.id}
    for bad, code in (
        (str(uuid.uuid4()), "UNKNOWN_AGENT"),
        ("nope", "UNKNOWN_AGENT"),
        (inactive.id, "AGENT_INACTIVE"),
    ):
        refused = await assign(bad)
        assert [e["code"] for e in refused["userErrors"]] == [code]
        assert refused["userErrors"][0]["field"] == ["agentId"]
    assert (await StepInstance.get(id=step.id)).assigned_to_id == other.obj.id  # unchanged
    # a client id is not an agent
    refused = await assign(owner.id)
    assert [e["code"] for e in refused["userErrors"]] == ["UNKNOWN_AGENT"]
    unassigned = await assign(None)
    assert unassigned["stepInstance"]["assignedTo"] is None
    events = await Event.filter(event_type="STEP_ASSIGNED").order_by("created_at")
    assert [(e.payload["agentId"], e.payload["previousAgentId"]) for e in events] == [
        (other.id, None),
        (None, other.id),
    ]


async def test_clients_cannot_drive_the_workflow(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    step = await StepInstance.filter(dossier_id=dossier.id, position=1).get()
    before = await _state(dossier.id)
    for query, variables in (
        (
            CHANGE_STATUS,
            {"input": {"dossierId": str(dossier.id), "action": "CANCEL", "reason": "x"}},
        ),
        (COMPLETE, {"input": {"stepInstanceId": str(step.id)}}),
        (SKIP, {"input": {"stepInstanceId": str(step.id)}}),
        (ASSIGN, {"input": {"stepInstanceId": str(step.id), "agentId": None}}),
    ):
        body = await gql(client, query, variables, token=owner.token, expect_errors=True)
        assert error_codes(body) == ["FORBIDDEN"]
    assert await _state(dossier.id) == before


async def test_unknown_ids_answer_not_found(client):
    agent = await make_agent()
    for query, variables in (
        (
            CHANGE_STATUS,
            {"input": {"dossierId": str(uuid.uuid4()), "action": "HOLD", "reason": "x"}},
        ),
        (CHANGE_STATUS, {"input": {"dossierId": "not-a-uuid", "action": "HOLD", "reason": "x"}}),
        (COMPLETE, {"input": {"stepInstanceId": str(uuid.uuid4())}}),
        (SKIP, {"input": {"stepInstanceId": "42"}}),
    ):
        body = await gql(client, query, variables, token=agent.token, expect_errors=True)
        assert error_codes(body) == ["NOT_FOUND"]


async def test_refund_still_cancels_through_the_table(client):
    """The payments path calls `transition` without a cause: the table decides."""
    owner = await make_client()
    dossier = await make_dossier(owner)
    from tortoise.transactions import in_transaction

    async with in_transaction():
        locked = await machine.lock_dossier(dossier.id)
        await machine.transition(locked, DossierStatus.CANCELLED, reason="Payment refunded")
    assert (await Dossier.get(id=dossier.id)).status == DossierStatus.CANCELLED
    docs = await Document.filter(dossier_id=dossier.id)
    assert {d.status for d in docs} == {DocumentStatus.PENDING}
