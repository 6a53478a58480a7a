"""One validation per kind of input (app/services/validation.py), through every mutation
that takes it: phone numbers stored as E.164, single-line names and labels without control
or format characters, multi-line texts keeping their line breaks only; and an e-mail that
cannot be built (old data) fails permanently with its reason instead of being retried."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.errors import DomainError
from app.models import (
    Agent,
    Credential,
    DocumentType,
    Message,
    Notification,
    NotificationDelivery,
    PaymentLink,
    Product,
    Profile,
    Step,
)
from app.models.enums import NotificationChannel, NotificationStatus
from app.services import identity
from app.services.delivery import deliver_due
from app.services.payments.links import token_digest
from tests.factories import make_admin, make_agent, make_client, make_dossier, make_product
from tests.helpers import gql
from tests.notifications_support import FULL_CONTEXT, SmtpPeer, peer_settings

UPDATE_MY_PROFILE = """
mutation($input: UpdateMyProfileInput!) {
  updateMyProfile(input: $input) {
    viewer { ... on Profile { fullName phone } ... on Agent { name } }
    userErrors { field message code }
  }
}
"""
CREATE_AGENT = """
mutation($input: CreateAgentInput!) {
  createAgent(input: $input) { agent { id name } userErrors { field message code } }
}
"""
UPDATE_AGENT = """
mutation($input: UpdateAgentInput!) {
  updateAgent(input: $input) { agent { id name } userErrors { field message code } }
}
"""
INVITE_CLIENT = """
mutation($input: InviteClientInput!) {
  inviteClient(input: $input) { profile { id } userErrors { field message code } }
}
"""
CREATE_PRODUCT = """
mutation($input: CreateProductInput!) {
  createProduct(input: $input) { product { id name } userErrors { field message code } }
}
"""
UPDATE_PRODUCT = """
mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) { product { id name } userErrors { field message code } }
}
"""
CREATE_STEP = """
mutation($input: CreateStepInput!) {
  createStep(input: $input) { step { id label } userErrors { field message code } }
}
"""
CREATE_DOCUMENT_TYPE = """
mutation($input: CreateDocumentTypeInput!) {
  createDocumentType(input: $input) {
    documentType { id label } userErrors { field message code }
  }
}
"""
UPDATE_DOCUMENT_TYPE = """
mutation($input: UpdateDocumentTypeInput!) {
  updateDocumentType(input: $input) {
    documentType { id label } userErrors { field message code }
  }
}
"""
CREATE_LINK = """
mutation($input: CreatePaymentLinkInput!) {
  createPaymentLink(input: $input) {
    paymentLink { token } userErrors { field message code }
  }
}
"""
REGISTER = """
mutation($input: RegisterWithPaymentLinkInput!) {
  registerWithPaymentLink(input: $input) {
    profile { id fullName phone } userErrors { field message code }
  }
}
"""
SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id content } userErrors { field message code } }
}
"""

# what must never be stored in a name: line breaks (header injection), other controls, a
# bidi override, invisible characters (NUL is refused for every argument, see below)
BAD_NAMES = {
    "crlf": "Agent\r\nBcc: victim@example.org",
    "lf": "Agent\nSmith",
    "esc": "Agent\x1b[2JSmith",
    "rlo": "Agent \u202egpj.exe",
    "tab": "Agent\tSmith",
    "zero-width": "Ag\u200bent",
}
BAD = pytest.mark.parametrize("bad", list(BAD_NAMES.values()), ids=list(BAD_NAMES))


NUL_CASES = [
    ("update-my-profile", UPDATE_MY_PROFILE, {"fullName": "A\x00B"}),
    ("create-agent", CREATE_AGENT, {"email": "nul@example.com", "name": "A\x00B"}),
    ("invite-client", INVITE_CLIENT, {"email": "nul@example.com", "fullName": "A\x00B"}),
    ("create-step", CREATE_STEP, {"code": "NUL", "label": "A\x00B"}),
]


def codes(payload: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


# --- phones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    [
        "+1 (555) ;DROP<b>",
        "+1 555 0100",  # not a real number
        "12",
        "06 12 34 56 78; rm",
        "06 12\n34 56 78",
        "tel:0612345678",
        "+33 6 12 34 56 78 99 99 99",
    ],
)
async def test_update_my_profile_refuses_a_junk_phone_and_stores_nothing(client, junk):
    account = await make_client()
    await Profile.filter(id=account.obj.id).update(phone="+33699999999")

    data = await gql(client, UPDATE_MY_PROFILE, {"input": {"phone": junk}}, token=account.token)

    payload = data["updateMyProfile"]
    assert codes(payload) == [("INVALID_PHONE", ["phone"])]
    assert "phone number" in payload["userErrors"][0]["message"]
    assert payload["viewer"] is None
    assert (await Profile.get(id=account.obj.id)).phone == "+33699999999"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "+33612345678"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
