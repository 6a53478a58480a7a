"""The GDPR (issue 19): the right of access (requestMyDataExport, requestDataExport: the
worker's archive, its e-mailed signed link) and the right to erasure (eraseClient: no
personal field left in any table, no file left in the storage, local or S3)."""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from tortoise import Tortoise, fields

from app import clock
from app.models import (
    AccountSession,
    Credential,
    DataExport,
    DocumentVersion,
    Event,
    FileDeletion,
    InboundMessage,
    Order,
    PaymentLink,
    Profile,
)
from app.models.enums import (
    DataExportStatus,
    DossierStatus,
    EventType,
    InboundOutcome,
    NotificationChannel,
)
from app.providers.storage import Storage
from app.services import outbox
from app.services.delivery import deliver_due
from app.services.payments.links import link_secret, token_digest
from app.services.privacy import exports, files
from tests.documents_support import MotoServer, app_client, make_pdf, upload
from tests.factories import Account, make_admin, make_agent, make_client, make_dossier, make_product
from tests.helpers import gql
from tests.notifications_support import parts, peer_settings
from tests.test_accounts import RESEND

REQUEST_MINE = """
mutation { requestMyDataExport {
  dataExport { id status requestedByType client { id } } userErrors { code message } } }
"""
REQUEST_FOR = """
mutation($id: ID!) { requestDataExport(input: {profileId: $id}) {
  dataExport { id status requestedByType } userErrors { code message } } }
"""
ERASE = """
mutation($id: ID!, $reason: String!, $force: Boolean!) {
  eraseClient(input: {profileId: $id, reason: $reason, force: $force}) {
    client { id fullName phone email erasedAt } alreadyErased
    userErrors { code field message } } }
"""
SEND = """
mutation($input: SendMessageInput!) { sendMessage(input: $input) { userErrors { code } } }
"""
ME = "query { me { ... on Profile { id fullName } } }"
LINK = re.compile(r"https?://\S+/exports/\S+")


# --- a world: a client with a dossier, a file, messages; another client ---------------


async def _client_with_data(client: httpx.AsyncClient, marker: str) -> dict[str, Any]:
    account = await make_client()
    profile = account.obj
    assert isinstance(profile, Profile)
    profile.full_name = f"Hélène Dupont{marker}"
    profile.phone = "+336" + str(uuid.uuid4().int)[:8]
    await profile.save()
    dossier = await make_dossier(account, await make_product((("pdf",), (), ())))
    document = await dossier.documents.all().first()
    assert document is not None
    uploaded = await upload(
        client, account.token, str(document.id), make_pdf(marker), f"passport-{marker}.pdf"
    )
    assert uploaded["userErrors"] == [], uploaded
    sent = await gql(
        client,
        SEND,
        {"input": {"dossierId": str(dossier.id), "content": f"Bonjour, ici {marker}"}},
        token=account.token,
    )
    assert sent["sendMessage"]["userErrors"] == []
    agent = await make_agent()  # an internal note that names them
    noted = await gql(
        client,
        "mutation($input: AddDossierNoteInput!) { addDossierNote(input: $input) "
        "{ userErrors { code } } }",
        {"input": {"dossierId": str(dossier.id), "body": f"Called {profile.full_name} back"}},
        token=agent.token,
    )
    assert noted["addDossierNote"]["userErrors"] == []
    for outcome, profile_id in (
        (InboundOutcome.ATTACHED, profile.id),
        (InboundOutcome.AMBIGUOUS_SENDER, None),
    ):
        await InboundMessage.create(  # what they wrote us by WhatsApp, kept with the number
            message_sid="SM" + uuid.uuid4().hex,
            channel=NotificationChannel.WHATSAPP,
            from_number=profile.phone,
            body=f"Voici {marker}",
            outcome=outcome,
            profile_id=profile_id,
        )
    link_id = uuid.uuid4()  # a payment link once sent to their address
    await PaymentLink.create(
        id=link_id,
        token=token_digest(link_secret(link_id)),
        product_id=dossier.product_id,
        prospect_email=account.email,
        prospect_name=profile.full_name,
        expires_at=clock.now() + timedelta(days=1),
        used_by_id=profile.id,
    )
    return {"account": account, "dossier": dossier, "marker": marker, "phone": profile.phone}


async def _settle() -> None:
    """Every event dispatched (notifications made), every delivery attempted."""
    await outbox.drain(within=10)
    await outbox.dispatch(list(await Event.filter(processed_at=None).values_list("id", flat=True)))
    await deliver_due(settings=peer_settings())


def _archive(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def _stored(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key)])


# --- right of access ---------------------------------------------------------------------


