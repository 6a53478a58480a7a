"""Documents requested on the fly and waived (issue 18, item 3), through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.models import Document, Dossier, Event, Notification
from app.models.enums import DocumentStatus, EventType
from app.services.chasing import send_document_reminders
from tests.documents_support import make_pdf, make_png, review, upload
from tests.factories import make_agent, make_client, make_dossier, make_product
from tests.helpers import error_codes, gql

REQUEST = """
mutation($input: RequestDocumentInput!) {
  requestDocument(input: $input) {
    document { id status label allowedExtensions maxFileSizeMb note requested dueAt
               documentType { id } }
    dossier { id status currentStep { id } }
    userErrors { code field message }
  }
}
"""
WAIVE = """
mutation($input: WaiveDocumentInput!) {
  waiveDocument(input: $input) {
    document { id status waivedReason waivedAt }
    dossier { id status completedAt currentStep { id position } }
    userErrors { code field message }
  }
}
"""
PROGRESS = """
query($id: ID!) {
  dossier(id: $id) {
    progress { documentsTotal nextActions { label status note allowedExtensions maxFileSizeMb
                                            documentType { id } document { id } } }
    timeline(last: 50) {
      kind
      ... on DocumentRequestEntry { reason note document { id label } }
    }
  }
}
"""


async def _open(client):
    """A dossier whose first step asks for a PDF and a PNG, then one more step."""
    return await make_dossier(client, await make_product((("pdf", "png"), ())))


async def _step_documents(dossier: Dossier) -> list[Document]:
    return list(
        await Document.filter(step_instance_id=dossier.current_step_instance_id).order_by(
            "created_at", "id"
        )
    )


def _ad_hoc(step_id, **extra):
    return {
        "stepInstanceId": str(step_id),
        "label": "Last payslip",
        "allowedExtensions": ["PDF", ".png"],
        "maxFileSizeMb": 1,
        **extra,
    }


async def test_a_request_and_a_waiver_mid_step_then_approvals_complete_the_step(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await _open(owner)
    first_step = dossier.current_step_instance_id
    pdf_doc, png_doc = await _step_documents(dossier)

    asked = (
        await gql(
            client,
            REQUEST,
            {"input": _ad_hoc(first_step, note="The one of last month")},
            token=agent.token,
        )
    )["requestDocument"]
    assert asked["userErrors"] == []
    document = asked["document"]
    assert document["status"] == "PENDING"
    assert document["label"] == "Last payslip"
    assert document["allowedExtensions"] == ["pdf", "png"]
    assert document["maxFileSizeMb"] == 1
    assert document["note"] == "The one of last month"
    assert document["requested"] is True
    assert document["documentType"] is None

    # the client uploads the typed PDF, and the requested one; the PNG type is waived
    pdf = await upload(client, owner.token, str(pdf_doc.id), make_pdf("id"), "id.pdf")
    extra = await upload(client, owner.token, document["id"], make_pdf("pay"), "pay.pdf")
    assert extra["userErrors"] == []
    assert extra["document"]["status"] == "UPLOADED"
    waived = (
        await gql(
            client,
            WAIVE,
            {"input": {"documentId": str(png_doc.id), "reason": "We have it from the bank"}},
            token=agent.token,
        )
    )["waiveDocument"]
    assert waived["userErrors"] == []
    assert waived["document"]["status"] == "WAIVED"
    assert waived["document"]["waivedReason"] == "We have it from the bank"
    assert waived["dossier"]["status"] == "UNDER_REVIEW"  # the rest is uploaded
    assert waived["dossier"]["currentStep"]["id"] == str(first_step)

    await review(client, agent.token, pdf["version"]["id"], "APPROVED")
    done = await review(client, agent.token, extra["version"]["id"], "APPROVED")
    assert done["userErrors"] == []
    assert done["dossier"]["currentStep"]["position"] == 2  # step 1 completed
    refreshed = await Dossier.get(id=dossier.id)
    assert refreshed.current_step_instance_id != first_step
    step_events = await Event.filter(
        entity_id=dossier.id, event_type=EventType.STEP_COMPLETED
    ).count()
    assert step_events == 1

    view = (await gql(client, PROGRESS, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    kinds = [e["kind"] for e in view["timeline"]]
    assert "DOCUMENT_REQUESTED" in kinds
    assert "DOCUMENT_WAIVED" in kinds
    entries = {e["kind"]: e for e in view["timeline"] if e["kind"].startswith("DOCUMENT_RE")}
    assert entries["DOCUMENT_REQUESTED"]["note"] == "The one of last month"
    assert entries["DOCUMENT_REQUESTED"]["document"]["label"] == "Last payslip"
    waiver = next(e for e in view["timeline"] if e["kind"] == "DOCUMENT_WAIVED")
    assert waiver["reason"] == "We have it from the bank"


async def test_waiving_the_last_missing_document_completes_the_step(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await _open(owner)
    pdf_doc, png_doc = await _step_documents(dossier)
    pdf = await upload(client, owner.token, str(pdf_doc.id), make_pdf("id"), "id.pdf")
    await review(client, agent.token, pdf["version"]["id"], "APPROVED")
    waived = (
        await gql(
            client,
            WAIVE,
            {"input": {"documentId": str(png_doc.id), "reason": "Not needed after all"}},
            token=agent.token,
        )
    )["waiveDocument"]
    assert waived["userErrors"] == []
    assert waived["dossier"]["currentStep"]["position"] == 2


async def test_the_client_sees_the_request_in_next_actions_and_is_notified(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await _open(owner)
    pdf_doc, png_doc = await _step_documents(dossier)
    asked = (
        await gql(
            client,
            REQUEST,
            {"input": _ad_hoc(dossier.current_step_instance_id, note="Please")},
            token=agent.token,
        )
    )["requestDocument"]
    assert asked["userErrors"] == []
    await gql(
        client,
        WAIVE,
        {"input": {"documentId": str(png_doc.id), "reason": "Not needed"}},
        token=agent.token,
    )

    view = (await gql(client, PROGRESS, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    actions = view["progress"]["nextActions"]
    assert [(a["document"]["id"], a["label"]) for a in actions] == [
        (str(pdf_doc.id), "Document"),
        (asked["document"]["id"], "Last payslip"),
    ]  # the waived PNG is not asked for
    requested = actions[1]
    assert requested["note"] == "Please"
    assert requested["documentType"] is None
    assert requested["allowedExtensions"] == ["pdf", "png"]
    assert requested["maxFileSizeMb"] == 1
    assert view["progress"]["documentsTotal"] == 2  # the typed PDF and the request

    assert await Notification.filter(user_id=owner.obj.id, template_code="document_requested")
    assert await Notification.filter(user_id=owner.obj.id, template_code="document_waived")

    # the chasing reminder lists what is missing: the request, never the waived one
    await send_document_reminders(now=datetime.now(UTC) + timedelta(days=30))
    sent = await Event.filter(
        entity_id=dossier.id, event_type=EventType.DOCUMENT_REMINDER_SENT
    ).first()
    assert sent is not None
    assert [m["documentId"] for m in sent.payload["missing"]] == [
        str(pdf_doc.id),
        asked["document"]["id"],
    ]
    assert [m["label"] for m in sent.payload["missing"]] == ["Document", "Last payslip"]


async def test_uploads_to_an_ad_hoc_request_follow_its_own_rules(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await _open(owner)
    asked = (
        await gql(
            client,
            REQUEST,
            {"input": {**_ad_hoc(dossier.current_step_instance_id), "allowedExtensions": ["png"]}},
            token=agent.token,
        )
    )["requestDocument"]
    document_id = asked["document"]["id"]
    wrong = await upload(client, owner.token, document_id, make_pdf("x"), "x.pdf")
    assert [e["code"] for e in wrong["userErrors"]] == ["EXTENSION_NOT_ALLOWED"]
    big = make_png() + b"\x00" * (1024 * 1024 + 1)
    too_large = await upload(client, owner.token, document_id, big, "big.png")
    assert [e["code"] for e in too_large["userErrors"]] == ["FILE_TOO_LARGE"]
    assert (await Document.get(id=document_id)).status == DocumentStatus.PENDING
    fine = await upload(client, owner.token, document_id, make_png(), "ok.png")
    assert fine["userErrors"] == []


async def test_bad_requests_change_nothing_and_say_why(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await _open(owner)
    step = dossier.current_step_instance_id
    (pdf_doc, png_doc) = await _step_documents(dossier)
    cases = [
        ({"stepInstanceId": str(step)}, "TYPE_OR_SPEC"),
        ({**_ad_hoc(step), "documentTypeId": str(pdf_doc.document_type_id)}, "TYPE_OR_SPEC"),
        ({"stepInstanceId": str(step), "label": "Only a label"}, "TYPE_OR_SPEC"),
        ({**_ad_hoc(step), "allowedExtensions": ["exe"]}, "UNSUPPORTED_EXTENSION"),
        ({**_ad_hoc(step), "allowedExtensions": []}, "REQUIRED"),
        ({**_ad_hoc(step), "maxFileSizeMb": 0}, "INVALID_SIZE"),
        ({**_ad_hoc(step), "label": "  "}, "REQUIRED"),
        ({**_ad_hoc(step), "dueAt": "2001-01-01T00:00:00+00:00"}, "INVALID_DUE_DATE"),
        (
            {"stepInstanceId": str(step), "documentTypeId": str(pdf_doc.document_type_id)},
            "ALREADY_REQUESTED",
        ),
        ({"stepInstanceId": str(step), "documentTypeId": "nope"}, "UNKNOWN_DOCUMENT_TYPE"),
    ]
    for given, code in cases:
        answer = (await gql(client, REQUEST, {"input": given}, token=agent.token))[
            "requestDocument"
        ]
        assert [e["code"] for e in answer["userErrors"]] == [code], (given, answer)
        assert answer["document"] is None
        assert answer["userErrors"][0]["message"]
    for given, code in [
        ({"documentId": str(png_doc.id), "reason": " "}, "REQUIRED"),
    ]:
        answer = (await gql(client, WAIVE, {"input": given}, token=agent.token))["waiveDocument"]
        assert [e["code"] for e in answer["userErrors"]] == [code], answer
    assert await Document.filter(dossier_id=dossier.id).count() == 2
    assert {d.status for d in await _step_documents(dossier)} == {DocumentStatus.PENDING}
    assert not await Event.filter(
        entity_id=dossier.id,
        event_type__in=[EventType.DOCUMENT_REQUESTED, EventType.DOCUMENT_WAIVED],
    ).exists()

    # a step gets at most three documents on the fly
    for n in range(3):
        ok = (
            await gql(
                client, REQUEST, {"input": _ad_hoc(step, label=f"Extra {n}")}, token=agent.token
            )
        )["requestDocument"]
        assert ok["userErrors"] == []
    fourth = (await gql(client, REQUEST, {"input": _ad_hoc(step)}, token=agent.token))[
        "requestDocument"
    ]
    assert [e["code"] for e in fourth["userErrors"]] == ["TOO_MANY_REQUESTS"]
    # an approved document cannot be waived
    pdf = await upload(client, owner.token, str(pdf_doc.id), make_pdf("id"), "id.pdf")
    await review(client, agent.token, pdf["version"]["id"], "APPROVED")
    late = (
        await gql(
            client,
            WAIVE,
            {"input": {"documentId": str(pdf_doc.id), "reason": "x"}},
            token=agent.token,
        )
    )["waiveDocument"]
    assert [e["code"] for e in late["userErrors"]] == ["NOT_WAIVABLE"]


async def test_clients_may_neither_request_nor_waive(client):
    owner = await make_client()
    dossier = await _open(owner)
    _, png_doc = await _step_documents(dossier)
    body = await gql(
        client,
        REQUEST,
        {"input": _ad_hoc(dossier.current_step_instance_id)},
        token=owner.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    body = await gql(
        client,
        WAIVE,
        {"input": {"documentId": str(png_doc.id), "reason": "mine"}},
        token=owner.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert await Document.filter(dossier_id=dossier.id).count() == 2
    assert (await Document.get(id=png_doc.id)).status == DocumentStatus.PENDING