async def test_update_my_profile_stores_phones_as_e164(client, typed, stored):
    account = await make_client()

    data = await gql(client, UPDATE_MY_PROFILE, {"input": {"phone": typed}}, token=account.token)

    payload = data["updateMyProfile"]
    assert payload["userErrors"] == []
    assert payload["viewer"]["phone"] == stored
    assert (await Profile.get(id=account.obj.id)).phone == stored


async def test_an_empty_phone_removes_it(client):
    account = await make_client()
    await Profile.filter(id=account.obj.id).update(phone="+33612345678")
    data = await gql(client, UPDATE_MY_PROFILE, {"input": {"phone": "  "}}, token=account.token)
    assert data["updateMyProfile"]["userErrors"] == []
    assert (await Profile.get(id=account.obj.id)).phone is None


# --- names on accounts ---------------------------------------------------------------------


@BAD
async def test_update_my_profile_refuses_a_name_with_control_characters(client, bad):
    account = await make_client()
    before = (await Profile.get(id=account.obj.id)).full_name
    data = await gql(client, UPDATE_MY_PROFILE, {"input": {"fullName": bad}}, token=account.token)
    assert codes(data["updateMyProfile"]) == [("INVALID_TEXT", ["fullName"])]
    assert (await Profile.get(id=account.obj.id)).full_name == before

    agent = await make_agent()
    data = await gql(client, UPDATE_MY_PROFILE, {"input": {"fullName": bad}}, token=agent.token)
    assert codes(data["updateMyProfile"]) == [("INVALID_TEXT", ["fullName"])]
    assert (await Agent.get(id=agent.obj.id)).name == agent.obj.name


async def test_names_are_trimmed_and_their_spaces_collapsed(client):
    account = await make_client()
    data = await gql(
        client,
        UPDATE_MY_PROFILE,
        {"input": {"fullName": "  Jeanne \u00a0  Martin "}},
        token=account.token,
    )
    assert data["updateMyProfile"]["viewer"]["fullName"] == "Jeanne Martin"
    assert (await Profile.get(id=account.obj.id)).full_name == "Jeanne Martin"


@BAD
@pytest.mark.parametrize("invited", [False, True], ids=["with-password", "invited"])
async def test_create_agent_refuses_a_name_with_control_characters(client, bad, invited):
    admin = await make_admin()
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    agent_input: dict[str, Any] = {"email": email, "name": bad}
    if not invited:
        agent_input["password"] = "a-much-better-passphrase"
    data = await gql(client, CREATE_AGENT, {"input": agent_input}, token=admin.token)
    assert codes(data["createAgent"]) == [("INVALID_TEXT", ["name"])]
    assert not await Credential.filter(email=email).exists()


@BAD
async def test_update_agent_refuses_a_name_with_control_characters(client, bad):
    admin = await make_admin()
    agent = await make_agent()
    data = await gql(
        client, UPDATE_AGENT, {"input": {"id": agent.id, "name": bad}}, token=admin.token
    )
    assert codes(data["updateAgent"]) == [("INVALID_TEXT", ["name"])]
    assert (await Agent.get(id=agent.obj.id)).name == agent.obj.name


@BAD
async def test_invite_client_refuses_a_name_with_control_characters(client, bad):
    agent = await make_agent()
    email = f"invitee-{uuid.uuid4().hex[:8]}@example.com"
    data = await gql(
        client, INVITE_CLIENT, {"input": {"email": email, "fullName": bad}}, token=agent.token
    )
    assert codes(data["inviteClient"]) == [("INVALID_TEXT", ["fullName"])]
    assert not await Credential.filter(email=email).exists()


# --- payment links and registration --------------------------------------------------------


async def _link(client, name: str = "Pat Prospect") -> dict[str, Any]:
    admin = await make_admin()
    product = await make_product()
    data = await gql(
        client,
        CREATE_LINK,
        {
            "input": {
                "productId": str(product.id),
                "prospectEmail": f"  Prospect-{uuid.uuid4().hex[:8]}@Example.COM ",
                "prospectName": name,
            }
        },
        token=admin.token,
    )
    return data["createPaymentLink"]