async def test_a_client_exports_their_data_and_gets_the_link_by_email(client, smtp):
    mine = await _client_with_data(client, "MARKA" + uuid.uuid4().hex[:6])
    other = await _client_with_data(client, "MARKB" + uuid.uuid4().hex[:6])
    account: Account = mine["account"]
    storage: Storage = client._transport.app.state.storage  # type: ignore[attr-defined]

    asked = (await gql(client, REQUEST_MINE, token=account.token))["requestMyDataExport"]
    assert asked["userErrors"] == []
    assert asked["dataExport"]["status"] == "REQUESTED"
    assert asked["dataExport"]["requestedByType"] == "USER"
    assert asked["dataExport"]["client"]["id"] == account.id
    again = (await gql(client, REQUEST_MINE, token=account.token))["requestMyDataExport"]
    assert [e["code"] for e in again["userErrors"]] == ["EXPORT_PENDING"]
    assert again["dataExport"] is None
    assert await DataExport.filter(profile_id=account.obj.id).count() == 1

    await _settle()
    assert await exports.build_due(storage) == 1
    export = await DataExport.get(id=asked["dataExport"]["id"])
    assert export.status == DataExportStatus.READY
    assert export.storage_key
    assert export.expires_at is not None
    assert export.expires_at - export.ready_at <= timedelta(days=7)  # type: ignore[operator]

    contents = _archive(await _stored(storage, export.storage_key))
    names = set(contents)
    for expected in (
        "README.txt",
        "profile.json",
        "credential.json",
        "sessions.json",
        "dossiers.json",
        "step_instances.json",
        "documents.json",
        "document_versions.json",
        "messages.json",
        "notifications.json",
        "orders.json",
        "payment_links.json",
        "events.json",
    ):
        assert expected in names, names
    (file_name,) = [n for n in names if n.startswith("files/")]
    assert mine["marker"] in file_name
    assert contents[file_name] == make_pdf(mine["marker"])
    everything = b"\n".join(contents.values()).decode("utf-8", "replace")
    assert mine["marker"] in orjson.loads(contents["messages.json"])[0]["content"]
    assert orjson.loads(contents["profile.json"])["full_name"].startswith("Hélène Dupont")
    dossiers = orjson.loads(contents["dossiers.json"])
    assert [d["id"] for d in dossiers] == [str(mine["dossier"].id)]
    assert orjson.loads(contents["orders.json"])[0]["amount"] == 10_000
    # nobody else's, and no secret
    assert other["marker"] not in everything
    assert other["account"].email not in everything
    assert str(other["dossier"].id) not in everything
    credential = await Credential.get(profile_id=account.obj.id)
    session_hashes = await AccountSession.filter(credential_id=credential.id).values_list(
        "refresh_token_hash", flat=True
    )
    for secret in (credential.password_hash, *session_hashes):
        assert secret not in everything
    for column in ("password_hash", "totp_secret", "recovery_code_hashes", "refresh_token_hash"):
        assert f'"{column}"' not in everything
    link_row = await PaymentLink.get(prospect_email=account.email)
    assert link_row.token not in everything

    # the e-mail with the signed link, and the link
    report = await deliver_due(settings=peer_settings(smtp=smtp))
    assert report.sent >= 1
    (mail,) = [m for m in smtp.accepted if m["To"] == account.email]
    text, _html = parts(mail)
    (url,) = LINK.findall(text)
    path = url.split("://", 1)[1].partition("/")[2]
    response = await client.get("/" + path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    assert _archive(response.content)["profile.json"] == contents["profile.json"]
    for stored in await Event.filter(event_type=EventType.DATA_EXPORT_READY).values_list(
        "payload", flat=True
    ):
        assert "signature" not in orjson.dumps(stored).decode()

    # a forged, altered or expired link: 403
    forged = re.sub(r"signature=[0-9a-f]+", "signature=" + "0" * 64, path)
    assert (await client.get("/" + forged)).status_code == 403
    stretched = re.sub(r"expires=(\d+)", lambda m: f"expires={int(m.group(1)) + 3600}", path)
    assert (await client.get("/" + stretched)).status_code == 403
    other_id = re.sub(r"exports/[0-9a-f-]+", f"exports/{uuid.uuid4()}", path)
    assert (await client.get("/" + other_id)).status_code == 403
    clock.travel(timedelta(days=8))
    try:
        assert (await client.get("/" + path)).status_code == 403
        # the worker deletes what expired
        assert await exports.expire_due(storage) == 1
        await exports.expire_due(storage)
    finally:
        clock.reset()
    export = await DataExport.get(id=export.id)
    assert export.status == DataExportStatus.EXPIRED
    assert export.storage_key is None
    assert not await storage.exists(f"exports/{account.obj.id}/{export.id}.zip")
    assert not await FileDeletion.exists()
    # and a new one may be asked for
    again = (await gql(client, REQUEST_MINE, token=account.token))["requestMyDataExport"]
    assert again["userErrors"] == []


async def test_an_admin_exports_a_client_both_get_the_link(client, smtp):
    mine = await _client_with_data(client, "MARKC" + uuid.uuid4().hex[:6])
    admin = await make_admin()
    account: Account = mine["account"]
    storage: Storage = client._transport.app.state.storage  # type: ignore[attr-defined]
    denied = await gql(client, REQUEST_FOR, {"id": account.id}, token=account.token,
                       expect_errors=True)  # fmt: skip
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    asked = (await gql(client, REQUEST_FOR, {"id": account.id}, token=admin.token))[
        "requestDataExport"
    ]
    assert asked["userErrors"] == []
    assert asked["dataExport"]["requestedByType"] == "AGENT"
    await _settle()
    assert await exports.build_due(storage) == 1
    await deliver_due(settings=peer_settings(smtp=smtp))
    to = sorted(m["To"] for m in smtp.accepted if LINK.search(parts(m)[0]))
    assert to == sorted([account.email, admin.email])


async def test_a_build_that_fails_is_retried_then_failed(client):
    mine = await _client_with_data(client, "MARKD" + uuid.uuid4().hex[:6])
    account: Account = mine["account"]
    asked = (await gql(client, REQUEST_MINE, token=account.token))["requestMyDataExport"]

    class Broken:
        name = "broken"

        async def save(self, key, chunks, *, content_type):  # noqa: ARG002
            raise OSError("disk full")

        async def delete(self, key):  # noqa: ARG002
            return None

    for _ in range(3):
        assert await exports.build_due(Broken()) == 0  # type: ignore[arg-type]
    export = await DataExport.get(id=asked["dataExport"]["id"])
    assert export.status == DataExportStatus.FAILED
    assert export.attempts == 3
    assert "disk full" in (export.last_error or "")


# --- right to erasure ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def storage_settings(request, tmp_path) -> dict[str, str]:
    if request.param == "local":
        return {"storage_url": f"file://{tmp_path / 'files'}"}
    moto: MotoServer = request.getfixturevalue("moto")
    bucket = f"docs-{uuid.uuid4().hex[:12]}"
    moto.client().create_bucket(Bucket=bucket)
    return moto.settings(bucket)


@pytest.fixture
async def api(storage_settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(**storage_settings) as client:
        yield client


def _text_columns(model: Any) -> list[str]:
    return [
        name
        for name, field in model._meta.fields_map.items()
        if isinstance(field, fields.CharField | fields.TextField | fields.JSONField)
    ]


async def _personal_data_left(needles: list[str]) -> list[str]:
    """Every text and JSON column of every table (enumerated from the ORM: a new table is
    scanned too), searched for the needles."""
    found = []
    lowered = [n.lower() for n in needles]
    for model in Tortoise.apps["models"].values():
        columns = _text_columns(model)
        if not columns:
            continue
        for row in await model.all().values(*columns):
            for column, value in row.items():
                if value is None:
                    continue
                # orjson writes non-ASCII as it is: "Hélène" stays findable in JSON
                text = value if isinstance(value, str) else orjson.dumps(value).decode()
                found += [
                    f"{model._meta.db_table}.{column}: {needle}"
                    for needle in lowered
                    if needle in text.lower()
                ]
    return found


async def test_erasure_leaves_no_personal_field_and_no_file(api):
    storage: Storage = api.app.state.storage  # type: ignore[attr-defined]
    admin = await make_admin()
    mine = await _client_with_data(api, "MARKE" + uuid.uuid4().hex[:6])
    other = await _client_with_data(api, "MARKF" + uuid.uuid4().hex[:6])
    account: Account = mine["account"]
    profile_id = account.obj.id
    await _settle()
    # an archive of theirs in the storage too
    await gql(api, REQUEST_MINE, token=account.token)
    assert await exports.build_due(storage) == 1
    keys = [
        *await DocumentVersion.filter(document__dossier__user_id=profile_id).values_list(
            "file_url", flat=True
        ),
        *await DataExport.filter(profile_id=profile_id).values_list("storage_key", flat=True),
    ]
    assert len(keys) == 2
    for key in keys:
        assert await storage.exists(key)
    needles = [
        account.obj.full_name,  # type: ignore[union-attr]
        "Hélène Dupont" + mine["marker"],
        account.email,
        mine["phone"],
        mine["marker"],
    ]
    assert await _personal_data_left(needles)  # the scan finds them before

    # refused while their dossier runs, without a reason, for a staff account
    body = await gql(api, ERASE, {"id": account.id, "reason": "asked", "force": False},
                     token=admin.token)  # fmt: skip
    assert [e["code"] for e in body["eraseClient"]["userErrors"]] == ["DOSSIER_RUNNING"]
    body = await gql(api, ERASE, {"id": account.id, "reason": " ", "force": True},
                     token=admin.token)  # fmt: skip
    assert [e["code"] for e in body["eraseClient"]["userErrors"]] == ["REQUIRED"]
    body = await gql(api, ERASE, {"id": admin.id, "reason": "x", "force": True},
                     token=admin.token)  # fmt: skip
    assert [e["code"] for e in body["eraseClient"]["userErrors"]] == ["STAFF_ACCOUNT"]
    assert (await Profile.get(id=profile_id)).erased_at is None  # nothing changed

    reason = f"Asked by letter (Hélène Dupont{mine['marker']})"
    body = await gql(api, ERASE, {"id": account.id, "reason": reason, "force": True},
                     token=admin.token)  # fmt: skip
    erased = body["eraseClient"]
    assert erased["userErrors"] == []
    assert erased["alreadyErased"] is False
    assert erased["client"]["erasedAt"]
    assert erased["client"]["phone"] is None
    assert erased["client"]["fullName"] == "Erased client"
    assert erased["client"]["email"].endswith("@erased.invalid")

    # no personal field anywhere, no file left
    assert await _personal_data_left(needles) == []
    for key in keys:
        assert not await storage.exists(key)
    assert not await FileDeletion.exists()
    # their sessions ended at once; the old e-mail logs nobody in
    me = await gql(api, ME, token=account.token, expect_errors=True)
    assert me["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert not await AccountSession.filter(
        credential__profile_id=profile_id, revoked_at__isnull=True
    ).exists()
    # accounting kept, the event kept without personal data
    order = await Order.get(user_id=profile_id)
    assert order.amount == 10_000
    (event,) = await Event.filter(event_type=EventType.CLIENT_ERASED)
    assert event.actor_id == admin.obj.id
    assert event.payload["forced"] is True
    assert "[erased]" in event.payload["reason"]
    # the other client is untouched
    assert await _personal_data_left([other["marker"], other["account"].email])
    assert (await gql(api, ME, token=other["account"].token))["me"]["id"] == other["account"].id
    # idempotent
    body = await gql(api, ERASE, {"id": account.id, "reason": "again", "force": False},
                     token=admin.token)  # fmt: skip
    assert body["eraseClient"]["alreadyErased"] is True
    assert await Event.filter(event_type=EventType.CLIENT_ERASED).count() == 1
    # nothing to export any more
    body = await gql(api, REQUEST_FOR, {"id": account.id}, token=admin.token)
    assert [e["code"] for e in body["requestDataExport"]["userErrors"]] == ["ERASED"]
    # and no invitation to send to the tombstone address
    body = await gql(api, RESEND, {"id": account.id}, token=admin.token)
    assert [e["code"] for e in body["resendInvitation"]["userErrors"]] == ["ACCOUNT_ERASED"]


async def test_erasure_of_a_client_without_running_dossier_needs_no_force(client):
    admin = await make_admin()
    mine = await _client_with_data(client, "MARKG" + uuid.uuid4().hex[:6])
    await mine["dossier"].filter(id=mine["dossier"].id).update(status=DossierStatus.COMPLETED)
    body = await gql(client, ERASE, {"id": mine["account"].id, "reason": "asked", "force": False},
                     token=admin.token)  # fmt: skip
    assert body["eraseClient"]["userErrors"] == []
    assert (await Event.get(event_type=EventType.CLIENT_ERASED)).payload["forced"] is False


async def test_a_file_the_storage_refuses_is_retried_and_no_row_keeps_data(client):
    admin = await make_admin()
    mine = await _client_with_data(client, "MARKH" + uuid.uuid4().hex[:6])
    storage: Storage = client._transport.app.state.storage  # type: ignore[attr-defined]
    (key,) = await DocumentVersion.filter(
        document__dossier__user_id=mine["account"].obj.id
    ).values_list("file_url", flat=True)
    real_delete = storage.delete
    failing = True

    async def delete(k: str) -> None:
        if failing:
            raise OSError("storage unreachable")
        await real_delete(k)

    storage.delete = delete  # type: ignore[method-assign]
    try:
        body = await gql(client, ERASE, {"id": mine["account"].id, "reason": "asked",
                                         "force": True}, token=admin.token)  # fmt: skip
        assert body["eraseClient"]["userErrors"] == []
        assert await storage.exists(key)  # still there, the rows are clean
        assert await _personal_data_left([mine["marker"], mine["account"].email]) == []
        (pending,) = await FileDeletion.all()
        assert pending.storage_key == key
        assert pending.attempts == 1
        failing = False
        assert await files.retry_due(storage) == 0  # not due yet
        clock.travel(timedelta(hours=1))
        try:
            assert await files.retry_due(storage) == 1
        finally:
            clock.reset()
    finally:
        storage.delete = real_delete  # type: ignore[method-assign]
    assert not await storage.exists(key)
    assert not await FileDeletion.exists()