@BAD
async def test_payment_links_refuse_a_prospect_name_with_control_characters(client, bad):
    assert codes(await _link(client, bad)) == [("INVALID_TEXT", ["prospectName"])]
    assert await PaymentLink.all().count() == 0


async def test_payment_links_store_the_normalised_email(client):
    payload = await _link(client)
    link = await PaymentLink.get(token=token_digest(payload["paymentLink"]["token"]))
    assert link.prospect_email == link.prospect_email.strip().lower()
    assert link.prospect_email.endswith("@example.com")


@BAD
async def test_registration_refuses_a_name_with_control_characters(client, bad):
    token = (await _link(client))["paymentLink"]["token"]
    data = await gql(
        client,
        REGISTER,
        {
            "input": {
                "token": token,
                "fullName": bad,
                "phone": "06 12 34 56 78",
                "password": "a-good-password",
            }
        },
    )
    assert codes(data["registerWithPaymentLink"]) == [("INVALID_TEXT", ["fullName"])]
    assert await Profile.all().count() == 0
    assert (await PaymentLink.get(token=token_digest(token))).used_at is None


async def test_registration_and_profile_store_the_same_phone_form(client):
    token = (await _link(client))["paymentLink"]["token"]
    data = await gql(
        client,
        REGISTER,
        {
            "input": {
                "token": token,
                "fullName": "Pat  Prospect",
                "phone": "06 12 34 56 78",
                "password": "a-good-password",
            }
        },
    )
    payload = data["registerWithPaymentLink"]
    assert payload["userErrors"] == []
    assert (payload["profile"]["fullName"], payload["profile"]["phone"]) == (
        "Pat Prospect",
        "+33612345678",
    )


@pytest.mark.parametrize(
    ("document", "variables"),
    [(doc, variables) for _, doc, variables in NUL_CASES],
    ids=[name for name, _, _ in NUL_CASES],
)
async def test_a_nul_is_refused_before_any_mutation_runs(client, document, variables):
    admin = await make_admin()
    body = await gql(client, document, {"input": variables}, token=admin.token, expect_errors=True)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    assert not await Credential.filter(email="nul@example.com").exists()
    assert not await Step.filter(code="NUL").exists()
    assert "A\x00B" not in [a.name for a in await Agent.all()]


# --- the catalogue -----------------------------------------------------------------------


@BAD
async def test_catalogue_names_and_labels_refuse_control_characters(client, bad):
    admin = await make_admin()
    token = admin.token
    product = await make_product()
    step = await Step.create(code=f"S{uuid.uuid4().hex[:6]}", label="Fine label")
    document_type = await DocumentType.create(
        code=f"D{uuid.uuid4().hex[:6]}", label="Fine label", max_file_size_mb=5,
        allowed_extensions=["pdf"],
    )  # fmt: skip
    before = (await Product.all().count(), await Step.all().count())

    created = await gql(
        client,
        CREATE_PRODUCT,
        {"input": {"code": "BAD-P", "name": bad, "dossierType": "OTHER", "priceAmount": 100}},
        token=token,
    )
    assert codes(created["createProduct"]) == [("INVALID_TEXT", ["name"])]
    updated = await gql(
        client, UPDATE_PRODUCT, {"input": {"id": str(product.id), "name": bad}}, token=token
    )
    assert codes(updated["updateProduct"]) == [("INVALID_TEXT", ["name"])]
    new_step = await gql(
        client, CREATE_STEP, {"input": {"code": "BAD-S", "label": bad}}, token=token
    )
    assert codes(new_step["createStep"]) == [("INVALID_TEXT", ["label"])]
    new_type = await gql(
        client,
        CREATE_DOCUMENT_TYPE,
        {"input": {"code": "BAD-D", "label": bad, "allowedExtensions": ["pdf"]}},
        token=token,
    )
    assert codes(new_type["createDocumentType"]) == [("INVALID_TEXT", ["label"])]
    renamed = await gql(
        client,
        UPDATE_DOCUMENT_TYPE,
        {"input": {"id": str(document_type.id), "label": bad}},
        token=token,
    )
    assert codes(renamed["updateDocumentType"]) == [("INVALID_TEXT", ["label"])]

    assert (await Product.all().count(), await Step.all().count()) == before
    assert (await Product.get(id=product.id)).name == product.name
    assert (await Step.get(id=step.id)).label == "Fine label"
    assert (await DocumentType.get(id=document_type.id)).label == "Fine label"


async def test_a_description_keeps_its_line_breaks_but_no_other_control(client):
    admin = await make_admin()
    ok = await gql(
        client,
        CREATE_STEP,
        {"input": {"code": "MULTI", "label": "Step", "description": "One\r\nTwo\nThree"}},
        token=admin.token,
    )
    assert ok["createStep"]["userErrors"] == []
    assert (await Step.get(code="MULTI")).description == "One\nTwo\nThree"
    refused = await gql(
        client,
        CREATE_STEP,
        {"input": {"code": "BIDI", "label": "Step", "description": "One\u202eTwo"}},
        token=admin.token,
    )
    assert codes(refused["createStep"]) == [("INVALID_TEXT", ["description"])]
    assert not await Step.filter(code="BIDI").exists()


# --- multi-line texts: chat messages -------------------------------------------------------


async def test_a_message_keeps_its_line_breaks_and_refuses_other_controls(client):
    account = await make_client()
    dossier = await make_dossier(account)

    sent = await gql(
        client,
        SEND,
        {"input": {"dossierId": str(dossier.id), "content": "Hello\r\nsecond line\n"}},
        token=account.token,
    )
    assert sent["sendMessage"]["userErrors"] == []
    assert sent["sendMessage"]["message"]["content"] == "Hello\nsecond line"

    for bad in ("Hello \u202eevil", "Hello\x1b[2J"):
        refused = await gql(
            client,
            SEND,
            {"input": {"dossierId": str(dossier.id), "content": bad}},
            token=account.token,
        )
        assert codes(refused["sendMessage"]) == [("INVALID_TEXT", ["content"])]
    assert await Message.filter(dossier_id=dossier.id).count() == 1


# --- an e-mail that cannot be built --------------------------------------------------------


@pytest.fixture
def smtp():
    peer = SmtpPeer().start()
    yield peer
    peer.stop()


async def test_an_email_that_cannot_be_built_fails_once_with_its_reason(smtp):
    """Old data: a step label stored with CR/LF before names were checked. The subject
    ("New step: …") cannot be built; the delivery fails at once and is never retried."""
    client = await make_client()
    notification = await Notification.create(
        user_id=client.obj.id,
        title="New step",
        message="m",
        template_code="step_started",
        payload={
            "locale": "en",
            "context": {**FULL_CONTEXT, "step": "Identity\r\nBcc: x@example.org"},
        },
    )
    row = await NotificationDelivery.create(
        notification_id=notification.id,
        channel=NotificationChannel.EMAIL,
        recipient="camille@example.com",
        status=NotificationStatus.PENDING,
        next_attempt_at=datetime.now(UTC),
    )
    settings = peer_settings(smtp=smtp, delivery_max_attempts=6)

    report = await deliver_due(settings=settings)

    assert (report.claimed, report.failed, report.retrying, report.sent) == (1, 1, 0, 0)
    stored = await NotificationDelivery.get(id=row.id)
    assert stored.status == NotificationStatus.FAILED
    assert stored.attempts == 1
    assert stored.failed_at is not None
    assert "cannot be built" in stored.last_error
    assert "linefeed or carriage return" in stored.last_error
    assert stored.provider == "smtp"
    assert stored.provider_response["error"] == "unbuildable"
    assert smtp.attempted == []  # nothing reached the server, no Bcc to anyone
    later = datetime.now(UTC) + timedelta(days=2)
    assert (await deliver_due(now=later, settings=settings)).claimed == 0
    assert (await NotificationDelivery.get(id=row.id)).attempts == 1


async def test_the_command_line_admin_gets_the_same_checks():
    """`python -m app create-admin` does not go through GraphQL: the service refuses too."""
    with pytest.raises(DomainError) as refused:
        await identity.ensure_admin("root@example.com", "a-much-better-passphrase", "Ro\x00ot")
    assert (refused.value.code, refused.value.field) == ("INVALID_TEXT", ["name"])
    assert not await Credential.filter(email="root@example.com").exists()


async def test_names_spelt_with_joiners_are_kept(client):
    """Persian and Indic names need the zero-width non-joiner (U+200C) and joiner."""

    account = await make_client()
    name = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 Rezaei"  # می‌خواهم, with ZWNJ
    data = await gql(
        client,
        "mutation($n: String!) { updateMyProfile(input: {fullName: $n}) "
        "{ viewer { ... on Profile { fullName } } userErrors { code } } }",
        {"n": name},
        token=account.token,
    )
    assert data["updateMyProfile"]["userErrors"] == []
    assert data["updateMyProfile"]["viewer"]["fullName"] == name
